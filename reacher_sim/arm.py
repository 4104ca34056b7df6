"""The simulated arm and its task, as plain Python: what the env and the sim node step.

The arm is kinematic, as in the seed: each step integrates the commanded joint
velocities (clipped to ``max_joint_velocity``) over ``dt``. A goal is reached when the
fingertip stays inside the goal square for ``success_hold_steps`` consecutive steps.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
import numpy.typing as npt

from reacher_common.kinematics import forward_kinematics, wrap_angle
from reacher_sim.config import SimConfig

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StepResult:
    """What one physics step produced.

    :param distance_m: fingertip-to-goal-centre distance after the step, metres.
    :param inside_goal: whether the fingertip is inside the goal square.
    :param hold_steps: consecutive steps inside so far (0 when outside).
    :param success: whether this step completed the hold (the goal is reached).
    """

    distance_m: float
    inside_goal: bool
    hold_steps: int
    success: bool


class ArmSim:
    """State and dynamics of the arm and its goal.

    :param config: the simulator config.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.joint_positions: FloatArray = np.zeros(2)
        self.joint_velocities: FloatArray = np.zeros(2)
        self.goal: FloatArray = np.array([config.geometry.reach_m / 2.0, 0.0])
        self.hold_steps = 0

    def reset(self, rng: np.random.Generator, randomize_joints: bool = True) -> None:
        """Start a new episode: new joint angles (uniform in [-pi, pi)) and a new goal.

        :param rng: the only source of randomness (gymnasium's ``np_random``).
        :param randomize_joints: when False, the arm keeps its pose (continuous task).
        """
        if randomize_joints:
            self.joint_positions = rng.uniform(-math.pi, math.pi, size=2)
        self.joint_velocities = np.zeros(2)
        self.goal = self.sample_goal(rng)
        self.hold_steps = 0

    def sample_goal(self, rng: np.random.Generator) -> FloatArray:
        """Draw a goal centre per ``config.goal_sampling``.

        'reachable': uniform by area over the annulus of radii
        [|l1 - l2| + margin, l1 + l2 - margin]. 'seed': uniform over the arena with the
        goal square wholly inside it, as the seed did (some goals out of reach).

        :param rng: random generator.
        :return: (2,) metres in ``world``.
        """
        cfg = self.config
        if cfg.goal_sampling == 'seed':
            half = (cfg.geometry.arena_size_m - cfg.geometry.goal_size_m) / 2.0
            return rng.uniform(-half, half, size=2)
        geometry = cfg.geometry
        r_min = abs(geometry.upper_arm_length_m - geometry.forearm_length_m) + cfg.goal_margin_m
        r_max = cfg.geometry.reach_m - cfg.goal_margin_m
        radius = math.sqrt(rng.uniform(r_min * r_min, r_max * r_max))
        angle = rng.uniform(-math.pi, math.pi)
        return np.array([radius * math.cos(angle), radius * math.sin(angle)])

    @property
    def fingertip(self) -> FloatArray:
        """(2,) metres: the fingertip in ``world``."""
        return forward_kinematics(self.joint_positions, *self.config.geometry.link_lengths)[1]

    @property
    def elbow(self) -> FloatArray:
        """(2,) metres: the elbow in ``world``."""
        return forward_kinematics(self.joint_positions, *self.config.geometry.link_lengths)[0]

    def inside_goal(self) -> bool:
        """Whether the fingertip lies inside the goal square (edges included)."""
        offset = np.abs(self.fingertip - self.goal)
        return bool(np.all(offset <= self.config.geometry.goal_size_m / 2.0))

    def distance(self) -> float:
        """Fingertip-to-goal-centre distance, metres."""
        return float(np.linalg.norm(self.fingertip - self.goal))

    def step(self, joint_velocities: npt.ArrayLike, dt: float | None = None) -> StepResult:
        """Integrate one step of commanded joint velocities.

        :param joint_velocities: (2,) rad/s; clipped to +-``max_joint_velocity``.
        :param dt: seconds; defaults to ``config.timing.dt``.
        :return: the step's distance, inside flag, hold count and success.
        :raises ValueError: if the command is not two finite numbers.
        """
        command = np.asarray(joint_velocities, dtype=np.float64)
        if command.shape != (2,) or not np.all(np.isfinite(command)):
            raise ValueError(f'joint_velocities must be 2 finite numbers, got {command!r}')
        limit = self.config.geometry.max_joint_velocity
        self.joint_velocities = np.clip(command, -limit, limit)
        step_dt = self.config.timing.dt if dt is None else dt
        self.joint_positions = wrap_angle(self.joint_positions + self.joint_velocities * step_dt)
        inside = self.inside_goal()
        self.hold_steps = self.hold_steps + 1 if inside else 0
        success = self.hold_steps >= self.config.success_hold_steps
        return StepResult(self.distance(), inside, self.hold_steps, success)
