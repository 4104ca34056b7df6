"""``reacher perception ...``: SLAC's data, training, confidence and evaluation.

Each subcommand is a frozen dataclass of arguments (each field documented, so ``--help``
lists every knob) and a runner that takes it and returns a JSON-able dict; :data:`COMMANDS`
names them for the ``reacher`` CLI::

    reacher perception collect --out data/slac/train --collect.sequences 500
    reacher perception train --data data/slac/train --out runs/slac
    reacher perception confidence --checkpoint runs/slac/final.pt --data data/slac/train \
        --calibration data/slac/calibration --out runs/slac/confident.pt
    reacher perception calibrate-symmetries --checkpoint runs/slac/confident.pt \
        --calibration data/slac/calibration --out runs/slac/symmetric.pt
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


@dataclass(frozen=True)
class ConfidenceArgs:
    """Fit SLAC's confidence (frame heads + calibration) on a trained, frozen checkpoint."""

    checkpoint: Path = Path('runs/slac/final.pt')
    """The trained checkpoint (not modified)."""
    data: tuple[Path, ...] = (Path('data/slac/train'),)
    """Its training data, one folder or several; the per-frame heads are fitted on it."""
    calibration: tuple[Path, ...] = (Path('data/slac/calibration'),)
    """Held-out sequences of the training scenes (collected with another --collect.seed),
    one folder or several, where the calibration is fitted."""
    out: Path = Path('runs/slac/confident.pt')
    """The checkpoint to write: the same model, plus its confidence."""
    sequences: tuple[int, ...] = (600,)
    """Training sequences the frame heads are fitted on: the first this many of each --data
    folder, or one count per folder."""
    members: int = 5
    """Frame heads in the ensemble, >= 2."""
    hidden: int = 64
    """Their hidden width."""
    updates: int = 2000
    """Adam steps of the frame heads."""
    wrong_weight: float = 1.0
    """Weight of a wrong frame against a right one in the logistic calibration."""
    blend: float = 0.5
    """Weight of the per-frame heads' mean in the published estimate (the filter's read-out
    has the rest), in [0, 1]; 0 publishes the filter alone."""
    corrupt_calibration: bool = True
    """Calibrate also on the calibration frames corrupted as in training (occluding
    patches, blank frames, noise), so that a covered arm reads as unsure."""
    normalize_background: bool = False
    """Fit on frames with their table repainted, as perception_node reads them with
    ``normalize_background`` (its default). On for the shipped checkpoint, whose model
    was fine-tuned on repainted frames (checkpoints/README.md, step 4). For a model
    trained on frames as recorded, leave it off: the fifth pass's confidence, fitted on
    the frames as recorded, held fewer silent failures on repainted JPEG frames than one
    fitted on repainted frames (docs/slac.md, "Fifth pass")."""
    seed: int = 0
    """Initialisation, batches and augmentation."""
    threads: int = 1
    """torch CPU threads."""


@dataclass(frozen=True)
class CalibrateSymmetriesArgs:
    """Calibrate the confidence of SLAC's estimate averaged over test-time symmetries."""

    checkpoint: Path = Path('runs/slac/confident.pt')
    """A checkpoint with a confidence ('reacher perception confidence'; not modified)."""
    calibration: tuple[Path, ...] = (Path('data/slac/calibration'),)
    """Held-out sequences of the training scenes (collected with another
    --collect.seed), one folder or several."""
    out: Path = Path('runs/slac/symmetric.pt')
    """The checkpoint to write: the same model and confidence, plus the calibration."""
    wrong_weight: float = 30.0
    """Weight of a wrong frame against a right one in the logistic fit."""
    sequences: int | None = None
    """Calibration sequences to filter, from the first (None: all)."""
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


def run_confidence(args: ConfidenceArgs) -> dict[str, Any]:
    """The confidence subcommand: the fit's figures."""
    from reacher_perception.training.confidence import fit_confidence

    return fit_confidence(args.checkpoint, args.data, args.calibration, args.out,
                          sequences=args.sequences, members=args.members,
                          hidden=args.hidden, updates=args.updates,
                          wrong_weight=args.wrong_weight, blend=args.blend,
                          corrupt_calibration=args.corrupt_calibration,
                          normalize_background=args.normalize_background, seed=args.seed,
                          threads=args.threads)


def run_calibrate_symmetries(args: CalibrateSymmetriesArgs) -> dict[str, Any]:
    """The calibrate-symmetries subcommand: the fit's figures."""
    from reacher_perception.training.symmetry_calibration import fit_symmetry_calibration

    return fit_symmetry_calibration(args.checkpoint, args.calibration, args.out,
                                    wrong_weight=args.wrong_weight, sequences=args.sequences,
                                    threads=args.threads)


def run_eval(args: SlacEvalArgs) -> dict[str, Any]:
    """The eval subcommand: clean held-out frames through the ``slac`` backend."""
    from reacher_perception.training.evaluate import evaluate

    return evaluate(args.checkpoint, args.data, args.out, args.sequences, args.threads)


COMMANDS: dict[str, tuple[type, Callable[[Any], dict[str, Any]]]] = {
    'collect': (CollectArgs, run_collect),
    'train': (SlacTrainConfig, run_train),
    'confidence': (ConfidenceArgs, run_confidence),
    'calibrate-symmetries': (CalibrateSymmetriesArgs, run_calibrate_symmetries),
    'eval': (SlacEvalArgs, run_eval),
}
"""Subcommand name -> (its arguments dataclass, its runner)."""
