"""Controllers: map the perceived joint angles and goal to where, or how fast, to move.

A setpoint controller decides *where* the joints should go and
``reacher_policy.pid.PidSmoother.update`` decides how fast to move them there; a velocity
controller (the learned actor) decides the joint velocity itself, and the smoother's
velocity path (``PidSmoother.update_velocity``) only clamps and rate-limits it; a latent
controller (``slac``) gives a joint velocity from the frame's latent state, through the same
path. New
controllers register a factory in ``CONTROLLERS`` under the name that
``PolicyConfig.controller`` selects.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib
from typing import Protocol, runtime_checkable, TypeAlias

import numpy as np
import numpy.typing as npt

from reacher_common.config_tools import FieldError
from reacher_common.geometry import ArmGeometry
from reacher_common.kinematics import inverse_kinematics
from reacher_policy.config import PidConfig, PolicyConfig

FloatArray = npt.NDArray[np.float64]


class SetpointController(Protocol):
    """A controller that says where the joints should be; the PID says how fast.

    A controller may keep state between calls (a recurrent policy's memory, say);
    ``reset`` clears it when the loop restarts, e.g. after the estimate went stale.
    """

    def reset(self) -> None:
        """Forget any state kept between calls."""
        ...

    def setpoint(self, joint_positions: FloatArray, goal: FloatArray) -> FloatArray:
        """Joint angles the arm should move to.

        :param joint_positions: (2,) float64 rad, the perceived (shoulder, elbow) angles.
        :param goal: (2,) float64 metres, the perceived goal centre in ``world``.
        :return: (2,) float64 rad, the joint-angle setpoint.
        """
        ...


@runtime_checkable
class VelocityController(Protocol):
    """A controller that says how fast the joints should move (rad/s).

    Its velocity goes through the PID smoother's velocity path: the output clamp and the
    rate limit apply, the gains do not.
    """

    def reset(self) -> None:
        """Forget any state kept between calls."""
        ...

    def velocity(self, joint_positions: FloatArray, goal: FloatArray) -> FloatArray:
        """Joint velocities the arm should move at.

        :param joint_positions: (2,) float64 rad, the perceived (shoulder, elbow) angles.
        :param goal: (2,) float64 metres, the perceived goal centre in ``world``.
        :return: (2,) float64 rad/s.
        """
        ...


@runtime_checkable
class LatentController(Protocol):
    """A controller that acts on a learned estimator's latent state (rad/s).

    The policy node then pairs the frame's latent (``perception/latent``) with its other
    estimates by stamp; the velocity goes through the PID smoother's velocity path, as a
    :class:`VelocityController`'s.
    """

    latent_dim: int
    """The width of the latent it reads."""

    def reset(self) -> None:
        """Forget any state kept between calls."""
        ...

    def latent_velocity(self, latent: npt.NDArray[np.float32]) -> FloatArray:
        """Joint velocities the arm should move at, from one frame's latent.

        :param latent: (latent_dim,) float32, the frame's latent state.
        :return: (2,) float64 rad/s.
        """
        ...


Controller: TypeAlias = SetpointController | VelocityController | LatentController
"""What the policy loop runs: a setpoint, a velocity or a latent controller
(``PolicyLoop.step`` tells them apart with ``isinstance``)."""


class IkController:
    """Analytic inverse kinematics: put the fingertip on the goal centre.

    Of the two elbow solutions, the one nearest the present pose (in wrapped joint
    distance) is taken, so the arm does not swing across to the mirror pose; a goal
    out of reach gives the pose pointing at it (``reacher_common.kinematics``).

    :param config: the policy config; only the link lengths of its geometry are read.
    :param pid: the PID smoother's config (unused: IK gives an absolute setpoint).
    """

    geometry: ArmGeometry

    def __init__(self, config: PolicyConfig, pid: PidConfig | None = None) -> None:
        self.geometry = config.geometry

    def reset(self) -> None:
        """Nothing to forget: the IK solution depends only on the present inputs."""

    def setpoint(self, joint_positions: FloatArray, goal: FloatArray) -> FloatArray:
        """Joint angles that put the fingertip on ``goal``, elbow nearest the present pose.

        :param joint_positions: (2,) float64 rad, the perceived (shoulder, elbow) angles.
        :param goal: (2,) float64 metres, the perceived goal centre in ``world``.
        :return: (2,) float64 rad, each wrapped to [-pi, pi).
        """
        return inverse_kinematics(goal, *self.geometry.link_lengths, current=joint_positions)


CONTROLLERS: dict[str, Callable[[PolicyConfig, PidConfig], Controller]] = {
    'ik': IkController,
}
"""Controller name (``PolicyConfig.controller``) -> factory building it from the policy
and PID configs. A controller is built once per node: a ``pid.*`` change at run time
reaches the smoother, not the controller."""

CONTROLLER_MODULES: dict[str, str] = {'learned': 'reacher_policy.learned',
                                      'slac': 'reacher_policy.slac'}
"""Controllers whose module registers them on import; imported only when asked for, so
the IK controller never loads torch."""


def make_controller(config: PolicyConfig, pid: PidConfig) -> Controller:
    """Build the controller that ``config.controller`` names.

    :param config: the policy config.
    :param pid: the PID smoother's config.
    :return: a fresh controller.
    :raises FieldError: (a ``ValueError``) if no controller of that name is registered in
        ``CONTROLLERS``.
    :raises ValueError: if the controller refuses its configuration (e.g. a mismatched or
        corrupt checkpoint).
    :raises FileNotFoundError: when a learned controller's checkpoint is missing.
    """
    if config.controller not in CONTROLLERS and config.controller in CONTROLLER_MODULES:
        importlib.import_module(CONTROLLER_MODULES[config.controller])
    try:
        factory = CONTROLLERS[config.controller]
    except KeyError:
        raise FieldError(
            'PolicyConfig', 'controller', f'={config.controller!r} is unknown; known '
            f'controllers: {sorted(set(CONTROLLERS) | set(CONTROLLER_MODULES))}') from None
    return factory(config, pid)
