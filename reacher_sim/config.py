"""Typed configuration of the simulated arm, its camera and its task.

Each field is also a ROS parameter of the sim node (same name, same default) and a YAML
key under ``sim_node: ros__parameters:`` in config/sim.yaml. Units are SI (REP-103).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reacher.config_tools import check_fields

GoalSampling = Literal['reachable', 'seed']


@dataclass(frozen=True)
class SimConfig:
    """World, arm, camera and task of the 2-link planar reacher.

    The defaults reproduce the seed's arena in SI units (1 seed unit = 1 mm): two
    0.1 m links from the centre of a 0.4 m square arena, a 0.04 m goal square, joint
    velocities clipped to 1 rad/s and integrated with dt = 0.1 s.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    upper_arm_length_m: float = 0.1
    """Shoulder-to-elbow link length, metres, in (0, 1]."""
    forearm_length_m: float = 0.1
    """Elbow-to-fingertip link length, metres, in (0, 1]."""
    arena_size_m: float = 0.4
    """Side of the square arena seen by the camera, metres; must hold the whole arm."""
    dt: float = 0.1
    """Physics step and control period of the env, seconds, in (0, 1]."""
    max_joint_velocity: float = 1.0
    """Joint velocity limit, rad/s; an action of +-1 commands this velocity."""
    goal_size_m: float = 0.04
    """Side of the square goal, metres, in (0, arena_size_m)."""
    success_hold_steps: int = 10
    """Consecutive steps the fingertip must stay inside the goal for a success (seed: 50)."""
    max_episode_steps: int = 200
    """Steps before an episode is truncated (the gymnasium env only), >= 1."""
    goal_sampling: GoalSampling = 'reachable'
    """'reachable': goal centres uniform over the reachable disk (minus goal_margin_m);
    'seed': uniform over the arena as in the seed, where 8.3% of goals are unreachable."""
    goal_margin_m: float = 0.01
    """Reachable sampling keeps goal centres this far inside the arm's reach, metres."""
    image_size: int = 64
    """Camera image width and height, pixels, in [16, 1024]."""
    link_width_m: float = 0.012
    """Drawn width of the links, metres."""
    camera_height_m: float = 1.0
    """Height of the virtual pinhole camera over the arena plane (only scales CameraInfo)."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'upper_arm_length_m': 0.0 < self.upper_arm_length_m <= 1.0,
            'forearm_length_m': 0.0 < self.forearm_length_m <= 1.0,
            'arena_size_m': self.arena_size_m >= 2.0 * self.reach_m,
            'dt': 0.0 < self.dt <= 1.0,
            'max_joint_velocity': 0.0 < self.max_joint_velocity <= 100.0,
            'goal_size_m': 0.0 < self.goal_size_m < self.arena_size_m,
            'success_hold_steps': self.success_hold_steps >= 1,
            'max_episode_steps': self.max_episode_steps >= 1,
            'goal_sampling': self.goal_sampling in ('reachable', 'seed'),
            'goal_margin_m': 0.0 <= self.goal_margin_m < self.reach_m,
            'image_size': 16 <= self.image_size <= 1024,
            'link_width_m': 0.0 < self.link_width_m < self.arena_size_m,
            'camera_height_m': self.camera_height_m > 0.0,
        })

    @property
    def reach_m(self) -> float:
        """Total reach of the arm, metres."""
        return self.upper_arm_length_m + self.forearm_length_m

    @property
    def pixels_per_metre(self) -> float:
        """Image scale, pixels per metre of arena."""
        return self.image_size / self.arena_size_m



@dataclass(frozen=True)
class SimNodeConfig:
    """What the sim node adds to :class:`SimConfig`: the continuous task and its safety.

    The node steps the physics every ``SimConfig.dt`` seconds and publishes a camera
    frame every step.
    """

    seed: int = 0
    """Seed of the goal and initial-pose sampling; >= 0."""
    goal_timeout_s: float = 15.0
    """A goal not reached within this time is counted as missed and replaced, seconds, > 0."""
    command_timeout_s: float = 0.5
    """With no valid command for this long the arm stops (zero velocity), seconds, > 0."""
    warn_throttle_s: float = 5.0
    """Minimum interval between repeated warnings about bad messages, seconds, >= 0."""
    diagnostics_period_s: float = 1.0
    """Period of /diagnostics, seconds, > 0."""
    publish_clock: bool = False
    """Publish /clock with the simulation time and stamp messages with it, so that the
    other nodes can run with use_sim_time:=true."""
    trail_length: int = 100
    """Fingertip positions kept in the rviz trail marker, >= 2."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'seed': self.seed >= 0,
            'goal_timeout_s': self.goal_timeout_s > 0.0,
            'command_timeout_s': self.command_timeout_s > 0.0,
            'warn_throttle_s': self.warn_throttle_s >= 0.0,
            'diagnostics_period_s': self.diagnostics_period_s > 0.0,
            'trail_length': self.trail_length >= 2,
        })
