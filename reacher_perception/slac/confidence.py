"""SLAC's own confidence: per-frame heads checked against the filter, then calibrated.

The latent model reads the state from the filtered latent (``LatentModel.state``). This
module adds, fitted afterwards on the frozen model
(``reacher_perception.training.confidence``):

- an ensemble of ``members`` small MLPs (:class:`FrameHeads`) that read the same state
  (``STATE_NAMES``) from one frame's encoder feature alone, each from its own
  initialisation and bootstrap sample;
- the signals of :data:`SIGNAL_NAMES`, computed from the ensemble, the filtered read-out
  and the model's own self-consistency (:func:`signals`);
- a logistic calibration of those signals into the probability that the filtered
  estimate is right (joints within 10 deg and goal within 20 mm), and a gaussian fit of
  each part's error scale (``joint_std_rad``, ``fingertip_std_m``, ``goal_std_m``).

Why these signals (the figures are in docs/slac.md, "Confidence"): the posterior's std
and the KL surprise did not separate good from bad frames (the heads dominate the latent),
and redrawing the estimate with the decoder costs a decoder pass (0.69 ms) and missed the
texture and camera failures. An ensemble of heads is the usual estimate of epistemic
uncertainty (Lakshminarayanan et al., NeurIPS 2017, arXiv 1612.01474): on a frame unlike
the training frames its members extrapolate apart. The gap between the single-frame
reading and the filter catches a frame that the encoder misreads while the filter still
holds the last good state, and the reverse (a filter that drifted). The sin/cos norm and
the fingertip head against the forward kinematics of the joint heads are the model's
internal consistency, free to compute.

Measured on the shipped checkpoint (docs/slac.md): each signal's AUC for a wrong frame is
0.68-0.84 on the calibration frames (the ensemble's joint spread 0.84, its goal spread
0.80, the joint gap 0.78; the feature distance 0.49, and its fitted weight ~0).
Calibrated with wrong frames weighted 10x, on 20 held-out sequences per scene: confident
on 92% of clean frames with 0.39% silent failures; <= 1% silent in background, lighting,
blur and noise, 1.4% in distractors, 8.6% in camera, 1.2-3.4% in the held-out texture,
JPEG and randomized: the 1% bar is not met everywhere. A weight of 20 is confident on
only 28-69% of frames and still misses camera and JPEG. Cost: ~0.6 ms a frame in the
estimator (2.11 against 1.50 ms median, interleaved; its parts alone: frame heads 0.04,
signals 0.20, calibration 0.01 ms) beside the encoder's ~0.7 ms, and no decoder pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

SIGNAL_NAMES: tuple[str, ...] = (
    'spread_joint_deg', 'spread_goal_mm', 'gap_joint_deg', 'gap_goal_mm',
    'norm_deviation', 'tip_gap_mm', 'feature_distance')
"""The signals the calibration reads, each ``log1p`` of a non-negative value:

- ``spread_joint_deg``: the ensemble's std of the worse joint's angle, degrees;
- ``spread_goal_mm``: the ensemble's std of the goal (root of the summed variances), mm;
- ``gap_joint_deg``: the worse joint's angle of the filter against the ensemble's mean;
- ``gap_goal_mm``: the filter's goal against the ensemble's mean goal, mm;
- ``norm_deviation``: the larger ``|1 - sqrt(sin^2 + cos^2)|`` of the filter's two joints;
- ``tip_gap_mm``: the fingertip head against the forward kinematics of the joint heads;
- ``feature_distance``: the mean squared standardised encoder feature (each dimension
  standardised by the training frames' mean and std), a cheap novelty score of the frame.
"""

GATE_JOINT_DEG = 10.0
"""Largest joint gap between the filter and the frame heads that :meth:`SlacConfidence.
read_out` still blends (the project's "wrong frame" tolerance)."""
GATE_GOAL_MM = 20.0
"""... and the largest goal gap."""

SYMMETRY_SIGNAL_NAMES: tuple[str, ...] = ('mean_logit', 'agreement_joint_deg',
                                          'agreement_goal_mm')
"""The symmetry calibration's inputs (:func:`symmetry_signals`), for an estimator that
averages the readings of filters on the frame's mapped copies (``PerceptionConfig.
test_time_symmetries``):

- ``mean_logit``: the mean over the filters of each one's calibrated confidence as a
  logit, ``log(c / (1 - c))`` (``c`` clipped to [1e-5, 1 - 1e-5]);
- ``agreement_joint_deg``: ``log1p`` of the filters' RMS deviation from the averaged
  joint angle, degrees, the worse joint;
- ``agreement_goal_mm``: ``log1p`` of their RMS deviation from the averaged goal, mm.
"""

SYMMETRY_COUNTS: tuple[int, ...] = (2, 4, 8)
"""The filter counts a symmetry calibration is fitted for, one row each
(``PerceptionConfig.test_time_symmetries`` above 1)."""

PARTS: tuple[str, ...] = ('joint', 'fingertip', 'goal')
"""The parts whose error scale is fitted (``Estimate.joint_std_rad`` and the others)."""


class FrameHeads(nn.Module):
    """An ensemble of MLPs from one frame's encoder feature to the state (batched).

    Each member is ``Linear(encoded_dim, hidden) -> LeakyReLU -> Linear(hidden, hidden) ->
    LeakyReLU -> Linear(hidden, state_dim)``; the members run as one batched matmul. The
    feature is standardised with the training features' mean and std (buffers).

    :param encoded_dim: size of the encoder's output.
    :param state_dim: outputs per member (``len(STATE_NAMES)``).
    :param members: ensemble size, >= 2.
    :param hidden: hidden width.
    """

    def __init__(self, encoded_dim: int, state_dim: int, members: int, hidden: int) -> None:
        super().__init__()
        if members < 2:
            raise ValueError(f'FrameHeads needs members >= 2, got {members}')
        self.register_buffer('feature_mean', torch.zeros(encoded_dim))
        self.register_buffer('feature_std', torch.ones(encoded_dim))
        sizes = [encoded_dim, hidden, hidden, state_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(
                torch.empty(members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(
                torch.empty(members, 1, fan_out).uniform_(-bound, bound)))

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    @property
    def members(self) -> int:
        """Ensemble size."""
        return int(self.weights[0].shape[0])

    def distance(self, feature: torch.Tensor) -> torch.Tensor:
        """The mean squared standardised feature, (N,) from (N, encoded_dim)."""
        return ((feature - self.feature_mean) / self.feature_std).pow(2).mean(-1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """Every member's reading of the state.

        :param feature: (N, encoded_dim) float32, encoder outputs.
        :return: (members, N, state_dim) float32.
        """
        hidden = ((feature - self.feature_mean) / self.feature_std).unsqueeze(0)
        hidden = hidden.expand(self.members, -1, -1)
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if index < last:
                hidden = nn.functional.leaky_relu(hidden, 0.2)
        return hidden


def _angles(state: torch.Tensor) -> torch.Tensor:
    """(..., 8) state -> (..., 2) joint angles, rad (atan2 of the sin/cos heads)."""
    return torch.atan2(state[..., [0, 2]], state[..., [1, 3]])


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def signals(frame_states: torch.Tensor, filtered: torch.Tensor, feature_distance: torch.Tensor,
            reach_m: float, upper_arm_m: float, forearm_m: float) -> torch.Tensor:
    """The calibration's inputs (``SIGNAL_NAMES``) for N frames.

    :param frame_states: (members, N, 8) the ensemble's readings (:class:`FrameHeads`).
    :param feature_distance: (N,) ``FrameHeads.distance`` of the frames' features.
    :param filtered: (N, 8) the filtered latent's read-out (``LatentModel.state``).
    :param reach_m: the arm's reach (positions in the state are divided by it).
    :param upper_arm_m: link length, metres.
    :param forearm_m: link length, metres.
    :return: (N, len(SIGNAL_NAMES)) float32, each ``log1p`` of a value >= 0.
    """
    member_angles = _angles(frame_states)                          # (M, N, 2)
    mean_angles = torch.atan2(torch.sin(member_angles).mean(0),
                              torch.cos(member_angles).mean(0))    # (N, 2)
    spread_joint = _wrap(member_angles - mean_angles).pow(2).mean(0).sqrt().amax(-1)
    goals = frame_states[..., 6:8] * reach_m
    spread_goal = goals.var(0, unbiased=False).sum(-1).sqrt()
    angles = _angles(filtered)
    gap_joint = _wrap(angles - mean_angles).abs().amax(-1)
    gap_goal = (filtered[:, 6:8] * reach_m - goals.mean(0)).norm(dim=-1)
    norms = filtered[:, [0, 2]].pow(2) + filtered[:, [1, 3]].pow(2)
    norm_deviation = (1.0 - norms.sqrt()).abs().amax(-1)
    q1, q12 = angles[:, 0], angles[:, 0] + angles[:, 1]
    tip = torch.stack([upper_arm_m * torch.cos(q1) + forearm_m * torch.cos(q12),
                       upper_arm_m * torch.sin(q1) + forearm_m * torch.sin(q12)], -1)
    tip_gap = (filtered[:, 4:6] * reach_m - tip).norm(dim=-1)
    values = torch.stack([torch.rad2deg(spread_joint), 1e3 * spread_goal,
                          torch.rad2deg(gap_joint), 1e3 * gap_goal, norm_deviation,
                          1e3 * tip_gap, feature_distance], -1)
    return torch.log1p(values)


def symmetry_signals(joint_positions: npt.NDArray[np.floating], goals: npt.NDArray[np.floating],
                     confidences: npt.NDArray[np.floating], mean_joints: npt.ArrayLike,
                     mean_goal: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The symmetry calibration's inputs (``SYMMETRY_SIGNAL_NAMES``) for one frame.

    :param joint_positions: (B, 2) each filter's joint angles mapped back, rad.
    :param goals: (B, 2) each filter's goal mapped back, m.
    :param confidences: (B,) each filter's calibrated confidence, in [0, 1].
    :param mean_joints: (2,) the averaged joint angles (circular mean), rad.
    :param mean_goal: (2,) the averaged goal, m.
    :return: (3,) float64.
    """
    deviation = np.remainder(joint_positions - np.asarray(mean_joints) + math.pi,
                             2.0 * math.pi) - math.pi
    joint = math.degrees(float(np.sqrt((deviation ** 2).mean(axis=0)).max()))
    goal = 1e3 * float(np.sqrt(((goals - np.asarray(mean_goal)) ** 2).sum(axis=1).mean()))
    clipped = np.clip(confidences, 1e-5, 1.0 - 1e-5)
    mean_logit = float(np.log(clipped / (1.0 - clipped)).mean())
    return np.array([mean_logit, math.log1p(joint), math.log1p(goal)])


def symmetry_confidence(fit: tuple[npt.NDArray[np.float64], float],
                        signal_values: npt.NDArray[np.float64]) -> float:
    """The confidence of an estimate averaged over several filters' mapped readings.

    ``sigmoid(w . signals + b)``, fitted on held-out frames by
    ``reacher_perception.training.symmetry_calibration``: each filter's confidence was
    calibrated for its own reading, and their mean is not the probability that their
    average is right (frames whose mean confidence was 0.3-0.5 were right 94-97% of the
    time in `randomized`, docs/slac.md, "Tenth pass"). Whether the filters agree is the
    other sign: a frame that fools one filter rarely fools the others the same way.

    :param fit: from :meth:`SlacConfidence.symmetry_fit`.
    :param signal_values: (3,) from :func:`symmetry_signals`.
    :return: in [0, 1].
    """
    weight, bias = fit
    logit = float(weight @ signal_values) + bias
    return 1.0 / (1.0 + math.exp(-min(max(logit, -60.0), 60.0)))


class SlacConfidence(nn.Module):
    """Frame heads + calibration: the confidence and error scales of filtered estimates.

    ``confidence = sigmoid(w . signals + b)`` (logistic regression, fitted on held-out
    frames of the training scenes); each part's error std is ``exp(v_p . signals + c_p)``
    (a gaussian fit of the error's scale: metres for the fingertip and goal per axis,
    radians for the joints).

    :param encoded_dim: size of the encoder's output.
    :param state_dim: the state heads' outputs.
    :param members: frame heads in the ensemble.
    :param hidden: their hidden width.
    """

    def __init__(self, encoded_dim: int, state_dim: int, members: int = 5,
                 hidden: int = 64) -> None:
        super().__init__()
        self.frame_heads = FrameHeads(encoded_dim, state_dim, members, hidden)
        count = len(SIGNAL_NAMES)
        self.register_buffer('logistic_weight', torch.zeros(count))
        self.register_buffer('logistic_bias', torch.zeros(()))
        self.register_buffer('scale_weight', torch.zeros(len(PARTS), count))
        self.register_buffer('scale_bias', torch.full((len(PARTS),), math.nan))
        self.register_buffer('blend', torch.zeros(()))
        self.register_buffer('symmetry_weight', torch.full(
            (len(SYMMETRY_COUNTS), len(SYMMETRY_SIGNAL_NAMES)), math.nan))
        self.register_buffer('symmetry_bias', torch.full((len(SYMMETRY_COUNTS),), math.nan))

    logistic_weight: torch.Tensor
    symmetry_weight: torch.Tensor
    """(len(SYMMETRY_COUNTS), len(SYMMETRY_SIGNAL_NAMES)): per filter count, the logistic
    weights of :func:`symmetry_confidence`; nan where none was fitted."""
    symmetry_bias: torch.Tensor
    """(len(SYMMETRY_COUNTS),): ... and the biases."""
    blend: torch.Tensor
    """Weight of the frame heads' mean in the published estimate (:meth:`read_out`): 0.5
    in new fits, 0 (the filter alone) for a fit stored before it existed."""
    logistic_bias: torch.Tensor
    scale_weight: torch.Tensor
    scale_bias: torch.Tensor

    def config(self) -> dict[str, Any]:
        """The sizes, as stored in a checkpoint's metadata."""
        return {'members': self.frame_heads.members,
                'hidden': int(self.frame_heads.weights[0].shape[2])}

    def read_out(self, filtered: torch.Tensor, frame_states: torch.Tensor, reach_m: float
                 ) -> torch.Tensor:
        """The estimate's state: the filter's read-out blended with the frame heads' mean.

        Two readers of the same frame that err differently (the filter carries the last
        frames, each head only this one), so their mean errs less than either: on 300
        held-out sequences of clean frames (IK-driven) the worse joint's MAE fell from
        2.07 to 1.83 deg, the median goal error from 6.5 to 5.2 mm, and the frames past
        10 deg or 20 mm from 1.7% to 0.6% (docs/slac.md, "Confidence"). The blend is
        gated, as a fusion gates an inconsistent measurement: where the heads' mean is
        more than ``GATE_JOINT_DEG`` (either joint) or ``GATE_GOAL_MM`` off the filter,
        that part is the filter's alone, so a blank or covered frame, which the heads
        misread and the filter predicts through, does not pull the estimate. Sin/cos are
        averaged as vectors (the angle is their circular mean); the fingertip follows
        the joints.

        :param filtered: (N, 8) ``LatentModel.state`` of the filtered latent.
        :param frame_states: (members, N, 8) :class:`FrameHeads` readings of the frame.
        :param reach_m: the arm's reach (positions in the state are divided by it).
        :return: (N, 8) float32, in ``STATE_NAMES`` order.
        """
        heads = frame_states.mean(0)
        gap_joint = _wrap(_angles(heads) - _angles(filtered)).abs().amax(-1, keepdim=True)
        gap_goal = (heads[:, 6:8] - filtered[:, 6:8]).norm(dim=-1, keepdim=True) * reach_m
        joint_ok = gap_joint <= math.radians(GATE_JOINT_DEG)
        goal_ok = gap_goal <= GATE_GOAL_MM / 1e3
        use = torch.cat([joint_ok.expand(-1, 6), goal_ok.expand(-1, 2)], -1)
        return torch.where(use, filtered + self.blend * (heads - filtered), filtered)

    def symmetry_fit(self, count: int) -> tuple[npt.NDArray[np.float64], float] | None:
        """The symmetry calibration's weights and bias for ``count`` filters, as numpy.

        Read once, where an estimator starts, for :func:`symmetry_confidence` on each
        frame.

        :param count: filters averaged (``PerceptionConfig.test_time_symmetries``).
        :return: ((3,) weights, bias), or None when ``count`` is not in
            ``SYMMETRY_COUNTS`` or none was fitted for it (the estimator then publishes
            the filters' mean confidence).
        """
        if count not in SYMMETRY_COUNTS:
            return None
        row = SYMMETRY_COUNTS.index(count)
        weight = self.symmetry_weight[row].double().numpy().copy()
        bias = float(self.symmetry_bias[row])
        if not (math.isfinite(bias) and np.isfinite(weight).all()):
            return None
        return weight, bias

    def forward(self, signal_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Confidence and error stds from the signals.

        :param signal_values: (N, len(SIGNAL_NAMES)) from :func:`signals`.
        :return: ``(confidence, stds)``: (N,) in [0, 1] and (N, 3) for ``PARTS`` (rad, m,
            m).
        """
        logit = signal_values @ self.logistic_weight + self.logistic_bias
        stds = torch.exp(signal_values @ self.scale_weight.T + self.scale_bias)
        return torch.sigmoid(logit), stds
