"""Typed configuration of the perception core: which estimator runs, and what it sees.

Each field is also a ROS parameter of the perception node (same name, same default) and a
YAML key under ``perception_node: ros__parameters:`` in config/perception.yaml. Units are
SI (REP-103). The geometry fields must match the simulator's ``SimConfig`` (or the real
camera's set-up): the classical estimator fits a model of exactly that arm.
"""

from __future__ import annotations

from dataclasses import dataclass

from reacher.config_tools import check_fields
from reacher_sim.config import SimConfig


@dataclass(frozen=True)
class PerceptionConfig:
    """Estimator choice, camera and arm geometry of the perception core.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    estimator: str = 'classical'
    """Name of the estimator in ``reacher_perception.estimator.ESTIMATORS`` (e.g.
    'classical'); checked when the estimator is made."""
    image_size: int = 64
    """Expected camera image width and height, pixels, in [16, 1024]."""
    arena_size_m: float = 0.4
    """Side of the square arena seen by the camera, metres; must hold the whole arm."""
    upper_arm_length_m: float = 0.1
    """Shoulder-to-elbow link length, metres, in (0, 1]; must match the arm."""
    forearm_length_m: float = 0.1
    """Elbow-to-fingertip link length, metres, in (0, 1]; must match the arm."""
    goal_size_m: float = 0.04
    """Side of the square goal, metres, in (0, arena_size_m)."""
    checkpoint: str = ''
    """Path of a learned estimator's weights; '' for estimators that need none (classical)."""
    warn_throttle_s: float = 5.0
    """Least time between two repeats of the same warning from the node, seconds, in
    [0, 3600]."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'image_size': 16 <= self.image_size <= 1024,
            'upper_arm_length_m': 0.0 < self.upper_arm_length_m <= 1.0,
            'forearm_length_m': 0.0 < self.forearm_length_m <= 1.0,
            'arena_size_m': self.arena_size_m >= 2.0 * (self.upper_arm_length_m
                                                        + self.forearm_length_m),
            'goal_size_m': 0.0 < self.goal_size_m < self.arena_size_m,
            'warn_throttle_s': 0.0 <= self.warn_throttle_s <= 3600.0,
        })

    def sim_geometry(self) -> SimConfig:
        """The simulator config with this config's geometry, the rest at its defaults.

        Lets estimators reuse ``CameraModel.from_config`` and the kinematics; fields that
        perception does not set (``link_width_m``, ``camera_height_m``) keep the
        simulator's defaults, which is what ``ArmRenderer`` draws.

        :return: a ``SimConfig`` with the same image size, arena, link lengths and goal size.
        :raises ValueError: if ``SimConfig`` rejects the geometry.
        """
        return SimConfig(upper_arm_length_m=self.upper_arm_length_m,
                         forearm_length_m=self.forearm_length_m,
                         arena_size_m=self.arena_size_m, goal_size_m=self.goal_size_m,
                         image_size=self.image_size)
