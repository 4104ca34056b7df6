"""Both estimators in every named scene, on the same held-out motions.

For each scene of ``reacher_sim.scene.SCENES`` the collector records ``--sequences``
held-out sequences (seed ``--seed``; the scenes come from a stream of their own, so every
scene shows the same motions and goals), and both estimators filter each sequence frame
by frame as the perception node does. Per scene and estimator: joint-angle MAE (deg, mean
of the two joints), fingertip and goal error (mm), the lost rate: frames whose worse
joint is more than 10 deg off or whose goal is more than 20 mm off, the confident rate
(``Estimate.confidence`` >= ``--threshold``; an estimator without a confidence is always
taken at its word), the silent-failure rate: lost frames marked confident, as a share of
all frames, and the median time per ``estimate`` call (one thread). ``--previous``
adds a second SLAC checkpoint (row ``slac-previous``) on the same frames, and
``--symmetries 1`` the SLAC estimator with one filter instead of its test-time
symmetries (row ``slac-1``; ``PerceptionConfig.test_time_symmetries``). The scenes of
the families that SLAC's training never showed are marked held out (``randomized``
contains them): by default those the checkpoint's metadata records
(``reacher_perception.slac.checkpoint.held_out_families``), or ``--held-out``. Writes
JSON and prints a markdown table:

    python benchmarks/perception_scenes.py --sequences 20 \
        --out benchmarks/results/perception_scenes.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import platform
from typing import Any

import numpy as np
import torch
import tyro

from reacher_common.estimate_msgs import LOST_GOAL_MM, LOST_JOINT_DEG
from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.weights import load_checkpoint_payload
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_perception.slac.checkpoint import (
    default_slac_checkpoint,
    held_out_families,
    SLAC_CHECKPOINT_FORMATS,
)
from reacher_perception.training.collect import collect_dataset
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.evaluate import read_sequences
from reacher_sim.scene import SceneConfig, SCENES


@dataclass(frozen=True)
class Args:
    """Per-scene accuracy and lost rate of the classical and SLAC estimators."""

    sequences: int = 20
    """Held-out sequences per scene."""
    steps: int = 64
    """Frames per sequence."""
    seed: int = 1000
    """Seed of the held-out motions and scenes (training used 0)."""
    estimators: tuple[str, ...] = ('classical', 'slac')
    """Estimators to run on the same frames."""
    checkpoint: str = ''
    """SLAC checkpoint ('' = the shipped one)."""
    previous: str = ''
    """Another SLAC checkpoint to run as ``slac-previous`` ('' = none)."""
    symmetries: tuple[int, ...] = ()
    """Other counts of SLAC's test-time symmetries to run beside the default, as rows
    ``slac-N`` (``PerceptionConfig.test_time_symmetries``; e.g. 1 for one filter)."""
    held_out: tuple[str, ...] | None = None
    """Families held out of SLAC's training, marked in the table (None: as the
    checkpoint's metadata records them; none when it does not)."""
    scenes: tuple[str, ...] = tuple(SCENES)
    """Scenes to measure."""
    threshold: float = 0.5
    """Confidence below which an estimate is not acted on (policy_node's threshold)."""
    out: Path = Path('benchmarks/results/perception_scenes.json')
    """Where the JSON goes."""


def measure(args: Args) -> dict[str, Any]:
    """Collect each scene's frames, run the estimators, return the JSON-ready results."""
    torch.set_num_threads(1)
    held_out = args.held_out
    if held_out is None:
        _, metadata = load_checkpoint_payload(
            args.checkpoint or default_slac_checkpoint(), 'SLAC checkpoint',
            SLAC_CHECKPOINT_FORMATS)
        held_out = held_out_families(metadata) or ()
    rows = []
    for scene in args.scenes:
        dataset = collect_dataset(CollectConfig(sequences=args.sequences, steps=args.steps,
                                                seed=args.seed, scene=SceneConfig(name=scene)),
                                  ArmGeometry(), Timing())
        default = PerceptionConfig().test_time_symmetries
        runs = [(name, name, args.checkpoint if name == 'slac' else '', default)
                for name in args.estimators]
        if args.previous:
            runs.append(('slac-previous', 'slac', args.previous, default))
        runs += [(f'slac-{count}', 'slac', args.checkpoint, count)
                 for count in args.symmetries]
        for name, backend, checkpoint, symmetries in runs:
            estimator = make_estimator(PerceptionConfig(
                estimator=backend, geometry=dataset.geometry, checkpoint=checkpoint,
                test_time_symmetries=symmetries))
            readout = read_sequences(estimator, dataset)
            joint_error = readout.joint_error_deg
            lost, confident = readout.lost, readout.confident(args.threshold)
            rows.append({'scene': scene, 'estimator': name,
                         'joint_mae_deg': float(joint_error.mean()),
                         'fingertip_mm': float(readout.fingertip_error_mm.mean()),
                         'goal_mm': float(readout.goal_error_mm.mean()),
                         'lost_rate': float(lost.mean()),
                         'confident_rate': float(confident.mean()),
                         'silent_failure_rate': float((lost & confident).mean()),
                         'has_confidence': bool(not np.isnan(readout.confidence).all()),
                         'confident_right_rate': float((confident & ~lost).sum()
                                                       / max(int((~lost).sum()), 1)),
                         'inference_median_ms': float(1e3 * np.median(readout.seconds)),
                         'held_out': bool(set(SCENES[scene]) & set(held_out)),
                         'frames': int(lost.size)})
            row = rows[-1]
            print(f"{scene:12s} {name:10s} joint {row['joint_mae_deg']:7.2f} deg  "
                  f"goal {row['goal_mm']:7.1f} mm  lost {row['lost_rate']:6.1%}  "
                  f"confident {row['confident_rate']:6.1%}  "
                  f"silent {row['silent_failure_rate']:6.1%}", flush=True)
    return {'benchmark': 'perception_scenes', 'args': {**asdict(args), 'out': str(args.out)},
            'held_out': list(held_out),
            'thresholds': {'joint_deg': LOST_JOINT_DEG, 'goal_mm': LOST_GOAL_MM},
            'machine': {'cpus': os.cpu_count(), 'python': platform.python_version()},
            'rows': rows}


def table(results: dict[str, Any]) -> str:
    """Markdown: one row per scene, the estimators side by side."""
    names = list(dict.fromkeys(row['estimator'] for row in results['rows']))
    by = {(r['scene'], r['estimator']): r for r in results['rows']}
    head = ' | '.join(f'{n}: joint / tip / goal / lost / confident / silent' for n in names)
    lines = [f'| scene | {head} |', '|---' * (len(names) + 1) + '|']
    for scene in results['args']['scenes']:
        cells = []
        for n in names:
            row = by[scene, n]
            cells.append(f"{row['joint_mae_deg']:.2f} deg / {row['fingertip_mm']:.1f} mm / "
                         f"{row['goal_mm']:.1f} mm / {row['lost_rate']:.1%} / "
                         f"{row['confident_rate']:.0%} / {row['silent_failure_rate']:.2%}")
        mark = ' (held out)' if by[scene, names[0]].get('held_out') else ''
        lines.append(f"| {scene}{mark} | {' | '.join(cells)} |")
    medians = {n: float(np.median([r['inference_median_ms'] for r in results['rows']
                                   if r['estimator'] == n])) for n in names}
    times = ', '.join(f'{n} {value:.2f} ms' for n, value in medians.items())
    lines.append(f'\nmedian time per frame (median over scenes): {times}')
    return '\n'.join(lines)


def main() -> None:
    """Measure, print the table, write the JSON."""
    args = tyro.cli(Args)
    results = measure(args)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
