"""``reacher perception collect|train|eval``: data, training and evaluation of SLAC.

Each subcommand is a typed dataclass parsed by tyro, so ``--help`` lists every knob::

    reacher perception collect --out data/slac/train --collect.sequences 500
    reacher perception train --data data/slac/train --out runs/slac
    reacher perception eval --checkpoint runs/slac/final.pt --data data/slac/test
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
from pathlib import Path
import sys
from typing import Annotated, Any

import tyro

from reacher_perception.slac.data import CollectConfig, SequenceGeometry
from reacher_perception.slac.train import TrainConfig


@dataclass(frozen=True)
class CollectArgs:
    """Run the simulator with random and noisy-IK policies; write camera sequences."""

    out: Path = Path('data/slac/train')
    """Folder for the shard_XXXX.npz files (format: reacher_perception/slac/data.py)."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    """How many sequences, which policies, the seed."""
    geometry: SequenceGeometry = field(default_factory=SequenceGeometry)
    """Arm, camera and rate; the defaults are config/sim.yaml's (dt 0.05 s, 64 px)."""


@dataclass(frozen=True)
class EvalArgs:
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
    """The collect subcommand."""
    from reacher_perception.slac.data import collect

    paths = collect(args.collect, args.geometry, args.out)
    return {'shards': [str(path) for path in paths], 'sequences': args.collect.sequences,
            'steps': args.collect.steps}


def run_eval(args: EvalArgs) -> dict[str, Any]:
    """The eval subcommand: clean held-out frames through the ``slac`` backend."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from reacher_common.kinematics import wrap_angle
    from reacher_perception.config import PerceptionConfig
    from reacher_perception.slac.data import SequenceDataset
    from reacher_perception.slac.estimator import SlacEstimator

    torch.set_num_threads(args.threads)
    dataset = SequenceDataset(args.data)
    geometry = dataset.geometry
    estimator = SlacEstimator(PerceptionConfig(
        estimator='slac', checkpoint=str(args.checkpoint),
        geometry=geometry.sim_config().geometry))
    joints, goals, true_joints, true_goals, tips, true_tips = [], [], [], [], [], []
    for index in range(min(args.sequences, len(dataset))):
        estimator.reset()
        for step in range(dataset.steps):
            command = (None if step == 0 else
                       dataset.actions[index, step - 1] * geometry.max_joint_velocity)
            estimate = estimator.estimate(dataset.images[index, step], command)
            joints.append(estimate.joint_positions)
            goals.append(estimate.goal)
            tips.append(estimate.fingertip)
            true_joints.append(dataset.joint_positions[index, step])
            true_goals.append(dataset.goal[index, step])
            true_tips.append(dataset.fingertip[index, step])
    joint_error = np.degrees(np.abs(wrap_angle(np.array(joints) - np.array(true_joints))))
    goal_error = 1e3 * np.linalg.norm(np.array(goals) - np.array(true_goals), axis=1)
    tip_error = 1e3 * np.linalg.norm(np.array(tips) - np.array(true_tips), axis=1)
    results = {'checkpoint': str(args.checkpoint), 'frames': len(joints),
               'joint_mae_deg': float(joint_error.mean()),
               'fingertip_mean_mm': float(tip_error.mean()),
               'goal_mean_mm': float(goal_error.mean())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'eval.json').write_text(json.dumps(results, indent=2))
    figure, axes = plt.subplots(1, 4, figsize=(16, 4))
    pairs = [('shoulder (rad)', np.array(true_joints)[:, 0], np.array(joints)[:, 0]),
             ('elbow (rad)', np.array(true_joints)[:, 1], np.array(joints)[:, 1]),
             ('goal x (m)', np.array(true_goals)[:, 0], np.array(goals)[:, 0]),
             ('goal y (m)', np.array(true_goals)[:, 1], np.array(goals)[:, 1])]
    for axis, (name, truth, estimate_values) in zip(axes, pairs, strict=True):
        axis.scatter(truth, estimate_values, s=2)
        axis.plot([truth.min(), truth.max()], [truth.min(), truth.max()], 'k--', lw=0.5)
        axis.set_title(name)
        axis.set_xlabel('truth')
        axis.set_ylabel('SLAC estimate')
    figure.tight_layout()
    figure.savefig(args.out / 'estimate_vs_truth.png', dpi=80)
    plt.close(figure)
    return results


def perception_main(argv: list[str]) -> int:
    """``reacher perception <collect|train|eval> [options]``; returns the exit status."""
    Command = (Annotated[CollectArgs, tyro.conf.subcommand('collect')]
               | Annotated[TrainConfig, tyro.conf.subcommand('train')]
               | Annotated[EvalArgs, tyro.conf.subcommand('eval')])
    args = tyro.cli(Command, args=argv, prog='reacher perception')
    try:
        if isinstance(args, CollectArgs):
            result = run_collect(args)
        elif isinstance(args, TrainConfig):
            from reacher_perception.slac.train import train

            result = train(args)
        else:
            result = run_eval(args)
    except (FileNotFoundError, ValueError) as error:
        print(f'reacher perception: {error}', file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 0
