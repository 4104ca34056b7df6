"""Inference time per frame of each estimator and runtime, on one CPU thread (issue 14).

Renders ``--sequences`` x ``--steps`` real frames with the sim's collector (clean scene,
the arm driven as in training) and runs, interleaved frame by frame so that the machine's
load hits every row alike, ``estimate()`` of: the classical estimator, and the slac
estimator with ``runtime: onnxruntime`` and ``runtime: torch`` (the shipped checkpoint,
its confidence included), each also with ``normalize_background: false`` (the frame
read as it comes: what the table's repainting and SLAC's redraw check cost), and SLAC
with one filter (``test_time_symmetries: 1``; the others run the default 8). Reports the
median and p99 per frame, the start time of each
estimator (the ONNX export happens there), the largest difference between the two SLAC
runtimes' outputs (each runtime carrying its own latent along a sequence), and the load
average. Then each estimator alone over the same frames (no other estimator's calls
between its own, as in the perception node).

    python benchmarks/slac_inference.py     # ~1 min
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import math
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
from reacher_perception.estimator import Estimate, make_estimator
from reacher_perception.training.collect import collect
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset


@dataclass
class Args:
    """Per-frame inference time of the classical and both SLAC runtimes."""

    sequences: int = 10
    """Sequences of frames (each starts a new SLAC filter)."""
    steps: int = 50
    """Frames per sequence."""
    seed: int = 21
    """The collector's seed."""
    checkpoint: str = ''
    """SLAC weights ('' = the shipped checkpoint)."""
    out: Path = Path('benchmarks/results/slac_inference.json')
    """Where to write the JSON results."""


ROWS = {'classical': {'estimator': 'classical'},
        'slac onnxruntime': {'estimator': 'slac', 'runtime': 'onnxruntime'},
        'slac torch': {'estimator': 'slac', 'runtime': 'torch'},
        'classical, frames as they come': {'estimator': 'classical',
                                           'normalize_background': False},
        'slac onnxruntime, frames as they come': {'estimator': 'slac',
                                                  'runtime': 'onnxruntime',
                                                  'normalize_background': False},
        'slac onnxruntime, one filter': {'estimator': 'slac', 'runtime': 'onnxruntime',
                                         'test_time_symmetries': 1}}
"""Row name -> PerceptionConfig fields. 'as they come': without background normalisation
(and so without SLAC's redraw check), to show what those cost; 'one filter': without the
test-time symmetries (the identity's filter alone; the slac rows run the default 8)."""

COMPARED = ('joint_positions', 'fingertip', 'goal', 'latent', 'confidence', 'joint_std_rad',
            'fingertip_std_m', 'goal_std_m')


def difference(a: Estimate, b: Estimate) -> float:
    """The largest absolute difference between two estimates' compared fields."""
    return max(float(np.max(np.abs(np.asarray(getattr(a, name), dtype=np.float64)
                                   - np.asarray(getattr(b, name), dtype=np.float64))))
               for name in COMPARED)


def main() -> None:
    args = tyro.cli(Args)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        collect(CollectConfig(sequences=args.sequences, steps=args.steps,
                              shard_size=args.sequences, seed=args.seed),
                ArmGeometry(), Timing(), Path(folder), progress=False)
        data = SequenceDataset(Path(folder))
    estimators, start_s = {}, {}
    for name, fields in ROWS.items():
        began = time.perf_counter()
        estimators[name] = make_estimator(PerceptionConfig(checkpoint=args.checkpoint,
                                                           **fields))
        start_s[name] = time.perf_counter() - began
    times: dict[str, list[float]] = {name: [] for name in ROWS}
    largest = 0.0
    for index in range(len(data)):
        for estimator in estimators.values():
            estimator.reset()
        for step in range(data.steps):
            frame = data.images[index, step]
            command = None if step == 0 else data.actions[index, step - 1].astype(np.float64)
            estimates = {}
            for name, estimator in estimators.items():
                began = time.perf_counter_ns()
                estimates[name] = estimator.estimate(frame, command)
                times[name].append((time.perf_counter_ns() - began) * 1e-6)
            largest = max(largest, difference(estimates['slac onnxruntime'],
                                              estimates['slac torch']))
    # Then each alone over all the frames (no other estimator between its calls).
    alone: dict[str, list[float]] = {name: [] for name in ROWS}
    for name, estimator in estimators.items():
        for index in range(len(data)):
            estimator.reset()
            for step in range(data.steps):
                command = (None if step == 0
                           else data.actions[index, step - 1].astype(np.float64))
                began = time.perf_counter_ns()
                estimator.estimate(data.images[index, step], command)
                alone[name].append((time.perf_counter_ns() - began) * 1e-6)
    rows = {name: {'median_ms': float(np.median(values)),
                   'p99_ms': float(np.percentile(values, 99)),
                   'alone_median_ms': float(np.median(alone[name])),
                   'alone_p99_ms': float(np.percentile(alone[name], 99)),
                   'start_s': start_s[name]} for name, values in times.items()}
    payload: dict[str, Any] = {
        'args': {key: str(value) for key, value in asdict(args).items()},
        'frames': len(times['classical']), 'rows': rows,
        'slac_runtimes_max_abs_difference': largest,
        'torch_threads': torch.get_num_threads(), 'cpus': os.cpu_count(),
        'load_average_before': load_before, 'load_average_after': os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + '\n')
    print('| estimator | interleaved median / p99 (ms/frame) | alone median / p99 '
          '(ms/frame) | start (s) |')
    print('|---|---|---|---|')
    for name, row in rows.items():
        print(f'| {name} | {row["median_ms"]:.2f} / {row["p99_ms"]:.2f} | '
              f'{row["alone_median_ms"]:.2f} / {row["alone_p99_ms"]:.2f} | '
              f'{row["start_s"]:.2f} |')
    print(f'\nlargest |onnxruntime - torch| over {payload["frames"]} frames: '
          f'{largest:.2g} (load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f})')
    assert math.isfinite(largest)


if __name__ == '__main__':
    main()
