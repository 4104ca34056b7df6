"""The continuous reaching task the sim node runs: goal after goal, with statistics.

Unlike the gymnasium env's episodes, the arm keeps its pose between goals: after each
success (or a timeout) a new goal is drawn, as a person would set targets for a robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt

from reacher_sim.arm import ArmSim, StepResult
from reacher_sim.config import SimConfig


class GoalEvent(Enum):
    """What happened to the current goal on a step."""

    REACHED = 'reached'
    TIMED_OUT = 'timed_out'


@dataclass(frozen=True)
class TaskStats:
    """Counters since the last reset.

    :param goals_reached: goals held for ``success_hold_steps``.
    :param goals_timed_out: goals replaced after ``goal_timeout_s`` without success.
    :param time_to_goal_s: seconds from each reached goal's appearance to its success.
    :param current_goal_age_s: seconds the present goal has been up.
    """

    goals_reached: int
    goals_timed_out: int
    time_to_goal_s: tuple[float, ...]
    current_goal_age_s: float

    @property
    def success_rate(self) -> float:
        """Reached over finished (reached + timed out) goals; nan before the first."""
        finished = self.goals_reached + self.goals_timed_out
        return self.goals_reached / finished if finished else float('nan')

    @property
    def mean_time_to_goal_s(self) -> float:
        """Mean of ``time_to_goal_s``; nan before the first success."""
        return float(np.mean(self.time_to_goal_s)) if self.time_to_goal_s else float('nan')


class ReachingTask:
    """Steps an :class:`ArmSim` and replaces each goal once reached or timed out.

    :param config: the simulator config.
    :param goal_timeout_s: seconds before an unreached goal is replaced, > 0.
    :param seed: seed of all sampling.
    """

    def __init__(self, config: SimConfig, goal_timeout_s: float, seed: int = 0) -> None:
        if goal_timeout_s <= 0.0:
            raise ValueError(f'goal_timeout_s={goal_timeout_s} must be > 0')
        self.config = config
        self.goal_timeout_s = goal_timeout_s
        self.rng = np.random.default_rng(seed)
        self.arm = ArmSim(config)
        self.time_s = 0.0
        self._goal_start_s = 0.0
        self._reached = 0
        self._timed_out = 0
        self._times: list[float] = []
        self.reset()

    def reset(self) -> None:
        """New arm pose and goal; clears the statistics and the task clock."""
        self.arm.reset(self.rng, randomize_joints=True)
        self.time_s = 0.0
        self._goal_start_s = 0.0
        self._reached = 0
        self._timed_out = 0
        self._times = []

    def new_goal(self) -> None:
        """Replace the goal now, keeping the arm's pose (not counted as missed)."""
        self.arm.goal = self.arm.sample_goal(self.rng)
        self.arm.hold_steps = 0
        self._goal_start_s = self.time_s

    def step(self, joint_velocities: npt.ArrayLike) -> tuple[StepResult, GoalEvent | None]:
        """Advance one ``dt`` with the commanded joint velocities.

        :param joint_velocities: (2,) rad/s, clipped to the joint limit.
        :return: the physics step's result and the goal event of this step, if any.
        :raises ValueError: if the command is not two finite numbers.
        """
        result = self.arm.step(joint_velocities)
        self.time_s += self.config.timing.dt
        event: GoalEvent | None = None
        if result.success:
            self._reached += 1
            self._times.append(self.time_s - self._goal_start_s)
            event = GoalEvent.REACHED
        elif self.time_s - self._goal_start_s >= self.goal_timeout_s - 1e-9:
            self._timed_out += 1
            event = GoalEvent.TIMED_OUT
        if event is not None:
            self.new_goal()
        return result, event

    def stats(self) -> TaskStats:
        """The counters since the last :meth:`reset`."""
        return TaskStats(self._reached, self._timed_out, tuple(self._times),
                         self.time_s - self._goal_start_s)
