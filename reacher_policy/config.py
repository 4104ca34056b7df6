"""Typed configuration of the policy: the control loop, its controller and the PID smoother.

Each field is also a ROS parameter of the policy node (same name, same default) and a YAML
key under ``/**/policy_node: ros__parameters:`` in config/policy.yaml; the geometry's fields
come from config/geometry.yaml, which all three nodes share. Units are SI (REP-103).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reacher_common.config_tools import bounded, check_fields
from reacher_common.geometry import ArmGeometry
from reacher_common.scheduling import NodeScheduling


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

    kp: float = bounded(2.5, 0.0, 100.0)
    """Proportional gain, 1/s (rad/s of command per rad of error), in [0, 100]."""
    ki: float = bounded(0.0, 0.0, 1000.0)
    """Integral gain, 1/s^2 (rad/s of command per rad*s of integrated error), in [0, 1000]."""
    kd: float = bounded(0.0, 0.0, 10.0)
    """Derivative gain on the measured joint velocity, dimensionless, in [0, 10]."""
    integral_limit: float = bounded(0.2, 0.0, 100.0)
    """Anti-windup clamp on the integral state, rad*s, in [0, 100]."""
    derivative_time_constant_s: float = bounded(0.05, 0.0, 10.0)
    """Time constant of the first-order low-pass on the derivative term, seconds, in
    [0, 10]; 0 disables the filter."""
    output_limit: float = bounded(1.0, 0.0, 100.0, low_open=True)
    """Clamp on the magnitude of each joint's command, rad/s, in (0, 100]."""
    rate_limit: float = bounded(10.0, 0.0, 1e6)
    """Largest change of each joint's command per second, rad/s^2, in [0, 1e6]; 0
    disables the limit."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class PolicyConfig(NodeScheduling):
    """Timing, controller choice and arm geometry of the policy loop.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    control_rate_hz: float = bounded(20.0, 0.0, 1000.0, low_open=True)
    """Rate of the commands, Hz, in (0, 1000]; 1/rate is the first step's dt. Phase-locked,
    a whole multiple (1, 2, 3, ...) of the camera rate; otherwise the loop runs free."""
    controller: str = 'ik'
    """Name of the controller in ``reacher_policy.controllers.CONTROLLERS`` (e.g. 'ik')."""
    estimate_timeout_s: float = bounded(0.15, 0.0, 60.0, low_open=True)
    """Age of the newest perception estimate (from its image stamp) beyond which it is
    stale and the command is zero, seconds, in (0, 60]."""
    min_confidence: float = bounded(0.5, 0.0, 1.0)
    """The estimator's confidence (reacher_common.estimate_msgs) below which the newest
    estimate stops the arm (zero command until a confident one comes), in [0, 1]; 0.5 is
    the calibration's threshold between right and wrong estimates, 0 never stops. An
    estimator that gives no confidence (nan) never stops the arm."""
    unsure_motion_budget_rad: float = bounded(0.6, 0.0, 10.0)
    """Joint motion, rad (both joints' commanded ``|velocity| * dt``, summed), that the arm
    may make on estimates below ``min_confidence`` that are corroborated: whose joints lie
    within 10 deg of the last confident estimate's joints moved by the commands sent since,
    and whose goal lies within 20 mm of its goal (the project's tolerance of a right
    estimate). Past it, or on an estimate that disagrees, the arm stops until a confident
    one comes. Without it a halted arm's unchanging frame keeps a right estimate scored just
    below the threshold unsure until the goal is replaced. In [0, 10]; 0: every estimate
    below ``min_confidence`` stops the arm."""
    min_corroborated_confidence: float = bounded(0.3, 0.0, 1.0)
    """The least confidence of an estimate that may be corroborated, in [0, 1]: one the
    estimator doubts more than this stops the arm, whatever dead reckoning says."""
    phase_lock: bool = True
    """Command as soon as a frame's complete estimate arrives and re-align the control
    timer to it (reacher_policy.timing); false: the timer alone commands, free-running."""
    fixed_latency_ms: float = bounded(2.5, 0.0, 1000.0)
    """Phase-locked: hold each frame's command until this long after the frame's stamp, ms,
    in [0, 1000] and below the control period, then publish it, so that the
    camera-to-command latency is the same every frame (a logical execution time); a command
    computed later leaves at once and counts as a late release. 0: publish as soon as it is
    computed. Not applied with ``use_sim_time`` (the stamps are then simulated time)."""
    geometry: ArmGeometry = field(default_factory=ArmGeometry)
    """The arm being steered (config/geometry.yaml): IK solves for its links, a learned
    controller must have been trained for it."""
    checkpoint: str = ''
    """Path of the learned or slac controller's checkpoint ('' = the shipped one:
    checkpoints/sac_reacher_20hz.pt, checkpoints/sac_slac_latent_20hz.pt); unused by ik."""
    latent_checkpoint: str = ''
    """The slac controller only: the SLAC checkpoint that perception_node runs (its
    ``checkpoint`` parameter; '' = the shipped checkpoints/slac_reacher.pt), whose latent
    the controller reads. Its latent model must be the one the controller was trained on
    (the fingerprint of its weights, reacher_common.weights.latent_model_fingerprint),
    else the node refuses to start."""
    warn_throttle_s: float = bounded(5.0, 0.0, 3600.0)
    """Least time between two repeats of the same warning from the node, seconds, in
    [0, 3600]."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'controller': isinstance(self.controller, str) and self.controller != '',
            'checkpoint': isinstance(self.checkpoint, str),
            'latent_checkpoint': isinstance(self.latent_checkpoint, str),
            'phase_lock': isinstance(self.phase_lock, bool),
            'fixed_latency_ms': self.fixed_latency_ms * self.control_rate_hz < 1000.0,
        })
