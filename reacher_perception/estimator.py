"""What every state estimator returns and promises, and the registry that makes them.

An estimator turns one rgb8 camera frame into the arm's joint angles, its fingertip and the
goal (frame ``world`` of ``reacher_common.kinematics``: x right, y up, origin at the
shoulder). Backends register a factory in :data:`ESTIMATORS` under the name that
``PerceptionConfig.estimator`` selects; :func:`make_estimator` builds the configured one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import importlib
import math
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from reacher_common.config_tools import FieldError
from reacher_perception.config import PerceptionConfig

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """The scene state read from one camera frame.

    :param joint_positions: (2,) float64 radians, (shoulder, elbow), the elbow relative to
        the upper arm, each wrapped to [-pi, pi).
    :param fingertip: (2,) float64 metres in ``world``, the forward kinematics of
        ``joint_positions``.
    :param goal: (2,) float64 metres in ``world``, the goal square's centre.
    :param arm_visible: whether the arm was found in this frame; when False,
        ``joint_positions`` and ``fingertip`` are the last ones found (zeros before any).
    :param goal_visible: whether the goal was found in this frame; when False, ``goal`` is
        the last one found (zeros before any).
    :param latent: (D,) float32 latent state of a learned estimator, or None.
    :param confidence: the estimator's own score in [0, 1] that this frame's estimate is
        right (joints within 10 deg, goal within 20 mm), calibrated so that 0.5 separates
        right from wrong on held-out frames of every scene (benchmarks/README.md, Scenes);
        nan when the estimator gives none. A part not seen gives 0.
    :param joint_std_rad: the estimator's own standard deviation of each joint angle's
        error, radians (one value for both joints); nan when it gives none.
    :param fingertip_std_m: the same for the fingertip, metres, per axis (isotropic in the
        table's plane); nan when it gives none.
    :param goal_std_m: the same for the goal, metres, per axis; nan when it gives none.
    """

    joint_positions: FloatArray
    fingertip: FloatArray
    goal: FloatArray
    arm_visible: bool
    goal_visible: bool
    latent: npt.NDArray[np.float32] | None = None
    confidence: float = math.nan
    joint_std_rad: float = math.nan
    fingertip_std_m: float = math.nan
    goal_std_m: float = math.nan


@runtime_checkable
class Estimator(Protocol):
    """A state estimator from camera frames; it may keep memory between frames."""

    def reset(self) -> None:
        """Forget every earlier frame (a new episode, or the camera restarted)."""
        ...

    def estimate(self, image: npt.NDArray[np.uint8],
                 previous_command: npt.NDArray[np.float64] | None = None) -> Estimate:
        """Estimate the scene state from one frame.

        :param image: (H, W, 3) uint8 rgb8, H = W = ``PerceptionConfig.image_size``.
        :param previous_command: (2,) float64 rad/s, the joint velocities commanded since
            the previous frame, for estimators with a dynamics model; None if unknown.
        :return: the estimate for this frame.
        :raises ValueError: if the image has the wrong shape or dtype.
        """
        ...


EstimatorFactory = Callable[[PerceptionConfig], Estimator]

ESTIMATORS: dict[str, EstimatorFactory] = {}
"""Estimator name -> factory; a backend adds itself when its module is imported."""

BACKEND_MODULES: dict[str, str] = {'classical': 'reacher_perception.classical',
                                   'slac': 'reacher_perception.slac.estimator'}
"""Estimator name -> the module that registers it. :func:`make_estimator` imports only
the one asked for, so a classical perception node never loads torch."""


def validate_image(image: npt.NDArray[np.uint8], image_size: int) -> None:
    """Check that a frame is what the estimators read.

    :param image: the frame; must be (image_size, image_size, 3) uint8, rgb8.
    :param image_size: expected width = height, pixels.
    :raises ValueError: naming the expected and the received shape and dtype.
    """
    shape = getattr(image, 'shape', None)
    dtype = getattr(image, 'dtype', None)
    expected = (image_size, image_size, 3)
    if shape != expected or dtype != np.uint8:
        got = f'{tuple(shape)} {dtype}' if shape is not None else type(image).__name__
        raise ValueError(f'expected a {expected} uint8 rgb8 image, got {got}')


def fingertip_position(shoulder: float, elbow: float, upper_arm_length: float,
                       forearm_length: float) -> FloatArray:
    """``reacher_common.kinematics.forward_kinematics``'s fingertip for one pose, in floats.

    The same formula without numpy's per-call cost on two angles (an estimator computes
    it every frame); it may differ from the array version in the last bit.

    :param shoulder: radians.
    :param elbow: radians, relative to the upper arm.
    :param upper_arm_length: metres.
    :param forearm_length: metres.
    :return: (2,) float64 metres in ``world``.
    """
    absolute = shoulder + elbow
    return np.array([math.cos(shoulder) * upper_arm_length + math.cos(absolute) * forearm_length,
                     math.sin(shoulder) * upper_arm_length + math.sin(absolute) * forearm_length])


def make_estimator(config: PerceptionConfig) -> Estimator:
    """Build the estimator that ``config.estimator`` names.

    :param config: the perception config.
    :return: a fresh estimator (its memory reset).
    :raises FieldError: (a ``ValueError``) if no estimator of that name is registered,
        listing the known ones.
    """
    if config.estimator not in ESTIMATORS and config.estimator in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[config.estimator])
    factory = ESTIMATORS.get(config.estimator)
    if factory is None:
        raise FieldError('PerceptionConfig', 'estimator', f'={config.estimator!r} is unknown; '
                         f'known estimators: {sorted(set(ESTIMATORS) | set(BACKEND_MODULES))}')
    return factory(config)
