"""The policy's control loop, as plain Python: what the policy node calls each timer tick.

The node hands each perception estimate to ``PolicyLoop.update_estimate`` and, at
``control_rate_hz``, publishes the command that ``PolicyLoop.step`` returns:

.. code-block:: text

    estimate (joint angles, goal, image stamp)
        -> controller.setpoint            # where the joints should be, rad
        -> PidSmoother.update             # how fast to get there, rad/s
        -> command

An estimate older than ``estimate_timeout_s`` (by its image stamp) is stale: the arm is
stopped rather than driven by what the camera saw long ago.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
import numpy.typing as npt

from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.controllers import Controller, make_controller
from reacher_policy.pid import PidSmoother

FloatArray = npt.NDArray[np.float64]

NUM_JOINTS = 2


@dataclass(frozen=True)
class PerceivedState:
    """One perception estimate, as the policy receives it.

    :param stamp_s: seconds, the time of the camera image the estimate came from (the
        node's clock, e.g. ``header.stamp`` in seconds).
    :param joint_positions: (2,) rad, the estimated (shoulder, elbow) angles.
    :param goal: (2,) metres, the estimated goal centre in ``world``.
    """

    stamp_s: float
    joint_positions: FloatArray
    goal: FloatArray


@dataclass(frozen=True)
class ControlOutput:
    """What one control tick produced.

    :param command: (2,) float64 rad/s, the (shoulder, elbow) joint velocity command;
        zeros when ``stale``.
    :param stale: whether there was no estimate or it was older than
        ``estimate_timeout_s`` (the arm is being stopped).
    :param became_stale: True only on the first stale tick after a fresh one, so the node
        can say so once; the loop starts stale (no estimate yet) without reporting it.
    :param estimate_age_s: seconds between the tick and the estimate's image stamp, or
        None when there is no estimate.
    """

    command: FloatArray
    stale: bool
    became_stale: bool
    estimate_age_s: float | None


class PolicyLoop:
    """Controller plus PID smoother, fed by perception estimates, stepped by a timer.

    :param config: loop timing, controller choice and arm geometry.
    :param pid: gains and limits of the PID smoother.
    :raises ValueError: if ``config.controller`` names no registered controller.
    """

    config: PolicyConfig
    controller: Controller
    pid: PidSmoother

    def __init__(self, config: PolicyConfig, pid: PidConfig) -> None:
        self.config = config
        self.controller = make_controller(config, pid)
        self.pid = PidSmoother(pid, num_joints=NUM_JOINTS)
        self._estimate: PerceivedState | None = None
        self._last_step_s: float | None = None
        self._last_output: ControlOutput | None = None
        self._stale = True

    @property
    def estimate(self) -> PerceivedState | None:
        """The newest estimate given to ``update_estimate`` (validated copy), or None."""
        return self._estimate

    @property
    def stale(self) -> bool:
        """Whether the last ``step`` found no fresh estimate (True before the first one)."""
        return self._stale

    def set_pid_config(self, pid: PidConfig) -> None:
        """Change the PID gains and limits at run time without restarting control.

        :param pid: the new gains and limits (see ``PidSmoother.set_config``).
        """
        self.pid.set_config(pid)
        # A controller may depend on the gains (the learned one's setpoint does).
        self.controller = make_controller(self.config, pid)

    def reset(self) -> None:
        """Start over: forget the estimate and the controller's and PID's state."""
        self._estimate = None
        self._restart()
        self._stale = True

    def _restart(self) -> None:
        """Restart control cleanly from rest, keeping the estimate."""
        self.controller.reset()
        self.pid.reset()
        self._last_step_s = None
        self._last_output = None

    def update_estimate(self, state: PerceivedState) -> None:
        """Take a new perception estimate; it replaces the previous one.

        :param state: the estimate; its arrays are copied as float64.
        :raises ValueError: if the stamp is not finite, or the joint angles or goal are not
            two finite numbers each.
        """
        stamp_s = float(state.stamp_s)
        if not math.isfinite(stamp_s):
            raise ValueError(f'stamp_s must be finite seconds, got {state.stamp_s!r}')
        joint_positions = np.array(state.joint_positions, dtype=np.float64)
        goal = np.array(state.goal, dtype=np.float64)
        for name, value in (('joint_positions', joint_positions), ('goal', goal)):
            if value.shape != (NUM_JOINTS,) or not np.all(np.isfinite(value)):
                raise ValueError(f'{name} must be {NUM_JOINTS} finite numbers, got {value!r}')
        self._estimate = PerceivedState(stamp_s, joint_positions, goal)

    def step(self, now_s: float) -> ControlOutput:
        """Compute the command for the tick at ``now_s``.

        With no estimate, or one whose age ``now_s - stamp_s`` exceeds
        ``estimate_timeout_s`` in magnitude (a stamp that far in the future is not trusted
        either), the command is zero and the controller and PID are reset, so control
        restarts from rest when fresh estimates return. Otherwise the controller's
        setpoint goes through the PID with ``dt`` = time since the previous fresh tick
        (``1 / control_rate_hz`` on the first one). If the clock went backwards (a
        replayed bag restarting ``/clock``), control restarts as on a first tick; a
        repeated ``now_s`` returns the previous output unchanged.

        :param now_s: seconds, the tick's time on the same clock as the estimates' stamps.
        :return: the command and the staleness report.
        :raises ValueError: if ``now_s`` is not finite.
        """
        if not math.isfinite(now_s):
            raise ValueError(f'now_s must be finite seconds, got {now_s!r}')
        estimate = self._estimate
        age = None if estimate is None else now_s - estimate.stamp_s
        if age is None or abs(age) > self.config.estimate_timeout_s:
            became_stale = not self._stale
            self._stale = True
            self._restart()
            return ControlOutput(np.zeros(NUM_JOINTS), True, became_stale, age)
        assert estimate is not None
        self._stale = False

        if self._last_step_s is not None and now_s == self._last_step_s:
            assert self._last_output is not None
            last = self._last_output
            return ControlOutput(last.command.copy(), False, False, age)
        if self._last_step_s is not None and now_s < self._last_step_s:
            self._restart()
        if self._last_step_s is None:
            dt = 1.0 / self.config.control_rate_hz
        else:
            dt = now_s - self._last_step_s
        self._last_step_s = now_s

        setpoint = self.controller.setpoint(estimate.joint_positions, estimate.goal)
        command = self.pid.update(setpoint, estimate.joint_positions, dt)
        self._last_output = ControlOutput(command.copy(), False, False, age)
        return ControlOutput(command, False, False, age)
