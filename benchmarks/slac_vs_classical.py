"""SLAC vs the classical estimator on the same held-out sequences, clean and corrupted.

Held-out sequences are collected with ``reacher_perception.training.collect.collect`` (a seed the
training data did not use; random and noisy-IK policies, dt 0.05 s as the demo runs).
Every corruption is applied once, with a fixed seed, and the *same* corrupted frames go
to both estimators, each run frame by frame over the sequence as the perception node
runs it (reset at the sequence's start; SLAC gets the previous command, the classical
estimator ignores it and keeps its last value when it loses a part):

- ``clean``: the rendered frames.
- ``noise``: gaussian pixel noise, std ``--noise-std`` (fraction of 255), every frame;
  ``noise_strong``: three times that (beyond the training augmentation's 0.12).
- ``colour``: per-sequence gain in [0.8, 1.2] and offset in +-0.08 per channel.
- ``occlusion``: one opaque ``--patch``-pixel square of random grey at a random place,
  for the whole sequence.
- ``blank``: runs of ``--blank-run`` black frames (a dropped camera) starting every 16
  steps; errors are also reported on the blank frames alone (``blank_frames_only``), where
  the classical estimator can only hold its last value while the arm keeps moving.

Timing: per-frame inference of both, on the clean pass, in the same process (median, p99).
The training augmentation (``AugmentConfig``) draws from the same families of
corruption, with other parameters and seeds; these are not unseen kinds of corruption.

    python benchmarks/slac_vs_classical.py --sequences 40 --seed 1000
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
from pathlib import Path
import platform
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import tyro

from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.kinematics import wrap_angle
from reacher_perception.classical import ClassicalEstimator
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import Estimator
from reacher_perception.slac.estimator import SlacEstimator
from reacher_perception.training.collect import collect_dataset
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset

CORRUPTIONS = ('clean', 'noise', 'noise_strong', 'colour', 'occlusion', 'blank')


@dataclass(frozen=True)
class Args:
    """Options of the SLAC vs classical benchmark."""

    checkpoint: str = ''
    """SLAC checkpoint ('' = the shipped checkpoints/slac_reacher.pt)."""
    data: Path | None = None
    """Held-out shards; None collects --sequences fresh ones with --seed."""
    sequences: int = 40
    """Held-out sequences (when collecting)."""
    steps: int = 64
    """Frames per sequence (when collecting)."""
    seed: int = 1000
    """Seed of the held-out data and of the corruptions (training used 0)."""
    noise_std: float = 0.08
    """Pixel noise std, fraction of 255."""
    patch: int = 12
    """Side of the occluding square, pixels."""
    blank_run: int = 3
    """Consecutive blank frames per drop."""
    threads: int = 1
    """torch CPU threads."""
    out: Path = Path('benchmarks/results/slac_vs_classical.json')
    """Where the JSON goes."""


def corrupt(images: npt.NDArray[np.uint8], kind: str, args: Args, rng: np.random.Generator
            ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """One sequence's frames under a corruption.

    :param images: (T, H, W, 3) uint8.
    :param kind: one of ``CORRUPTIONS``.
    :return: the corrupted (T, H, W, 3) uint8 frames and a (T,) mask of blanked frames.
    """
    frames = images.astype(np.float32)
    blank = np.zeros(len(images), bool)
    size = images.shape[1]
    if kind in ('noise', 'noise_strong'):
        scale = 3.0 if kind == 'noise_strong' else 1.0
        frames += rng.normal(0.0, scale * args.noise_std * 255.0, frames.shape)
    elif kind == 'colour':
        frames = frames * rng.uniform(0.8, 1.2, 3) + rng.uniform(-0.08, 0.08, 3) * 255.0
    elif kind == 'occlusion':
        top, left = rng.integers(0, size - args.patch + 1, 2)
        frames[:, top:top + args.patch, left:left + args.patch] = rng.uniform(0, 255)
    elif kind == 'blank':
        for start in range(BLANK_EVERY, len(images), BLANK_EVERY):
            blank[start:start + args.blank_run] = True
        frames[blank] = 0.0
    return np.clip(np.round(frames), 0, 255).astype(np.uint8), blank


BLANK_EVERY = 16
"""The ``blank`` corruption drops ``--blank-run`` frames every this many, from this frame on."""


def run_estimator(estimator: Estimator, images: npt.NDArray[np.uint8],
                  commands: npt.NDArray[np.float64], times_ms: list[float] | None
                  ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                             npt.NDArray[np.float64]]:
    """Filter one sequence; return (T, 2) joints, fingertips and goals."""
    estimator.reset()
    joints, tips, goals = [], [], []
    for step, image in enumerate(images):
        previous = None if step == 0 else commands[step - 1]
        start = time.perf_counter_ns()
        estimate = estimator.estimate(image, previous)
        if times_ms is not None:
            times_ms.append((time.perf_counter_ns() - start) * 1e-6)
        joints.append(estimate.joint_positions)
        tips.append(estimate.fingertip)
        goals.append(estimate.goal)
    return np.array(joints), np.array(tips), np.array(goals)


def errors(estimated: tuple[npt.NDArray[np.float64], ...], dataset: SequenceDataset,
           index: int) -> npt.NDArray[np.float64]:
    """(T, 3): joint-angle error (deg, mean of the two), fingertip and goal error (mm)."""
    joints, tips, goals = estimated
    joint_error = np.degrees(np.abs(wrap_angle(joints - dataset.joint_positions[index])))
    tip_error = 1e3 * np.linalg.norm(tips - dataset.fingertip[index], axis=1)
    goal_error = 1e3 * np.linalg.norm(goals - dataset.goal[index], axis=1)
    return np.stack([joint_error.mean(axis=1), tip_error, goal_error], axis=1)


def summary(rows: npt.NDArray[np.float64]) -> dict[str, float]:
    """Mean errors over frames."""
    return {'joint_mae_deg': float(rows[:, 0].mean()), 'fingertip_mm': float(rows[:, 1].mean()),
            'goal_mm': float(rows[:, 2].mean()), 'frames': int(len(rows))}


def run_benchmark(args: Args) -> dict[str, Any]:
    """Collect or load held-out data, corrupt it, run both estimators, measure."""
    torch.set_num_threads(args.threads)
    if args.data is None:
        dataset = collect_dataset(CollectConfig(sequences=args.sequences, steps=args.steps,
                                                seed=args.seed),
                                  ArmGeometry(), Timing(dt=0.05))
    else:
        dataset = SequenceDataset(args.data)
    if dataset.steps <= BLANK_EVERY:
        raise ValueError(f'sequences of {dataset.steps} frames have no blank frame (the first '
                         f'is frame {BLANK_EVERY}): give --steps {BLANK_EVERY + 1} or more')
    geometry = dataset.geometry
    config = PerceptionConfig(geometry=geometry, checkpoint=args.checkpoint)
    estimators: dict[str, Estimator] = {'slac': SlacEstimator(config),
                                        'classical': ClassicalEstimator(config)}
    times: dict[str, list[float]] = {name: [] for name in estimators}
    results: dict[str, Any] = {}
    for kind in CORRUPTIONS:
        rng = np.random.default_rng(args.seed + CORRUPTIONS.index(kind))
        per: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in estimators}
        blanked: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in estimators}
        for index in range(len(dataset)):
            frames, blank = corrupt(dataset.images[index], kind, args, rng)
            commands = dataset.actions[index].astype(np.float64) * geometry.max_joint_velocity
            for name, estimator in estimators.items():
                rows = errors(run_estimator(estimator, frames, commands,
                                            times[name] if kind == 'clean' else None),
                              dataset, index)
                per[name].append(rows)
                if blank.any():
                    blanked[name].append(rows[blank])
        results[kind] = {name: summary(np.concatenate(rows)) for name, rows in per.items()}
        if kind == 'blank':
            results['blank_frames_only'] = {name: summary(np.concatenate(rows))
                                            for name, rows in blanked.items()}
    timing = {name: {'median_ms': float(np.median(values)),
                     'p99_ms': float(np.percentile(values, 99))}
              for name, values in times.items()}
    return {'benchmark': 'slac_vs_classical',
            'args': {key: str(value) for key, value in asdict(args).items()},
            'checkpoint': str(estimators['slac'].checkpoint_path),  # type: ignore[attr-defined]
            'sequences': len(dataset), 'steps': dataset.steps,
            'accuracy': results, 'timing': timing,
            'versions': {'python': platform.python_version(), 'torch': torch.__version__,
                         'numpy': np.__version__, 'threads': torch.get_num_threads()}}


def markdown_table(results: dict[str, Any]) -> str:
    """Errors side by side per corruption, then timing."""
    lines = ['| frames | joint MAE (deg) SLAC / classical | fingertip (mm) SLAC / classical '
             '| goal (mm) SLAC / classical |', '|---|---|---|---|']
    for kind, row in results['accuracy'].items():
        slac, classical = row['slac'], row['classical']
        lines.append(f"| {kind} | {slac['joint_mae_deg']:.2f} / {classical['joint_mae_deg']:.2f} "
                     f"| {slac['fingertip_mm']:.1f} / {classical['fingertip_mm']:.1f} "
                     f"| {slac['goal_mm']:.1f} / {classical['goal_mm']:.1f} |")
    lines += ['', '| backend | median (ms/frame) | p99 (ms/frame) |', '|---|---|---|']
    for name, timing in results['timing'].items():
        lines.append(f"| {name} | {timing['median_ms']:.2f} | {timing['p99_ms']:.2f} |")
    return '\n'.join(lines)


def main() -> None:
    """Run, print the table, write the JSON."""
    args = tyro.cli(Args)
    try:
        results = run_benchmark(args)
    except ValueError as error:
        print(f'slac_vs_classical: {error}', file=sys.stderr)
        raise SystemExit(2) from None
    print(markdown_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
