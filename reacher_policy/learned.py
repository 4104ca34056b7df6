"""The ``learned`` controller of the policy node: a trained actor on the perceived state.

The actor was trained on :class:`reacher_sim.env.ReacherEnv`, whose action is a joint
velocity held for one env step ``dt``. The node instead feeds a joint-angle setpoint to
its per-joint PID smoother, so the controller returns the angles that action would reach
after one step: ``setpoint = q + action * max_joint_velocity * dt``. A PID with
``kp = 1 / dt`` (and no I, D or limits) then reproduces the trained action exactly.
With the node's default ``kp = 2.5`` at 20 Hz the arm moves 8 times slower than it was
trained to (measured: 25% success instead of 90% in 10 s, benchmarks/rl_learned_loop.py),
so run this controller with ``pid.kp = control_rate_hz``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from reacher_policy.checkpoint import ActorMetadata, load_actor
from reacher_sim.env import state_vector

if TYPE_CHECKING:
    from reacher_policy.config import PolicyConfig

FloatArray = npt.NDArray[np.float64]


class LearnedController:
    """Joint-angle setpoints from a trained actor checkpoint (``controller: learned``).

    :param config: the policy config; ``checkpoint`` names the actor file (see
        :mod:`reacher_policy.checkpoint`), ``control_rate_hz`` must be ``1 / dt`` of the
        env it was trained on, and the link lengths must match its arm.
    :raises FileNotFoundError: naming a missing checkpoint.
    :raises ValueError: for a checkpoint trained at another control period or for
        another arm geometry.
    """

    actor: torch.nn.Module
    metadata: ActorMetadata

    def __init__(self, config: PolicyConfig) -> None:
        if not config.checkpoint:
            raise ValueError("PolicyConfig.checkpoint is '': the learned controller needs "
                             'an actor checkpoint, e.g. checkpoints/sac_reacher_20hz.pt')
        self.actor, self.metadata = load_actor(config.checkpoint)
        meta = self.metadata
        period = 1.0 / config.control_rate_hz
        if not math.isclose(meta.dt, period, rel_tol=1e-6):
            raise ValueError(
                f'checkpoint {config.checkpoint!r} was trained with dt = {meta.dt} s '
                f'({1.0 / meta.dt:g} Hz) but the node runs at control_rate_hz = '
                f'{config.control_rate_hz:g} Hz (period {period:g} s); set control_rate_hz '
                f'to {1.0 / meta.dt:g} or train a policy with --sim.dt {period:g}')
        geometry = (config.upper_arm_length_m, config.forearm_length_m)
        trained = (meta.upper_arm_length_m, meta.forearm_length_m)
        if not np.allclose(geometry, trained, rtol=1e-6, atol=0.0):
            raise ValueError(
                f'checkpoint {config.checkpoint!r} was trained for links of {trained} m but '
                f'the node is configured for {geometry} m (upper_arm_length_m, '
                'forearm_length_m); use a checkpoint trained for this arm')
        self.sim_config = meta.sim_config()

    def reset(self) -> None:
        """Forget episode state (the actor is memoryless, so nothing to do)."""

    def action(self, joint_positions: npt.ArrayLike, goal: npt.ArrayLike) -> FloatArray:
        """The actor's deterministic action in [-1, 1] for one state.

        :param joint_positions: (2,) radians, the perceived joint angles.
        :param goal: (2,) metres in ``world``, the perceived goal.
        :return: (2,) float64 in [-1, 1].
        """
        observation = state_vector(joint_positions, goal, self.sim_config)
        with torch.no_grad():
            action = self.actor(torch.as_tensor(observation).unsqueeze(0))[0]
        return action.numpy().astype(np.float64)

    def setpoint(self, joint_positions: FloatArray, goal: FloatArray) -> FloatArray:
        """Joint angles one control period ahead along the actor's action.

        :param joint_positions: (2,) radians, the perceived joint angles.
        :param goal: (2,) metres in ``world``, the perceived goal.
        :return: (2,) float64 radians (not wrapped, so the PID sees a small error).
        """
        q = np.asarray(joint_positions, dtype=np.float64)
        step = self.action(q, goal) * self.metadata.max_joint_velocity * self.metadata.dt
        return q + step


try:  # controllers.py comes from the policy-node branch; register when it is present.
    from reacher_policy.controllers import CONTROLLERS
except ImportError:  # pragma: no cover - before the branches are merged
    pass
else:
    CONTROLLERS['learned'] = LearnedController
