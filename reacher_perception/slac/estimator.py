"""The ``slac`` perception backend: a trained latent model filtering the camera stream.

Each frame updates the latent from the previous latent and the last command, on the
posterior means (arXiv 1907.00953 sec. 4, the filtering posterior):

- first frame after ``reset``: z1 = mean q(z1_1 | x_1), z2 = mean p(z2_1 | z1_1);
- then: z1 = mean q(z1_{t+1} | x_{t+1}, z2_t, a_t), z2 = mean p(z2_{t+1} | z1_{t+1},
  z2_t, a_t), with a_t the command received since the previous frame divided by the
  checkpoint's ``max_joint_velocity`` (zeros when unknown).

The state heads read (z1, z2); with a fitted confidence that read-out is blended with the
confidence's per-frame heads (``SlacConfidence.read_out``: two readers that err
differently, gated where they disagree). Joint angles come from the sin/cos (atan2), the
goal from its head; the fingertip is the forward kinematics of the joint angles, as ``Estimate``
promises. ``Estimate.latent`` is the filtered latent state (z1, z2) concatenated, what
SLAC's critic reads and the perception node publishes on /perception/latent. A learned
estimator always "sees" both parts, so ``arm_visible`` and ``goal_visible`` are True.

``Estimate.confidence`` and the error stds (``joint_std_rad``, ``fingertip_std_m``,
``goal_std_m``) come from the checkpoint's fitted confidence
(:mod:`reacher_perception.slac.confidence`: per-frame heads on this frame's encoder
feature against the filter, and the heads' self-consistency, calibrated); a checkpoint
without one (format ``reacher-slac-1``) gives nan for all four.

Test-time symmetries (``PerceptionConfig.test_time_symmetries``, default 8): the camera
looks straight down at the shoulder in the image centre, so each of the square's 8
symmetries (``reacher_common.symmetry``) maps a frame of the arm to a frame of the mapped
arm, which the model has seen as often. The estimator runs one filter per element, each
on its own mapped frame with the command mapped alike (a reflection negates the joint
velocities), maps each reading back by the inverse element and averages: the circular
mean of each joint angle, the mean goal; the error stds are the filters' means, and the
confidence is calibrated for the average (``confidence.symmetry_confidence``: the
filters' mean confidence and how well their readings agree; their plain mean for a
checkpoint without that calibration), then capped by the redraw check of the averaged
estimate. The filters err
differently on a frame they misread (a JPEG block, a lit patch, a distractor seen at
another angle), so the mean is more often right and a misread frame lowers the mean
confidence: on 40 held-out `randomized` sequences (seed 1000) 8 filters lose 9.0% of
frames against 14.1% for the identity alone, with 0.55% silent failures against 1.80%,
and read clean frames at 0.47 deg against 0.98 (docs/ros.md, "Test-time symmetries").
``Estimate.latent`` is the identity filter's, the latent the ``slac`` controller was
trained on.

The network runs as one :class:`~reacher_perception.slac.frame_step.FrameStep` per frame
for all the filters at once (a batch of B mapped frames), exported to ONNX Runtime at
start (``PerceptionConfig.runtime``: 'onnxruntime', the default, ~0.4 ms a filter on the
machine that measured it) or in torch ('torch', the reference, ~1.5 ms).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from reacher_common.geometry import mismatches
from reacher_common.symmetry import action_signs, matrices, transform_frame
from reacher_perception.background import BackgroundNormalizer
from reacher_perception.config import PerceptionConfig, TEST_TIME_SYMMETRIES
from reacher_perception.estimator import (
    Estimate,
    ESTIMATORS,
    fingertip_position,
    validate_image,
)
from reacher_perception.redraw import RedrawCheck, support
from reacher_perception.slac.checkpoint import (
    default_slac_checkpoint,
    load_checkpoint,
    load_confidence,
    SLAC_GEOMETRY_FIELDS,
)
from reacher_perception.slac.confidence import symmetry_confidence, symmetry_signals
from reacher_perception.slac.frame_step import (
    FrameStepRunner,
    OnnxFrameStep,
    OUTPUTS,
    TorchFrameStep,
)
from reacher_perception.slac.latent import LatentModel

_RGB_PIXEL = np.dtype((np.void, 3))
"""An rgb8 pixel as one item, so that moving pixels moves their three bytes."""


class SlacEstimator:
    """Joint angles, fingertip, goal and latent from a stream of frames, by filtering.

    :param config: the perception config; ``checkpoint`` names the weights ('' = the
        shipped ``checkpoints/slac_reacher.pt``); its geometry must match the checkpoint's.
    :raises FileNotFoundError: naming a missing checkpoint.
    :raises ValueError: if the checkpoint's geometry differs from the config's.
    """

    config: PerceptionConfig
    model: LatentModel

    def __init__(self, config: PerceptionConfig) -> None:
        self.config = config
        path = Path(config.checkpoint) if config.checkpoint else default_slac_checkpoint()
        checkpoint = load_checkpoint(path)
        model, geometry, timing, _ = checkpoint
        differ = mismatches(geometry, config.geometry, SLAC_GEOMETRY_FIELDS)
        if differ:
            raise ValueError(f'SLAC checkpoint {path} does not match PerceptionConfig: '
                             f'{"; ".join(differ)}; train one for this camera and arm')
        self.model = model
        self.confidence = load_confidence(checkpoint)
        """The fitted confidence, or None (the checkpoint has none: nan confidence)."""
        # One thread (process-wide): a frame of this small net gains nothing from more, and
        # in the demo, with torch's default threads on a busy 2-core machine, the node's
        # median inference was 11.6 ms against 0.9 ms single-threaded in the benchmark.
        torch.set_num_threads(1)
        self.geometry = geometry
        """The checkpoint's arm and camera (its ``max_joint_velocity`` scales commands)."""
        self.timing = timing
        """The checkpoint's frame period."""
        self.checkpoint_path = path
        self._reach_m = geometry.reach_m
        step_type = OnnxFrameStep if config.runtime == 'onnxruntime' else TorchFrameStep
        self.symmetries = TEST_TIME_SYMMETRIES[config.test_time_symmetries]
        """The elements of the square's symmetry group (``reacher_common.symmetry``) whose
        mapped frames are filtered, the identity first (``test_time_symmetries``)."""
        self.step: FrameStepRunner = step_type(model, self.confidence, geometry,
                                               batch=len(self.symmetries))
        """The per-frame network (:mod:`reacher_perception.slac.frame_step`), in the
        configured ``runtime``."""
        self._signs = action_signs(self.symmetries).astype(np.float32)[:, None]
        self._quarter_turns = (np.asarray(self.symmetries) % 4) * (math.pi / 2.0)
        self._matrices = matrices(self.symmetries)
        # Where each filter's frame takes each pixel from: the maps applied once, here, to
        # an image of pixel indices, so a frame's 8 mapped copies are one gather.
        size = config.geometry.image_size
        pixels = np.arange(size * size).reshape(size, size)
        self._sources = np.stack([transform_frame(pixels, element).ravel()
                                  for element in self.symmetries])
        self._symmetry_fit = (self.confidence.symmetry_fit(len(self.symmetries))
                              if self.confidence is not None else None)
        self._z2: npt.NDArray[np.float32] | None = None
        self.last_readings: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                  npt.NDArray[np.float64]] | None = None
        """The last frame's filters' readings, with more than one filter and a confidence:
        joint angles (B, 2) rad and goals (B, 2) m mapped back (:meth:`mapped_readings`),
        and each filter's confidence (B,) before the symmetry calibration; else None."""
        self.normalize = (BackgroundNormalizer(geometry.image_size)
                          if config.normalize_background else None)
        """The frame's table repainted before the network reads it, or None
        (``PerceptionConfig.normalize_background``)."""
        self.redraw = (RedrawCheck(geometry) if self.normalize is not None
                       and self.confidence is not None else None)
        """With a repainted frame and a confidence: the confidence is capped by how much of
        the redrawn estimate the frame shows (``reacher_perception.redraw``)."""

    def reset(self) -> None:
        """Forget the latent: the next frame starts a new filter with q(z1_1 | x_1)."""
        self._z2 = None

    def estimate(self, image: npt.NDArray[np.uint8],
                 previous_command: npt.NDArray[np.float64] | None = None) -> Estimate:
        """Update the latent with one frame and read the state out.

        :param image: (H, W, 3) uint8 rgb8, H = W = ``config.geometry.image_size``.
        :param previous_command: (2,) float64 rad/s, the joint velocities commanded since
            the previous frame; None reads as zeros.
        :return: the estimate, with ``latent`` (z1_dim + z2_dim,) float32.
        :raises ValueError: if the image has the wrong shape or dtype.
        """
        validate_image(image, self.config.geometry.image_size)
        if self.normalize is not None:
            image = self.normalize(image)
        command = (np.zeros(2) if previous_command is None
                   else np.asarray(previous_command, dtype=np.float64))
        action = np.clip(command / self.geometry.max_joint_velocity, -1.0, 1.0
                         ).astype(np.float32)[None]
        # One filter per symmetry, all stepped at once; the first is the identity, whose
        # latent is published.
        image = np.ascontiguousarray(image)
        if len(self.symmetries) == 1:
            images = image[None]
        else:
            # Each pixel as one 3-byte item, gathered for all filters at once.
            rgb = image.reshape(-1, 3).view(_RGB_PIXEL).ravel()
            images = rgb[self._sources].view(np.uint8).reshape(len(self.symmetries),
                                                                *image.shape)
        outputs = self.step(images, self._z2, action * self._signs)
        read, z1, z2 = outputs[:3]
        self._z2 = z2
        mapped: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        self.last_readings = None
        if len(self.symmetries) == 1:
            # The read-out in Python floats: two angles and two coordinates, where numpy's
            # per-call cost was most of the post-processing's.
            state = read[0].tolist()
            shoulder, elbow = math.atan2(state[0], state[1]), math.atan2(state[2], state[3])
            goal_xy = (state[6] * self._reach_m, state[7] * self._reach_m)
        else:
            mapped = self.mapped_readings(read)
            shoulder, elbow, goal_xy = _average(*mapped)
        joints = np.array([shoulder, elbow])
        goal = np.array(goal_xy)
        fingertip = fingertip_position(shoulder, elbow, self.geometry.upper_arm_length_m,
                                       self.geometry.forearm_length_m)
        latent = np.concatenate((z1[0], z2[0]), dtype=np.float32)
        scores = [math.nan] * 4
        if len(outputs) == len(OUTPUTS):
            # The filters' mean confidence and error stds, the confidence calibrated for
            # their average where the checkpoint has that calibration.
            scores = [float(outputs[3].mean(dtype=np.float64)),
                      *outputs[4].mean(axis=0, dtype=np.float64).tolist()]
            if mapped is not None:
                self.last_readings = (*mapped, outputs[3].astype(np.float64))
            if mapped is not None and self._symmetry_fit is not None:
                scores[0] = symmetry_confidence(
                    self._symmetry_fit, symmetry_signals(*mapped, outputs[3], joints, goal))
            if self.redraw is not None:
                # Not sure of what the frame does not show (reacher_perception.redraw).
                scores[0] = min(scores[0], support(self.redraw(image, joints, goal)))
        return Estimate(joint_positions=joints, fingertip=fingertip, goal=goal,
                        arm_visible=True, goal_visible=True, latent=latent,
                        confidence=scores[0], joint_std_rad=scores[1],
                        fingertip_std_m=scores[2], goal_std_m=scores[3])

    def mapped_readings(self, states: npt.NDArray[np.float32]
                        ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The filters' read-outs mapped back by the inverses of their symmetries.

        :param states: (B, 8) each filter's state read-out (sin q1, cos q1, sin q2, cos q2,
            fingertip xy / reach, goal xy / reach) in its mapped frame, B =
            ``len(self.symmetries)``.
        :return: joint angles (B, 2), rad, and goals (B, 2), m, in the camera's frame.
        """
        mapped_shoulder = np.arctan2(states[:, 0], states[:, 1])
        mapped_elbow = np.arctan2(states[:, 2], states[:, 3])
        # g^-1 of (s * q1 + k * pi / 2, s * q2): q1 = s * (q1' - k * pi / 2), q2 = s * q2'.
        shoulder = self._signs[:, 0] * (mapped_shoulder - self._quarter_turns)
        elbow = self._signs[:, 0] * mapped_elbow
        # The matrices are orthogonal: g^-1 v = M^T v.
        goals = np.einsum('nji,nj->ni', self._matrices, states[:, 6:8] * self._reach_m)
        return np.stack([shoulder, elbow], axis=1).astype(np.float64), goals.astype(np.float64)


def _average(joint_positions: npt.NDArray[np.float64], goals: npt.NDArray[np.float64]
             ) -> tuple[float, float, tuple[float, float]]:
    """The average of B readings: the circular mean of each joint, the mean goal.

    :param joint_positions: (B, 2) rad, from :meth:`SlacEstimator.mapped_readings`.
    :param goals: (B, 2) m.
    :return: shoulder and elbow (rad) and the goal (m).
    """
    sines, cosines = np.sin(joint_positions).mean(axis=0), np.cos(joint_positions).mean(axis=0)
    mean_goal = goals.mean(axis=0)
    return (math.atan2(float(sines[0]), float(cosines[0])),
            math.atan2(float(sines[1]), float(cosines[1])),
            (float(mean_goal[0]), float(mean_goal[1])))


ESTIMATORS['slac'] = SlacEstimator
