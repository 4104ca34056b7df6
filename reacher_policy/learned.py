"""The ``learned`` controller of the policy node: a trained actor on the perceived state.

The actor was trained on :class:`reacher_sim.env.ReacherEnv`, whose action is a joint
velocity held for one env step ``dt``. The node feeds a joint-angle setpoint to its
per-joint PID smoother, so the controller places the setpoint where the smoother's P term
asks for exactly the trained velocity: ``setpoint = q + action * max_joint_velocity / kp``
(``kp * (setpoint - q) = action * max_joint_velocity``). The smoother then adds only what
it is for: the output clamp and the rate limit on the command (and I and D, if set).
Placing it one step ahead instead (``q + action * v * dt``) slowed the arm by
``kp * dt`` (8 times at the default kp = 2.5 and 20 Hz: 25% success instead of 90%,
benchmarks/rl_learned_loop.py).
"""

from __future__ import annotations

from dataclasses import replace
import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from reacher_common.geometry import mismatches
from reacher_policy.checkpoint import ActorMetadata, load_actor
from reacher_policy.controllers import CONTROLLERS
from reacher_sim.observation import state_vector

if TYPE_CHECKING:
    from reacher_policy.config import PidConfig, PolicyConfig

DEFAULT_ACTOR_CHECKPOINT = 'sac_reacher_20hz.pt'
"""The shipped actor (checkpoints/README.md says how it was trained), used when
``PolicyConfig.checkpoint`` is empty."""

CHECKED_GEOMETRY: tuple[str, ...] = ('upper_arm_length_m', 'forearm_length_m')
"""The fields of the configured ``ArmGeometry`` that must equal the checkpoint's. The
actor's other geometry (the goal size of the state vector's inside flag, the velocity
limit that scales its action) is taken from the checkpoint itself."""

FloatArray = npt.NDArray[np.float64]


class LearnedController:
    """Joint-angle setpoints from a trained actor checkpoint (``controller: learned``).

    :param config: the policy config; ``checkpoint`` names the actor file (see
        :mod:`reacher_policy.checkpoint`; empty: the shipped
        ``DEFAULT_ACTOR_CHECKPOINT``), ``control_rate_hz`` must be ``1 / dt`` of the env it
        was trained on, and the link lengths (``CHECKED_GEOMETRY``) must match its arm.
    :param pid: the PID smoother's config; its ``kp`` places the setpoint.
    :raises FileNotFoundError: naming a missing checkpoint.
    :raises ValueError: for a checkpoint trained at another control period or for
        another arm geometry.
    """

    actor: torch.nn.Module
    metadata: ActorMetadata

    def __init__(self, config: PolicyConfig, pid: PidConfig) -> None:
        if not config.checkpoint:
            from reacher_common.paths import share_dir
            shipped = share_dir() / 'checkpoints' / DEFAULT_ACTOR_CHECKPOINT
            config = replace(config, checkpoint=str(shipped))
        self.kp = pid.kp
        self.actor, self.metadata = load_actor(config.checkpoint)
        meta = self.metadata
        period = 1.0 / config.control_rate_hz
        if not math.isclose(meta.dt, period, rel_tol=1e-6):
            raise ValueError(
                f'checkpoint {config.checkpoint!r} was trained with dt = {meta.dt} s '
                f'({1.0 / meta.dt:g} Hz) but the node runs at control_rate_hz = '
                f'{config.control_rate_hz:g} Hz (period {period:g} s); set control_rate_hz '
                f'to {1.0 / meta.dt:g} or train a policy with --sim.timing.dt {period:g}')
        differing = mismatches(meta.geometry, config.geometry, CHECKED_GEOMETRY)
        if differing:
            raise ValueError(
                f'checkpoint {config.checkpoint!r} was trained for links of '
                f'{meta.geometry.link_lengths} m but the node is configured for '
                f'{config.geometry.link_lengths} m ({"; ".join(differing)}); use a '
                'checkpoint trained for this arm')

    def reset(self) -> None:
        """Forget episode state (the actor is memoryless, so nothing to do)."""

    def action(self, joint_positions: npt.ArrayLike, goal: npt.ArrayLike) -> FloatArray:
        """The actor's deterministic action in [-1, 1] for one state.

        :param joint_positions: (2,) radians, the perceived joint angles.
        :param goal: (2,) metres in ``world``, the perceived goal.
        :return: (2,) float64 in [-1, 1].
        """
        observation = state_vector(joint_positions, goal, self.metadata.geometry)
        with torch.no_grad():
            action = self.actor(torch.as_tensor(observation).unsqueeze(0))[0]
        return action.numpy().astype(np.float64)

    def setpoint(self, joint_positions: FloatArray, goal: FloatArray) -> FloatArray:
        """The setpoint whose P term commands the actor's joint velocity.

        :param joint_positions: (2,) radians, the perceived joint angles.
        :param goal: (2,) metres in ``world``, the perceived goal.
        :return: (2,) float64 radians (not wrapped, so the PID sees a small error).
        """
        q = np.asarray(joint_positions, dtype=np.float64)
        return q + self.action(q, goal) * self.metadata.geometry.max_joint_velocity / self.kp


CONTROLLERS['learned'] = LearnedController
