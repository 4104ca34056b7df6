"""Typed configuration of the simulated arm, its camera and its task.

Each scalar field is also a ROS parameter of the sim node (same name, same default) and a
YAML key under ``sim_node: ros__parameters:`` in config/sim.yaml; the geometry's fields
come from config/geometry.yaml. Units are SI (REP-103).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reacher_common.config_tools import check_fields
from reacher_common.geometry import ArmGeometry, Timing
from reacher_sim.scene import SceneConfig

GoalSampling = Literal['reachable', 'seed']


@dataclass(frozen=True)
class SimConfig:
    """The reaching task on an arm: its geometry, its clock, and what counts as success.

    The geometry and timing are the shared :class:`ArmGeometry` and :class:`Timing`
    (config/geometry.yaml, and ``dt`` in config/sim.yaml); the other fields are the task's.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    geometry: ArmGeometry = field(default_factory=ArmGeometry)
    """The arm, arena, goal size and camera."""
    timing: Timing = field(default_factory=Timing)
    """The physics step (and camera period) ``dt``."""
    success_hold_steps: int = 10
    """Consecutive steps the fingertip must stay inside the goal for a success (seed: 50)."""
    max_episode_steps: int = 200
    """Steps before an episode is truncated (the gymnasium env only), >= 1."""
    goal_sampling: GoalSampling = 'reachable'
    """'reachable': goal centres uniform over the reachable disk (minus goal_margin_m);
    'seed': uniform over the arena as in the seed, where 8.3% of goals are unreachable."""
    goal_margin_m: float = 0.01
    """Reachable sampling keeps goal centres this far inside the arm's reach, metres."""
    scene: SceneConfig = field(default_factory=SceneConfig)
    """What the camera sees around the arm (``reacher_sim.scene``); never the task."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'success_hold_steps': self.success_hold_steps >= 1,
            'max_episode_steps': self.max_episode_steps >= 1,
            'goal_sampling': self.goal_sampling in ('reachable', 'seed'),
            'goal_margin_m': 0.0 <= self.goal_margin_m < self.geometry.reach_m,
        })


@dataclass(frozen=True)
class SimNodeConfig:
    """What the sim node adds to :class:`SimConfig`: the continuous task and its safety.

    The node steps the physics every ``Timing.dt`` seconds and publishes a camera
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
