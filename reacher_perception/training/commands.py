"""``reacher perception collect|train|eval``: data, training and evaluation of SLAC.

Each subcommand is a frozen dataclass of arguments (each field documented, so ``--help``
lists every knob) and a runner that takes it and returns a JSON-able dict; :data:`COMMANDS`
names them for the ``reacher`` CLI::

    reacher perception collect --out data/slac/train --collect.sequences 500
    reacher perception train --data data/slac/train --out runs/slac
    reacher perception eval --checkpoint runs/slac/final.pt --data data/slac/test

This module loads neither torch, gymnasium nor stable_baselines3: the argument classes
live in light modules and each runner imports its heavy code when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.training.config import CollectConfig, SlacTrainConfig


@dataclass(frozen=True)
class CollectArgs:
    """Run the simulator with random and noisy-IK policies; write camera sequences."""

    out: Path = Path('data/slac/train')
    """Folder for the shard_XXXX.npz files (format: reacher_perception/training/dataset.py)."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    """How many sequences, which policies, the seed."""
    geometry: ArmGeometry = field(default_factory=ArmGeometry)
    """Arm and camera; the defaults are config/geometry.yaml's (64 px)."""
    timing: Timing = field(default_factory=Timing)
    """Frame period; the default is config/sim.yaml's (dt 0.05 s)."""


@dataclass(frozen=True)
class SlacEvalArgs:
    """Filter held-out sequences with a checkpoint; report errors and plot estimate vs truth."""

    checkpoint: Path = Path('runs/slac/final.pt')
    """The SLAC checkpoint to evaluate."""
    data: Path = Path('data/slac/test')
    """Folder of held-out shards (collect them with another --collect.seed)."""
    out: Path = Path('runs/slac/eval')
    """Where eval.json and estimate_vs_truth.png go."""
    sequences: int = 50
    """Held-out sequences to filter (at most the dataset's)."""
    threads: int = 1
    """torch CPU threads."""


def run_collect(args: CollectArgs) -> dict[str, Any]:
    """The collect subcommand: the shard paths and the sequence count and length."""
    from reacher_perception.training.collect import collect

    paths = collect(args.collect, args.geometry, args.timing, args.out)
    return {'shards': [str(path) for path in paths], 'sequences': args.collect.sequences,
            'steps': args.collect.steps}


def run_train(args: SlacTrainConfig) -> dict[str, Any]:
    """The train subcommand: the last logged metrics, wall time and frames seen."""
    from reacher_perception.training.train import train

    return train(args)


def run_eval(args: SlacEvalArgs) -> dict[str, Any]:
    """The eval subcommand: clean held-out frames through the ``slac`` backend."""
    from reacher_perception.training.evaluate import evaluate

    return evaluate(args.checkpoint, args.data, args.out, args.sequences, args.threads)


COMMANDS: dict[str, tuple[type, Callable[[Any], dict[str, Any]]]] = {
    'collect': (CollectArgs, run_collect),
    'train': (SlacTrainConfig, run_train),
    'eval': (SlacEvalArgs, run_eval),
}
"""Subcommand name -> (its arguments dataclass, its runner)."""
