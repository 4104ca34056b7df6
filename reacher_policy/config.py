"""Typed configuration of the policy: the control loop, its controller and the PID smoother.

Each field is also a ROS parameter of the policy node (same name, same default) and a YAML
key under ``/**/policy_node: ros__parameters:`` in config/policy.yaml; the geometry's fields
come from config/geometry.yaml, which all three nodes share. Units are SI (REP-103).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reacher_common.config_tools import check_fields
from reacher_common.geometry import ArmGeometry


@dataclass(frozen=True)
class PidConfig:
    """Gains and limits of the per-joint PID smoother (see ``reacher_policy.pid``).

    The defaults were tuned in simulation for the kinematic arm of ``SimConfig`` (joint
    velocity limit 1 rad/s) controlled at 20 Hz with 50-100 ms of perception latency.
    The loop is then an integrator with a delay of ``d`` ticks, ``q[k+1] = q[k] + dt u[k]``
    with ``u[k] = kp (r - q[k-d])``; it stays free of overshoot while ``kp dt`` is below
    the double-root gain of ``z^(d+1) - z^d + kp dt``, 4/27 for d = 2, i.e. kp < 2.96 /s
    at 20 Hz with 100 ms of delay; ``kp = 2.5`` keeps a margin. Simulated reaches (100
    random goals, 2-tick delay at 20 Hz) took 40.6 steps on average including the
    10-step hold, with no overshoot. The plant already integrates, so no integral action
    is needed to remove a steady-state error (``ki = 0``; ``ki = 1`` overshot by 0.04
    rad), and a derivative term only doubled the command's response to measurement noise
    (``kd = 0``).

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    kp: float = 2.5
    """Proportional gain, 1/s (rad/s of command per rad of error), in [0, 100]."""
    ki: float = 0.0
    """Integral gain, 1/s^2 (rad/s of command per rad*s of integrated error), in [0, 1000]."""
    kd: float = 0.0
    """Derivative gain on the measured joint velocity, dimensionless, in [0, 10]."""
    integral_limit: float = 0.2
    """Anti-windup clamp on the integral state, rad*s, in [0, 100]."""
    derivative_time_constant_s: float = 0.05
    """Time constant of the first-order low-pass on the derivative term, seconds, in
    [0, 10]; 0 disables the filter."""
    output_limit: float = 1.0
    """Clamp on the magnitude of each joint's command, rad/s, in (0, 100]."""
    rate_limit: float = 10.0
    """Largest change of each joint's command per second, rad/s^2, in [0, 1e6]; 0
    disables the limit."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'kp': 0.0 <= self.kp <= 100.0,
            'ki': 0.0 <= self.ki <= 1000.0,
            'kd': 0.0 <= self.kd <= 10.0,
            'integral_limit': 0.0 <= self.integral_limit <= 100.0,
            'derivative_time_constant_s': 0.0 <= self.derivative_time_constant_s <= 10.0,
            'output_limit': 0.0 < self.output_limit <= 100.0,
            'rate_limit': 0.0 <= self.rate_limit <= 1e6,
        })


@dataclass(frozen=True)
class PolicyConfig:
    """Timing, controller choice and arm geometry of the policy loop.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    control_rate_hz: float = 20.0
    """Rate of the control timer, Hz, in (0, 1000]; 1/rate is the first step's dt."""
    controller: str = 'ik'
    """Name of the controller in ``reacher_policy.controllers.CONTROLLERS`` (e.g. 'ik')."""
    estimate_timeout_s: float = 0.5
    """Age of the newest perception estimate (from its image stamp) beyond which it is
    stale and the command is zero, seconds, in (0, 60]."""
    geometry: ArmGeometry = field(default_factory=ArmGeometry)
    """The arm being steered (config/geometry.yaml): IK solves for its links, a learned
    controller must have been trained for it."""
    checkpoint: str = ''
    """Path of the learned controller's checkpoint; '' for controllers that need none."""
    warn_throttle_s: float = 5.0
    """Least time between two repeats of the same warning from the node, seconds, in
    [0, 3600]."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'control_rate_hz': 0.0 < self.control_rate_hz <= 1000.0,
            'controller': isinstance(self.controller, str) and self.controller != '',
            'estimate_timeout_s': 0.0 < self.estimate_timeout_s <= 60.0,
            'checkpoint': isinstance(self.checkpoint, str),
            'warn_throttle_s': 0.0 <= self.warn_throttle_s <= 3600.0,
        })
