"""A SLAC checkpoint on held-out sequences: errors of the ``slac`` backend, and a plot.

The frames go, clean, through the same ``SlacEstimator`` the perception node runs, each
with the command of the step before, as the node would receive it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

from reacher_common.kinematics import wrap_angle
from reacher_perception.config import PerceptionConfig
from reacher_perception.slac.estimator import SlacEstimator
from reacher_perception.training.dataset import SequenceDataset


def evaluate(checkpoint: Path, data: Path, out: Path, sequences: int = 50,
             threads: int = 1) -> dict[str, Any]:
    """Filter held-out sequences with a checkpoint; write eval.json and a scatter plot.

    :param checkpoint: the SLAC checkpoint.
    :param data: a folder of held-out shards (or one .npz).
    :param out: where ``eval.json`` and ``estimate_vs_truth.png`` go.
    :param sequences: held-out sequences to filter (at most the dataset's).
    :param threads: torch CPU threads.
    :return: the frame count, joint MAE (deg), mean fingertip and goal errors (mm).
    :raises FileNotFoundError: for missing data or checkpoint.
    :raises ValueError: if the checkpoint was trained for another geometry than the data's.
    """
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    torch.set_num_threads(threads)
    dataset = SequenceDataset(data)
    geometry = dataset.geometry
    estimator = SlacEstimator(PerceptionConfig(
        estimator='slac', checkpoint=str(checkpoint), geometry=geometry))
    joints, goals, true_joints, true_goals, tips, true_tips = [], [], [], [], [], []
    for index in range(min(sequences, len(dataset))):
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
    results = {'checkpoint': str(checkpoint), 'frames': len(joints),
               'joint_mae_deg': float(joint_error.mean()),
               'fingertip_mean_mm': float(tip_error.mean()),
               'goal_mean_mm': float(goal_error.mean())}
    out.mkdir(parents=True, exist_ok=True)
    (out / 'eval.json').write_text(json.dumps(results, indent=2))
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
    figure.savefig(out / 'estimate_vs_truth.png', dpi=80)
    plt.close(figure)
    return results
