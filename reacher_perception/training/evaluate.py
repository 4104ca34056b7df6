"""Estimators on held-out sequences: every frame's reading beside the truth, and a plot.

The frames go through the same estimator the perception node runs, each with the command
of the step before, as the node would receive it (:func:`read_sequences`; the benchmarks
``perception_scenes.py`` and ``slac_scene_ablation.py`` use it too). :func:`evaluate` is
``reacher perception eval``: a SLAC checkpoint on clean held-out sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
import json
from pathlib import Path
import time
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
import torch

from reacher_common.camera_calibration import CameraCalibration, Rectifier
from reacher_common.estimate_msgs import LOST_GOAL_MM, LOST_JOINT_DEG
from reacher_common.kinematics import wrap_angle
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import Estimator
from reacher_perception.slac.estimator import SlacEstimator
from reacher_perception.training.dataset import SequenceDataset

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FrameReadout:
    """An estimator's reading of N frames, beside the truth; positions in ``world``."""

    joint_positions: FloatArray
    """(N, 2) estimated joint angles, rad."""
    fingertip: FloatArray
    """(N, 2) estimated fingertip, m."""
    goal: FloatArray
    """(N, 2) estimated goal, m."""
    confidence: FloatArray
    """(N,) ``Estimate.confidence`` (nan for an estimator without one)."""
    seconds: FloatArray
    """(N,) wall time of each ``estimate`` call, s."""
    true_joint_positions: FloatArray
    """(N, 2) rad."""
    true_fingertip: FloatArray
    """(N, 2) m."""
    true_goal: FloatArray
    """(N, 2) m."""

    @property
    def joint_error_deg(self) -> FloatArray:
        """(N, 2) absolute wrapped error of each joint, degrees."""
        return np.degrees(np.abs(wrap_angle(self.joint_positions - self.true_joint_positions)))

    @property
    def fingertip_error_mm(self) -> FloatArray:
        """(N,) fingertip distance from the truth, mm."""
        return 1e3 * np.linalg.norm(self.fingertip - self.true_fingertip, axis=1)

    @property
    def goal_error_mm(self) -> FloatArray:
        """(N,) goal distance from the truth, mm."""
        return 1e3 * np.linalg.norm(self.goal - self.true_goal, axis=1)

    @property
    def lost(self) -> npt.NDArray[np.bool_]:
        """(N,) wrong frames: a joint > ``LOST_JOINT_DEG`` or the goal > ``LOST_GOAL_MM`` off.

        The same wrong frame as the confidence is fitted on.
        """
        return ((self.joint_error_deg.max(axis=1) > LOST_JOINT_DEG)
                | (self.goal_error_mm > LOST_GOAL_MM))

    def confident(self, threshold: float) -> npt.NDArray[np.bool_]:
        """(N,) frames acted on at policy_node's ``min_confidence`` = ``threshold``.

        An estimator without a confidence (nan) is always taken at its word.
        """
        return np.isnan(self.confidence) | (self.confidence >= threshold)


def read_sequences(estimator: Estimator, dataset: SequenceDataset,
                   sequences: int | None = None, rectify: bool = True,
                   images: npt.NDArray[np.uint8] | None = None,
                   calibrations: Sequence[CameraCalibration] | None = None,
                   after_each: Callable[[], None] | None = None) -> FrameReadout:
    """Filter sequences frame by frame, as perception_node does, and keep every reading.

    Each sequence starts from ``estimator.reset()``; each frame but the first comes with
    the command of the step before (the recorded action times the arm's velocity limit).

    :param estimator: any ``reacher_perception.estimator.Estimator``.
    :param dataset: the held-out sequences.
    :param sequences: how many of them, from the first (None: all).
    :param rectify: rectify each frame with its sequence's camera calibration first, as
        perception_node does by default (``PerceptionConfig.rectify``); the time per
        frame includes it.
    :param images: (N, T, H, W, 3) uint8 frames to read instead of the dataset's: the same
        motions drawn in other scenes (None: the dataset's own).
    :param calibrations: the camera of each of those sequences (None: the dataset's).
    :param after_each: called after each frame's estimate (to read more of the
        estimator's state than the estimate carries).
    :return: the readings of ``sequences * dataset.steps`` frames, in order.
    """
    count = len(dataset) if sequences is None else min(sequences, len(dataset))
    velocity = dataset.geometry.max_joint_velocity
    joints, tips, goals, confidence, seconds = [], [], [], [], []
    for index in range(count):
        estimator.reset()
        calibration = (dataset.calibration(index) if calibrations is None
                       else calibrations[index])
        rectifier = Rectifier(calibration) if rectify else None
        for step in range(dataset.steps):
            command = None if step == 0 else dataset.actions[index, step - 1] * velocity
            began = time.perf_counter()
            frame = (dataset.images if images is None else images)[index, step]
            estimate = estimator.estimate(frame if rectifier is None else rectifier(frame),
                                          command)
            seconds.append(time.perf_counter() - began)
            if after_each is not None:
                after_each()
            joints.append(estimate.joint_positions)
            tips.append(estimate.fingertip)
            goals.append(estimate.goal)
            confidence.append(estimate.confidence)

    def truth(values: npt.NDArray[Any]) -> FloatArray:
        return np.asarray(values[:count], dtype=np.float64).reshape(-1, 2)

    return FrameReadout(
        joint_positions=np.array(joints, dtype=np.float64), fingertip=np.array(tips),
        goal=np.array(goals), confidence=np.array(confidence, dtype=np.float64),
        seconds=np.array(seconds), true_joint_positions=truth(dataset.joint_positions),
        true_fingertip=truth(dataset.fingertip), true_goal=truth(dataset.goal))


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
    readout = read_sequences(estimator, dataset, sequences)
    results = {'checkpoint': str(checkpoint), 'frames': len(readout.confidence),
               'joint_mae_deg': float(readout.joint_error_deg.mean()),
               'fingertip_mean_mm': float(readout.fingertip_error_mm.mean()),
               'goal_mean_mm': float(readout.goal_error_mm.mean())}
    out.mkdir(parents=True, exist_ok=True)
    (out / 'eval.json').write_text(json.dumps(results, indent=2))
    figure, axes = plt.subplots(1, 4, figsize=(16, 4))
    pairs = [('shoulder (rad)', readout.true_joint_positions[:, 0],
              readout.joint_positions[:, 0]),
             ('elbow (rad)', readout.true_joint_positions[:, 1], readout.joint_positions[:, 1]),
             ('goal x (m)', readout.true_goal[:, 0], readout.goal[:, 0]),
             ('goal y (m)', readout.true_goal[:, 1], readout.goal[:, 1])]
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
