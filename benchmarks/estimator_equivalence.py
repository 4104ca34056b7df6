"""Whether a change to an estimator changed what it estimates: old vs new outputs per frame.

Collects ``--sequences`` x ``--steps`` frames of every scene of ``reacher_sim.scene.SCENES``
(seed ``--seed``), runs each estimator over them frame by frame as the perception node does
(``reset`` at each sequence's start, the previous command passed), and writes every
frame's outputs (joints, fingertip, goal, confidence, stds, visibility, latent) to ``--out``
(.npz). With ``--against`` (an earlier run's .npz, from the code before the change), it
reports per scene and field the largest difference and the frames that differ by more
than ``--tolerance``, in a JSON beside ``--out``. The frames are kept in ``--frames``
(.npz) so that both runs read the same pixels, whatever the sim does in between.

    git stash; python benchmarks/estimator_equivalence.py --out /tmp/old.npz; git stash pop
    python benchmarks/estimator_equivalence.py --out /tmp/new.npz --against /tmp/old.npz
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import tempfile
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
from reacher_sim.scene import SceneConfig, SCENES

FIELDS = ('joint_positions', 'fingertip', 'goal', 'confidence', 'joint_std_rad',
          'fingertip_std_m', 'goal_std_m', 'arm_visible', 'goal_visible', 'latent')


@dataclass(frozen=True)
class Args:
    """Old-vs-new estimates of the estimators on frames of every scene."""

    sequences: int = 5
    """Sequences per scene."""
    steps: int = 64
    """Frames per sequence."""
    seed: int = 1000
    """Seed of the motions and scenes."""
    estimators: tuple[str, ...] = ('classical', 'slac')
    """Estimators to run."""
    frames: Path = Path('/tmp/reacher_equivalence_frames.npz')
    """Where the frames are kept (collected when missing)."""
    out: Path = Path('/tmp/reacher_equivalence.npz')
    """Where this run's estimates go (.npz)."""
    against: Path | None = None
    """An earlier run's estimates to compare with; None = just write."""
    tolerance: float = 1e-5
    """A field differs on a frame when some element differs by more than this (radians,
    metres, confidence units)."""


def frames(args: Args) -> dict[str, np.ndarray]:
    """images (S, N, T, H, W, 3) uint8 and commands (S, N, T, 2) rad/s per scene."""
    if args.frames.exists():
        with np.load(args.frames) as stored:
            return dict(stored)
    images, commands = [], []
    for scene in SCENES:
        with tempfile.TemporaryDirectory() as folder:
            collect(CollectConfig(sequences=args.sequences, steps=args.steps, seed=args.seed,
                                  shard_size=args.sequences, scene=SceneConfig(name=scene)),
                    ArmGeometry(), Timing(), Path(folder), progress=False)
            data = SequenceDataset(Path(folder))
            images.append(np.asarray(data.images))
            commands.append(np.asarray(data.actions) * data.geometry.max_joint_velocity)
    stored = {'images': np.stack(images), 'commands': np.stack(commands)}
    np.savez_compressed(args.frames, **stored)
    return stored


def run(name: str, images: np.ndarray, commands: np.ndarray) -> dict[str, np.ndarray]:
    """Every frame's estimate of one estimator, fields of shape (S, N, T, ...)."""
    estimator = make_estimator(PerceptionConfig(estimator=name))
    out: dict[str, list[Any]] = {field: [] for field in FIELDS}
    for scene_images, scene_commands in zip(images, commands, strict=True):
        for sequence, sequence_commands in zip(scene_images, scene_commands, strict=True):
            estimator.reset()
            for step, image in enumerate(sequence):
                estimate = estimator.estimate(image, None if step == 0
                                              else sequence_commands[step - 1])
                for field in FIELDS:
                    value = getattr(estimate, field)
                    out[field].append(np.asarray(np.nan if value is None else value,
                                                 dtype=np.float64))
    shape = images.shape[:3]
    return {field: np.stack(values).reshape(*shape, -1) for field, values in out.items()}


def compare(new: dict[str, np.ndarray], old: dict[str, np.ndarray], tolerance: float
            ) -> list[dict[str, Any]]:
    """Per estimator, scene and field: the largest difference and frames beyond tolerance."""
    rows = []
    for key in sorted(new):
        name, field = key.split('/')
        difference = np.abs(new[key] - old[key])
        difference = np.where(np.isnan(new[key]) & np.isnan(old[key]), 0.0, difference)
        for index, scene in enumerate(SCENES):
            scene_difference = difference[index].max(axis=-1)
            rows.append({'estimator': name, 'scene': scene, 'field': field,
                         'max_abs_difference': float(np.nanmax(scene_difference)),
                         'frames_beyond_tolerance': int((~(scene_difference <= tolerance)).sum()),
                         'frames': int(scene_difference.size)})
    return rows


def main() -> None:
    """Collect (or load) the frames, run, write, and compare when asked."""
    args = tyro.cli(Args)
    torch.set_num_threads(1)
    stored = frames(args)
    results = {f'{name}/{field}': values
               for name in args.estimators
               for field, values in run(name, stored['images'], stored['commands']).items()}
    np.savez_compressed(args.out, **results)
    print(f'{stored["images"].shape[:3]} frames (scenes, sequences, steps); '
          f'estimates written to {args.out}')
    if args.against is None:
        return
    with np.load(args.against) as old:
        rows = compare(results, {key: old[key] for key in results}, args.tolerance)
    report = args.out.with_suffix('.json')
    report.write_text(json.dumps({'tolerance': args.tolerance, 'rows': rows}, indent=1) + '\n')
    for row in rows:
        if row['max_abs_difference'] > 0.0:
            print(f"{row['estimator']:10s} {row['scene']:12s} {row['field']:16s} "
                  f"max |diff| {row['max_abs_difference']:.3g}  beyond {args.tolerance:g}: "
                  f"{row['frames_beyond_tolerance']}/{row['frames']}")
    print(f'comparison written to {report}')


if __name__ == '__main__':
    main()
