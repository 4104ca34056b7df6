"""The ``learned`` controller of the policy node: a trained actor on the perceived state.

The actor was trained on :class:`reacher_sim.env.ReacherEnv`, whose action is a joint
velocity held for one env step ``dt``. The controller is therefore a velocity controller
(:class:`reacher_policy.controllers.VelocityController`): it returns
``action * max_joint_velocity`` and the PID smoother's velocity path
(``PidSmoother.update_velocity``) applies only what the smoother is for, the output clamp
and the rate limit; the gains play no part. (Until issue 12 it placed a setpoint at
``q + action * max_joint_velocity / kp`` so that the P term gave that velocity: ``kp = 0``
divided by zero and killed the node, and every gain change had to rebuild the controller.
A setpoint one step ahead, ``q + action * v * dt``, slowed the arm by ``kp * dt``: 25%
success instead of 90%, benchmarks/rl_learned_loop.py.)
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


def check_actor(meta: ActorMetadata, config: PolicyConfig, observation: str) -> None:
    """Refuse an actor checkpoint that does not fit the node (``config.checkpoint``).

    :param meta: the checkpoint's metadata.
    :param config: the policy config (its ``checkpoint`` names the file in messages).
    :param observation: what the controller feeds the actor ('state', 'slac-latent').
    :raises ValueError: for an actor trained on another observation, at another control
        period or for another arm (``CHECKED_GEOMETRY``).
    """
    if meta.observation != observation:
        raise ValueError(
            f'checkpoint {config.checkpoint!r} is an actor on the {meta.observation!r} '
            f'observation but controller {config.controller!r} feeds it {observation!r}; '
            "use controller 'slac' for an actor trained on the SLAC latent and 'learned' "
            'for one trained on the state')
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


class LearnedController:
    """Joint velocities from a trained actor checkpoint (``controller: learned``).

    :param config: the policy config; ``checkpoint`` names the actor file (see
        :mod:`reacher_policy.checkpoint`; empty: the shipped
        ``DEFAULT_ACTOR_CHECKPOINT``), ``control_rate_hz`` must be ``1 / dt`` of the env it
        was trained on, and the link lengths (``CHECKED_GEOMETRY``) must match its arm.
    :param pid: the PID smoother's config (unused: the velocity bypasses the gains; the
        argument keeps the factory signature of ``CONTROLLERS``).
    :raises FileNotFoundError: naming a missing checkpoint.
    :raises ValueError: for a checkpoint trained at another control period, for another
        arm geometry or on another observation than the state (:func:`check_actor`).
    """

    actor: torch.nn.Module
    metadata: ActorMetadata

    def __init__(self, config: PolicyConfig, pid: PidConfig) -> None:
        if not config.checkpoint:
            from reacher_common.paths import share_dir
            shipped = share_dir() / 'checkpoints' / DEFAULT_ACTOR_CHECKPOINT
            config = replace(config, checkpoint=str(shipped))
        self.actor, self.metadata = load_actor(config.checkpoint)
        check_actor(self.metadata, config, 'state')

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

    def velocity(self, joint_positions: FloatArray, goal: FloatArray) -> FloatArray:
        """The joint velocity the actor commands: its action times the velocity limit.

        :param joint_positions: (2,) radians, the perceived joint angles.
        :param goal: (2,) metres in ``world``, the perceived goal.
        :return: (2,) float64 rad/s, within ``+-max_joint_velocity`` of the checkpoint.
        :raises ValueError: if the actor's output is not finite (an input beyond float32).
        """
        q = np.asarray(joint_positions, dtype=np.float64)
        velocity = self.action(q, goal) * self.metadata.geometry.max_joint_velocity
        if not np.all(np.isfinite(velocity)):
            raise ValueError('the actor gave a non-finite action: is its input finite in '
                             'float32?')
        return velocity


CONTROLLERS['learned'] = LearnedController
