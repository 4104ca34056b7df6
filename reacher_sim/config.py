"""Typed configuration of the simulated arm, its camera and its task.

Each scalar field is also a ROS parameter of the sim node (same name, same default) and a
YAML key under ``/**/sim_node: ros__parameters:`` in config/sim.yaml; the geometry's fields
come from config/geometry.yaml. Units are SI (REP-103).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Literal

from reacher_common.config_tools import bounded, check_fields
from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.scheduling import NodeScheduling
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
    success_hold_steps: int = bounded(10, 1, 100_000)
    """Consecutive steps the fingertip must stay inside the goal for a success (seed: 50),
    in [1, 100000]."""
    max_episode_steps: int = bounded(200, 1, 10_000_000)
    """Steps before an episode is truncated (the gymnasium env only), in [1, 1e7]."""
    goal_sampling: GoalSampling = 'reachable'
    """'reachable': goal centres uniform over the reachable disk (minus goal_margin_m);
    'seed': uniform over the arena as in the seed, where 8.3% of goals are unreachable."""
    goal_margin_m: float = bounded(0.01, 0.0, 1.0)
    """Reachable sampling keeps goal centres this far inside the arm's reach, metres, in
    [0, 1] and below the reach."""
    scene: SceneConfig = field(default_factory=SceneConfig)
    """What the camera sees around the arm (``reacher_sim.scene``); never the task."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'goal_sampling': self.goal_sampling in ('reachable', 'seed'),
            'goal_margin_m': self.goal_margin_m < self.geometry.reach_m,
        })


@dataclass(frozen=True)
class SimNodeConfig(NodeScheduling):
    """What the sim node adds to :class:`SimConfig`: the continuous task and its safety.

    The node steps the physics every ``Timing.dt`` seconds and publishes a camera frame
    (with the ground truth of the same instant) every ``physics_rate / camera_rate_hz``
    steps: ``camera_rate_hz`` 0 (the default) is one frame per step.
    """

    seed: int = bounded(0, 0, 2**31 - 1)
    """Seed of the goal and initial-pose sampling, in [0, 2^31 - 1]."""
    goal_timeout_s: float = bounded(15.0, 0.0, 3600.0, low_open=True)
    """A goal not reached within this time is counted as missed and replaced, seconds, in
    (0, 3600]."""
    command_timeout_s: float = bounded(0.5, 0.0, 60.0, low_open=True)
    """With no valid command for this long the arm stops (zero velocity), seconds, in
    (0, 60]."""
    warn_throttle_s: float = bounded(5.0, 0.0, 3600.0)
    """Minimum interval between repeated warnings about bad messages, seconds, in
    [0, 3600]."""
    diagnostics_period_s: float = bounded(1.0, 0.0, 3600.0, low_open=True)
    """Period of /diagnostics, seconds, in (0, 3600]."""
    publish_clock: bool = False
    """Publish /clock with the simulation time and stamp messages with it, so that the
    other nodes can run with use_sim_time:=true."""
    trail_length: int = bounded(100, 2, 100_000)
    """Fingertip positions kept in the rviz trail marker, in [2, 100000]."""
    step_wake_early_ms: float = bounded(1.0, 0.0, 1000.0)
    """The step timer wakes this long before each step is due and the step then waits for
    its instant (``reacher_common.scheduling.hold_until``), ms, in [0, 1000] and below
    ``dt``: the steps, and the camera frames with their stamps, then fall exactly one
    period apart (p99 0.03 ms here) instead of when the executor wakes (p99 1.1 ms later).
    0: each step runs, and is stamped, when the timer wakes."""
    camera_rate_hz: float = bounded(0.0, 0.0, 1000.0)
    """Camera frames per second, in [0, 1000]; 0 = one per physics step (1/dt). Other
    values must divide the physics rate 1/dt (:func:`frames_every`), so that each frame
    shows, and is stamped with, one physics step: 30 Hz needs e.g. dt 1/60 s."""

    def __post_init__(self) -> None:
        check_fields(self)


def frames_every(camera_rate_hz: float, dt: float) -> int:
    """Physics steps per camera frame: 1 for ``camera_rate_hz`` 0, else ``1 / (dt * rate)``.

    :param camera_rate_hz: frames per second, >= 0 (0: every step).
    :param dt: the physics step, seconds, > 0.
    :return: an integer >= 1.
    :raises ValueError: naming ``camera_rate_hz`` when it is above the physics rate or does
        not divide it (within 1e-6 of a step).
    """
    if camera_rate_hz == 0.0:
        return 1
    ratio = 1.0 / (dt * camera_rate_hz)
    steps = round(ratio)
    if steps < 1 or abs(ratio - steps) > 1e-6 * max(1.0, ratio):
        physics = 1.0 / dt
        example = 1.0 / (camera_rate_hz * max(1, math.ceil(physics / camera_rate_hz)))
        raise ValueError(
            f'parameter camera_rate_hz={camera_rate_hz:g} Hz must divide the physics rate 1/dt = '
            f'{physics:g} Hz (dt {dt:g} s), so that each frame shows one physics step; use '
            f'{physics:g}/N Hz, or set dt so that 1/dt is a multiple of {camera_rate_hz:g} Hz '
            f'(e.g. dt {example:.6g})')
    return steps
