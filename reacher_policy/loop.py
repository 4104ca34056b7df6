"""The policy's control loop, as plain Python: what the policy node calls each timer tick.

The node hands each perception estimate to ``PolicyLoop.update_estimate`` and, at
``control_rate_hz``, publishes the command that ``PolicyLoop.step`` returns:

.. code-block:: text

    estimate (joint angles, goal, image stamp)
        -> controller.setpoint            # where the joints should be, rad
        -> PidSmoother.update             # how fast to get there, rad/s
        -> command

A velocity controller (the learned actor) skips the setpoint: its joint velocity goes
through ``PidSmoother.update_velocity`` (clamp and rate limit only); so does a latent
controller's (``slac``), computed from the estimate's latent state. An estimate older
than ``estimate_timeout_s`` (by its image stamp) is stale: the arm is stopped rather than
driven by what the camera saw long ago. An estimate whose confidence is below
``min_confidence`` stops the arm the same way (an estimator that gives no confidence, nan,
never stops it), unless it is corroborated: its confidence is at least
``min_corroborated_confidence``, it agrees with the last confident estimate moved by the
commands sent since (dead reckoning), and the arm has moved less than
``unsure_motion_budget_rad`` since that confident estimate. A goal outside the arena is
refused.

Why corroboration: a halted arm's frame does not change, so neither does its confidence;
one right frame scored just below the threshold would hold the arm until the goal is
replaced. An estimate that agrees with where the commands must have put the arm is not a
guess, and the budget bounds how far the arm goes on such estimates alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math

import numpy as np
import numpy.typing as npt

from reacher_common.estimate_msgs import LOST_GOAL_MM, LOST_JOINT_DEG
from reacher_common.kinematics import wrap_angle
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.controllers import (
    Controller,
    LatentController,
    make_controller,
    VelocityController,
)
from reacher_policy.pid import PidSmoother

FloatArray = npt.NDArray[np.float64]

NUM_JOINTS = 2

CORROBORATION_JOINT_RAD = math.radians(LOST_JOINT_DEG)
"""Largest joint error (either joint) between an unsure estimate and the dead-reckoned
joints for the estimate to count as corroborated: the tolerance of a right estimate."""
CORROBORATION_GOAL_M = LOST_GOAL_MM / 1000.0
"""... and the largest goal error, metres."""


@dataclass(frozen=True)
class PerceivedState:
    """One perception estimate, as the policy receives it.

    :param stamp_s: seconds, the time of the camera image the estimate came from (the
        node's clock, e.g. ``header.stamp`` in seconds).
    :param joint_positions: (2,) rad, the estimated (shoulder, elbow) angles.
    :param goal: (2,) metres, the estimated goal centre in ``world``.
    :param confidence: the estimator's confidence in this estimate, in [0, 1]
        (``reacher_perception.estimator.Estimate.confidence``); nan when it gives none.
    :param latent: (N,) float32, the frame's latent state (``perception/latent``), or
        None; a latent controller needs it.
    """

    stamp_s: float
    joint_positions: FloatArray
    goal: FloatArray
    confidence: float = math.nan
    latent: npt.NDArray[np.float32] | None = None


@dataclass(frozen=True)
class ControlOutput:
    """What one control tick produced.

    :param command: (2,) float64 rad/s, the (shoulder, elbow) joint velocity command;
        zeros when ``stale`` or ``unsure``.
    :param stale: whether there was no estimate or it was older than
        ``estimate_timeout_s`` (the arm is being stopped).
    :param became_stale: True only on the first stale tick after a fresh one, so the node
        can say so once; the loop starts stale (no estimate yet) without reporting it.
    :param estimate_age_s: seconds between the tick and the estimate's image stamp, or
        None when there is no estimate.
    :param unsure: whether the (fresh) estimate's confidence was below ``min_confidence``
        (the arm is being stopped).
    :param became_unsure: True only on the first unsure tick after a confident one (or
        one without confidence), so the node can say so once.
    :param corroborated: whether the estimate was below ``min_confidence`` but the arm
        acted on it, as it agreed with the dead-reckoned last confident one (within
        ``unsure_motion_budget_rad``).
    """

    command: FloatArray
    stale: bool
    became_stale: bool
    estimate_age_s: float | None
    unsure: bool = False
    became_unsure: bool = False
    corroborated: bool = False


class PolicyLoop:
    """Controller plus PID smoother, fed by perception estimates, stepped by a timer.

    :param config: loop timing, controller choice and arm geometry.
    :param pid: gains and limits of the PID smoother.
    :raises ValueError: if ``config.controller`` names no registered controller.
    """

    config: PolicyConfig
    controller: Controller
    pid: PidSmoother
    RUNTIME_FIELDS: tuple[str, ...] = ('estimate_timeout_s', 'min_confidence',
                                       'unsure_motion_budget_rad',
                                       'min_corroborated_confidence', 'warn_throttle_s')
    """The fields of :class:`PolicyConfig` that :meth:`set_config` may change."""

    def __init__(self, config: PolicyConfig, pid: PidConfig) -> None:
        self.config = config
        self.controller = make_controller(config, pid)
        self.pid = PidSmoother(pid, num_joints=NUM_JOINTS)
        self._estimate: PerceivedState | None = None
        self._last_step_s: float | None = None
        self._last_output: ControlOutput | None = None
        self._stale = True
        self._unsure = False
        # Dead reckoning from the last confident estimate: its goal, the joints moved by the
        # commands sent since, and how far (rad) they moved; None until a confident one.
        self._anchor_goal: FloatArray | None = None
        self._anchor_stamp_s = math.nan
        self._reckoned_q = np.zeros(NUM_JOINTS)
        self._reckoned_motion_rad = 0.0

    @property
    def needs_latent(self) -> bool:
        """Whether the controller acts on the latent (each estimate must carry one)."""
        return isinstance(self.controller, LatentController)

    @property
    def estimate(self) -> PerceivedState | None:
        """The newest estimate given to ``update_estimate`` (validated copy), or None."""
        return self._estimate

    @property
    def stale(self) -> bool:
        """Whether the last ``step`` found no fresh estimate (True before the first one)."""
        return self._stale

    @property
    def unsure(self) -> bool:
        """Whether the last ``step`` stopped the arm for a confidence below the threshold."""
        return self._unsure

    def set_pid_config(self, pid: PidConfig) -> None:
        """Change the PID gains and limits at run time without restarting control.

        Only the smoother changes: the controller is not rebuilt (a learned one's
        checkpoint is not read again), since no controller depends on the gains.

        :param pid: the new gains and limits (see ``PidSmoother.set_config``).
        """
        self.pid.set_config(pid)

    def set_config(self, config: PolicyConfig) -> None:
        """Change the loop's timing and threshold at run time (``RUNTIME_FIELDS`` only).

        :param config: the new config.
        :raises ValueError: naming a field that changed but is fixed once the loop runs
            (the controller, its checkpoint, the rate, the geometry).
        """
        fixed = replace(config, **{name: getattr(self.config, name)
                                   for name in self.RUNTIME_FIELDS})
        if fixed != self.config:
            changed = [name for name in ('control_rate_hz', 'controller', 'geometry',
                                         'checkpoint', 'phase_lock')
                       if getattr(fixed, name) != getattr(self.config, name)]
            changed += [name for name in ('latent_checkpoint',)
                        if getattr(fixed, name) != getattr(self.config, name)]
            raise ValueError(f'{", ".join(changed)} cannot change while the loop runs')
        self.config = config

    def check_goal(self, goal: npt.ArrayLike) -> FloatArray:
        """The goal as a (2,) float64 array, if it lies in the arena.

        :param goal: (2,) metres in ``world``.
        :return: the goal, float64.
        :raises ValueError: for a goal that is not two finite numbers inside the arena
            (no camera can see it: a corrupt estimate, which would drive a learned
            controller with inputs it never saw, or beyond float32).
        """
        array = np.asarray(goal, dtype=np.float64)
        if array.shape != (NUM_JOINTS,) or not self.config.geometry.in_arena(array):
            half = self.config.geometry.arena_size_m / 2.0
            got = (f'({array[0]:.3g}, {array[1]:.3g}) m' if array.shape == (NUM_JOINTS,)
                   else f'shape {array.shape}')
            raise ValueError(f'goal {got} is outside the arena (|x|, |y| <= {half:g} m)')
        return array

    def stop(self) -> ControlOutput:
        """Command zero and restart control from rest (after a step that failed).

        :return: a zero command; ``stale`` as it was.
        """
        self._restart()
        return ControlOutput(np.zeros(NUM_JOINTS), self._stale, False, None)

    def reset(self) -> None:
        """Start over: forget the estimate and the controller's and PID's state."""
        self._estimate = None
        self._restart()
        self._stale = True
        self._unsure = False
        self._anchor_goal, self._anchor_stamp_s = None, math.nan

    def _restart(self) -> None:
        """Restart control cleanly from rest, keeping the estimate."""
        self.controller.reset()
        self.pid.reset()
        self._last_step_s = None
        self._last_output = None

    def update_estimate(self, state: PerceivedState) -> None:
        """Take a new perception estimate; it replaces the previous one.

        :param state: the estimate; its arrays are copied as float64.
        :raises ValueError: if the stamp is not finite, the joint angles are not two
            finite numbers, the goal is not in the arena (:meth:`check_goal`), the
            confidence is neither nan nor in [0, 1], or (for a latent controller) the latent
            is missing, not finite or not of the controller's width.
        """
        stamp_s = float(state.stamp_s)
        if not math.isfinite(stamp_s):
            raise ValueError(f'stamp_s must be finite seconds, got {state.stamp_s!r}')
        confidence = float(state.confidence)
        if not (math.isnan(confidence) or 0.0 <= confidence <= 1.0):
            raise ValueError(f'confidence must be in [0, 1] or nan, got {confidence!r}')
        joint_positions = np.array(state.joint_positions, dtype=np.float64)
        if joint_positions.shape != (NUM_JOINTS,) or not np.all(np.isfinite(joint_positions)):
            got = (joint_positions if joint_positions.size <= NUM_JOINTS
                   else f'shape {joint_positions.shape}')
            raise ValueError(f'joint_positions must be {NUM_JOINTS} finite numbers, '
                             f'got {got!r}')
        goal = self.check_goal(np.array(state.goal, dtype=np.float64))
        latent = None if state.latent is None else np.array(state.latent, dtype=np.float32)
        if isinstance(self.controller, LatentController):
            width = self.controller.latent_dim
            if latent is None or latent.shape != (width,) or not np.all(np.isfinite(latent)):
                got = 'none' if latent is None else f'shape {latent.shape}'
                raise ValueError(f'the {self.config.controller} controller needs a finite latent '
                                 f'of {width} values, got {got}')
        self._estimate = PerceivedState(stamp_s, joint_positions, goal, confidence, latent)

    def step(self, now_s: float) -> ControlOutput:
        """Compute the command for the tick at ``now_s``.

        With no estimate, or one whose age ``now_s - stamp_s`` exceeds
        ``estimate_timeout_s`` in magnitude (a stamp that far in the future is not trusted
        either), the command is zero and the controller and PID are reset, so control
        restarts from rest when fresh estimates return. A fresh estimate whose confidence
        is below ``min_confidence`` stops the arm the same way (``unsure``; nan never
        does), until a confident one comes, unless dead reckoning from the last confident
        estimate corroborates it (``corroborated``; :meth:`_corroborated`). Otherwise the
        controller's setpoint goes through the PID (a velocity controller's velocity through its
        velocity path) with ``dt`` = time since the previous fresh tick
        (``1 / control_rate_hz`` on the first one). If the clock went backwards (a
        replayed bag restarting ``/clock``), control restarts as on a first tick; a
        repeated ``now_s`` returns the previous output unchanged.

        :param now_s: seconds, the tick's time on the same clock as the estimates' stamps.
        :return: the command and the staleness and confidence report.
        :raises ValueError: if ``now_s`` is not finite, or the controller's output is not
            two finite numbers (the caller then commands :meth:`stop`).
        """
        if not math.isfinite(now_s):
            raise ValueError(f'now_s must be finite seconds, got {now_s!r}')
        estimate = self._estimate
        age = None if estimate is None else now_s - estimate.stamp_s
        if age is None or abs(age) > self.config.estimate_timeout_s:
            became_stale = not self._stale
            self._stale = True
            # the world may have changed meanwhile: corroborate nothing until a confident one
            self._anchor_goal, self._anchor_stamp_s = None, math.nan
            self._restart()
            return ControlOutput(np.zeros(NUM_JOINTS), True, became_stale, age)
        assert estimate is not None
        self._stale = False
        corroborated = False
        if estimate.confidence < self.config.min_confidence:  # False for nan
            corroborated = self._corroborated(estimate)
            if not corroborated:
                became_unsure = not self._unsure
                self._unsure = True
                self._restart()
                return ControlOutput(np.zeros(NUM_JOINTS), False, False, age, unsure=True,
                                     became_unsure=became_unsure)
        elif not math.isnan(estimate.confidence) and estimate.stamp_s != self._anchor_stamp_s:
            self._anchor_stamp_s = estimate.stamp_s
            self._anchor_goal = estimate.goal.copy()
            self._reckoned_q = estimate.joint_positions.copy()
            self._reckoned_motion_rad = 0.0
        self._unsure = False

        if self._last_step_s is not None and now_s == self._last_step_s:
            assert self._last_output is not None
            last = self._last_output
            return ControlOutput(last.command.copy(), False, False, age,
                                 corroborated=corroborated)
        if self._last_step_s is not None and now_s < self._last_step_s:
            self._restart()
        if self._last_step_s is None:
            dt = 1.0 / self.config.control_rate_hz
        else:
            dt = now_s - self._last_step_s
        self._last_step_s = now_s

        q, goal = estimate.joint_positions, estimate.goal
        if isinstance(self.controller, LatentController):
            if estimate.latent is None:
                raise ValueError(f'the {self.config.controller} controller needs the latent')
            command = self.pid.update_velocity(
                self.controller.latent_velocity(estimate.latent), q, dt)
        elif isinstance(self.controller, VelocityController):
            command = self.pid.update_velocity(self.controller.velocity(q, goal), q, dt)
        else:
            command = self.pid.update(self.controller.setpoint(q, goal), q, dt)
        self._reckoned_q += command * dt
        self._reckoned_motion_rad += float(np.abs(command).sum()) * dt
        self._last_output = ControlOutput(command.copy(), False, False, age)
        return ControlOutput(command, False, False, age, corroborated=corroborated)

    def _corroborated(self, estimate: PerceivedState) -> bool:
        """Whether an unsure estimate agrees with the dead-reckoned last confident one.

        True when ``unsure_motion_budget_rad`` > 0, the estimate's confidence is at least
        ``min_corroborated_confidence``, a confident estimate came since the last reset or
        stale tick, the commands since moved the joints by less than the budget, and the
        estimate's joints (wrapped) and goal lie within
        ``CORROBORATION_JOINT_RAD`` and ``CORROBORATION_GOAL_M`` of the reckoned ones.
        """
        if (self._anchor_goal is None or self.config.unsure_motion_budget_rad <= 0.0
                or estimate.confidence < self.config.min_corroborated_confidence
                or self._reckoned_motion_rad >= self.config.unsure_motion_budget_rad):
            return False
        joint_error = np.abs(wrap_angle(estimate.joint_positions - self._reckoned_q)).max()
        goal_error = float(np.linalg.norm(estimate.goal - self._anchor_goal))
        return bool(joint_error <= CORROBORATION_JOINT_RAD
                    and goal_error <= CORROBORATION_GOAL_M)
