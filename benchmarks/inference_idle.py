"""Inference per frame with the process idle between frames, as in the perception node.

``slac_inference.py`` calls ``estimate()`` back to back; the node calls it once per camera
frame and sleeps in between (50 ms at 20 Hz). On this machine (a 2-vCPU VM) a call after
such a pause takes about twice as long as in a tight loop, whatever the estimator:
the caches and predictors it left warm are cold again. This script measures that without
ROS: each estimator (one thread) over ``--frames`` real frames of the sim's collector
(clean scene), with a pause of each of ``--gaps`` seconds before every call; it reports
the median, p90 and p99 per call and the load average.

    python benchmarks/inference_idle.py     # ~1 min
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import tempfile
import time
from typing import Any

import numpy as np
import torch
import tyro

from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_perception.training.collect import collect
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset


@dataclass
class Args:
    """Per-call inference time after pauses of each length."""

    frames: int = 300
    """Calls per estimator and pause (the first 20 are not counted)."""
    gaps: tuple[float, ...] = (0.0, 0.05)
    """Pauses before each call, seconds (0.05: a 20 Hz camera)."""
    estimators: tuple[str, ...] = ('classical', 'slac')
    """Estimators to measure."""
    seed: int = 21
    """The collector's seed."""
    out: Path = Path('benchmarks/results/inference_idle.json')
    """Where to write the JSON results."""


def main() -> None:
    args = tyro.cli(Args)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        collect(CollectConfig(sequences=4, steps=50, shard_size=4, seed=args.seed),
                ArmGeometry(), Timing(), Path(folder), progress=False)
        data = SequenceDataset(Path(folder))
    images = np.asarray(data.images).reshape(-1, *data.images.shape[2:])
    commands = np.asarray(data.actions).reshape(-1, 2) * data.geometry.max_joint_velocity
    rows: list[dict[str, Any]] = []
    for name in args.estimators:
        estimator = make_estimator(PerceptionConfig(estimator=name))
        for gap in args.gaps:
            times = []
            for index in range(args.frames):
                frame = index % len(images)
                if frame % data.steps == 0:
                    estimator.reset()
                if gap > 0.0:
                    time.sleep(gap)
                began = time.perf_counter_ns()
                estimator.estimate(images[frame], commands[frame - 1] if frame else None)
                times.append((time.perf_counter_ns() - began) * 1e-6)
            counted = np.asarray(times[20:])
            rows.append({'estimator': name, 'gap_s': gap,
                         'median_ms': float(np.median(counted)),
                         'p90_ms': float(np.percentile(counted, 90)),
                         'p99_ms': float(np.percentile(counted, 99)),
                         'calls': int(counted.size)})
    payload = {'args': {key: str(value) for key, value in asdict(args).items()}, 'rows': rows,
               'cpus': os.cpu_count(), 'load_average_before': load_before,
               'load_average_after': os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + '\n')
    print('| estimator | pause before each call (ms) | median / p90 / p99 (ms/call) |')
    print('|---|---|---|')
    for row in rows:
        print(f"| {row['estimator']} | {1e3 * row['gap_s']:.0f} | {row['median_ms']:.2f} / "
              f"{row['p90_ms']:.2f} / {row['p99_ms']:.2f} |")
    print(f'\nload average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
