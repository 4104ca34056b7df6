"""Per-joint PID smoother: joint-angle setpoint and measurement in, joint velocity out.

The controller (analytic IK) says where the joints should be; this smoother says how fast
to move them there, within the arm's velocity limit and without jerks. It is a textbook
discrete PID (Astrom & Murray, *Feedback Systems*, 2nd ed., sec. 11.3 and 11.5) with the
refinements that a noisy, delayed camera estimate calls for. A controller that already
knows the joint velocity it wants (the learned actor) takes the velocity path instead:
the same output clamp and rate limit, without the P, I and D terms.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from reacher_common.kinematics import wrap_angle
from reacher_policy.config import PidConfig

FloatArray = npt.NDArray[np.float64]


class PidSmoother:
    r"""Independent PID loops, one per joint, on wrapped joint angles.

    At each update, with setpoint ``r``, measurement ``y`` and period ``dt``:

    .. code-block:: text

        e_k = wrap(r_k - y_k)                                   # shortest way round
        v_k = (1 - a) v_{k-1} + a wrap(y_k - y_{k-1}) / dt      # filtered joint velocity
              a = 1 - exp(-dt / T_f)   (a = 1 when T_f = 0; v_0 = 0)
        I_k = clip(I_{k-1} + e_k dt, -I_max, I_max)             # held when winding up
        u*_k = kp e_k + ki I_k - kd v_k
        u_k = clip(clip(u*_k, -u_max, u_max), u_{k-1} - rho dt, u_{k-1} + rho dt)

    with ``T_f = derivative_time_constant_s``, ``I_max = integral_limit``,
    ``u_max = output_limit``, ``rho = rate_limit`` (no rate limit when 0) and
    ``u_0 = 0`` (the arm starts at rest). Deviations from the plain PID, each per joint:

    - The derivative acts on the measurement, not the error, so a jump of the setpoint
      (a new goal) gives no derivative kick (Astrom & Murray sec. 11.3).
    - The derivative is low-passed (first order, time constant ``T_f``, discretised
      exactly) because differencing a pixel-quantised estimate amplifies its noise, and
      because a camera slower than the control rate repeats measurements, so the raw
      difference alternates between 0 and twice the true velocity.
    - Anti-windup by clamping (conditional integration, Astrom & Murray sec. 11.5): the
      integral is clipped to ``+-I_max``, and while the command is clamped (by the output
      or the rate limit) it is not integrated further in the direction of the clamp.

    **Velocity path.** A controller that knows the joint velocity ``w`` it wants (the
    learned actor) calls :meth:`update_velocity` instead:

    .. code-block:: text

        v_k = (1 - a) v_{k-1} + a wrap(y_k - y_{k-1}) / dt      # filtered as above
        I_k = I_{k-1}                                           # held: no error to integrate
        u*_k = w_k
        u_k = clip(clip(u*_k, -u_max, u_max), u_{k-1} - rho dt, u_{k-1} + rho dt)

    The gains play no part (the velocity does not pass through ``kp``, so ``kp = 0``
    neither divides by zero nor stops the arm); the clamp and the rate limit still bound
    the command, and the state stays current for a switch back to :meth:`update`. With
    ``ki = kd = 0`` and ``kp > 0`` it gives what :meth:`update` gives for the setpoint
    ``y + w / kp``.

    :param config: gains and limits.
    :param num_joints: number of independent joints, >= 1.
    :raises ValueError: if ``num_joints`` < 1.
    """

    config: PidConfig
    num_joints: int
    integral: FloatArray
    """(num_joints,) float64 rad*s: the integrated error."""
    velocity_estimate: FloatArray
    """(num_joints,) float64 rad/s: the low-passed measured joint velocity."""
    command: FloatArray
    """(num_joints,) float64 rad/s: the last command (zeros after ``reset``)."""

    def __init__(self, config: PidConfig, num_joints: int = 2) -> None:
        if num_joints < 1:
            raise ValueError(f'num_joints must be >= 1, got {num_joints}')
        self.config = config
        self.num_joints = num_joints
        self._last_measurement: FloatArray | None = None
        self.reset()

    def reset(self) -> None:
        """Forget all state: integral, velocity estimate, last measurement and command."""
        self.integral = np.zeros(self.num_joints)
        self.velocity_estimate = np.zeros(self.num_joints)
        self.command = np.zeros(self.num_joints)
        self._last_measurement = None

    def set_config(self, config: PidConfig) -> None:
        """Change gains and limits between updates, keeping the state (bumpless).

        The integral is clipped to the new ``integral_limit``; the last command is kept, so
        the next one moves from it within the new ``rate_limit``.

        :param config: the new gains and limits.
        """
        self.config = config
        self.integral = np.clip(self.integral, -config.integral_limit, config.integral_limit)

    def _check(self, name: str, value: npt.ArrayLike, unit: str = 'rad') -> FloatArray:
        array = np.asarray(value, dtype=np.float64)
        if array.shape != (self.num_joints,) or not np.all(np.isfinite(array)):
            got = array if array.size <= 8 else f'shape {array.shape}'
            raise ValueError(
                f'{name} must be {self.num_joints} finite numbers ({unit}), got {got!r}')
        return array

    @staticmethod
    def _check_dt(dt: float) -> None:
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0.0):
            raise ValueError(f'dt must be a positive finite number of seconds, got {dt!r}')

    def _measure(self, measured: FloatArray, dt: float) -> None:
        """Update the filtered joint velocity ``v_k`` and the last measurement."""
        cfg = self.config
        if self._last_measurement is not None:
            raw_velocity = wrap_angle(measured - self._last_measurement) / dt
            if cfg.derivative_time_constant_s > 0.0:
                blend = 1.0 - math.exp(-dt / cfg.derivative_time_constant_s)
            else:
                blend = 1.0
            self.velocity_estimate = self.velocity_estimate + blend * (
                raw_velocity - self.velocity_estimate)
        self._last_measurement = measured

    def update(self, setpoint: npt.ArrayLike, measurement: npt.ArrayLike,
               dt: float) -> FloatArray:
        """Advance the loops by one period and return the joint velocity command.

        :param setpoint: (num_joints,) rad, the desired joint angles (any winding).
        :param measurement: (num_joints,) rad, the measured (estimated) joint angles.
        :param dt: seconds since the previous update, > 0 and finite.
        :return: (num_joints,) float64 rad/s, within ``+-output_limit`` and within
            ``rate_limit * dt`` of the previous command.
        :raises ValueError: if ``dt`` is not a positive finite number, or an input does not
            have shape (num_joints,) or is not finite.
        """
        self._check_dt(dt)
        target = self._check('setpoint', setpoint)
        measured = self._check('measurement', measurement)
        cfg = self.config

        error = wrap_angle(target - measured)
        self._measure(measured, dt)

        limit = cfg.integral_limit
        candidate = np.clip(self.integral + error * dt, -limit, limit)
        raw, command = self._law(error, candidate, dt)
        # Conditional integration: where the command is clamped and the error pushes
        # further into the clamp, keep the old integral (Astrom & Murray sec. 11.5).
        winding_up = (np.abs(raw - command) > 1e-12) & (error * (raw - command) > 0.0)
        if np.any(winding_up):
            candidate = np.where(winding_up, np.clip(self.integral, -limit, limit), candidate)
            raw, command = self._law(error, candidate, dt)
        self.integral = candidate
        self.command = command
        return command.copy()

    def update_velocity(self, velocity: npt.ArrayLike, measurement: npt.ArrayLike,
                        dt: float) -> FloatArray:
        """Advance by one period on the velocity path: clamp and rate-limit ``velocity``.

        :param velocity: (num_joints,) rad/s, the joint velocity the controller wants.
        :param measurement: (num_joints,) rad, the measured (estimated) joint angles; they
            keep the velocity estimate current, as :meth:`update` does.
        :param dt: seconds since the previous update, > 0 and finite.
        :return: (num_joints,) float64 rad/s, within ``+-output_limit`` and within
            ``rate_limit * dt`` of the previous command.
        :raises ValueError: if ``dt`` is not a positive finite number, or an input does not
            have shape (num_joints,) or is not finite.
        """
        self._check_dt(dt)
        wanted = self._check('velocity', velocity, unit='rad/s')
        measured = self._check('measurement', measurement)
        self._measure(measured, dt)
        self.command = self._limit(wanted, dt)
        return self.command.copy()

    def _limit(self, raw: FloatArray, dt: float) -> FloatArray:
        """The output clamp, then the rate limit around the previous command."""
        cfg = self.config
        command = np.clip(raw, -cfg.output_limit, cfg.output_limit)
        if cfg.rate_limit > 0.0:
            step = cfg.rate_limit * dt
            command = np.clip(command, self.command - step, self.command + step)
        return command

    def _law(self, error: FloatArray, integral: FloatArray,
             dt: float) -> tuple[FloatArray, FloatArray]:
        """Unclamped and clamped command for a given integral state.

        :return: ``(u*, u)``, each (num_joints,) float64 rad/s.
        """
        cfg = self.config
        raw = cfg.kp * error + cfg.ki * integral - cfg.kd * self.velocity_estimate
        return raw, self._limit(raw, dt)
