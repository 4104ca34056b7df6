"""The ``slac`` controller of the policy node: an actor on the SLAC filter's latent state.

perception_node's ``slac`` estimator publishes each frame's filtered latent (z1, z2)
(the posterior means, float32) on ``perception/latent`` with the frame's stamp; the policy
node pairs it with the frame's other estimates (``reacher_policy.bundle.FrameBundler``)
and this controller maps it to a joint velocity, ``action * max_joint_velocity``, which
goes through the PID smoother's velocity path (clamp and rate limit), like the
``learned`` controller's (:mod:`reacher_policy.learned`).

The actor is SB3 SAC's deterministic actor (format ``reacher-actor-v1`` of
:mod:`reacher_policy.checkpoint`, ``observation: slac-latent``) trained on the reacher
env observed through the perception's own, frozen latent model
(``reacher_policy.training.slac.latent_env``; ``reacher policy train --preset
sac-slac-latent``). Its latent means something only for that model, so the checkpoint
records the model's fingerprint (``reacher_common.weights.latent_model_fingerprint``,
the latent model's weights only: refitting the perception checkpoint's confidence keeps
it) and the controller refuses, at start, a ``latent_checkpoint`` (the perception's
checkpoint) whose latent model has another. At run time a latent of another width is
dropped (``PolicyLoop.update_estimate``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from reacher_common.paths import share_dir
from reacher_common.weights import latent_model_fingerprint
from reacher_policy.checkpoint import ActorMetadata, load_actor
from reacher_policy.controllers import CONTROLLERS
from reacher_policy.learned import check_actor

if TYPE_CHECKING:
    from reacher_policy.config import PidConfig, PolicyConfig

DEFAULT_SLAC_ACTOR_CHECKPOINT = 'sac_slac_latent_20hz.pt'
"""The shipped actor on the latent (checkpoints/README.md says how it was trained), used
when ``PolicyConfig.checkpoint`` is empty."""
DEFAULT_LATENT_CHECKPOINT = 'slac_reacher.pt'
"""The shipped SLAC perception checkpoint, used when ``PolicyConfig.latent_checkpoint``
is empty (perception_node's default too)."""
OBSERVATION = 'slac-latent'
"""``ActorMetadata.observation`` of an actor on the latent."""

FloatArray = npt.NDArray[np.float64]


class SlacController:
    """Joint velocities from the frame's SLAC latent (``controller: slac``).

    :param config: the policy config: ``checkpoint`` names the actor ('' =
        :data:`DEFAULT_SLAC_ACTOR_CHECKPOINT`), ``latent_checkpoint`` the perception's
        SLAC checkpoint ('' = :data:`DEFAULT_LATENT_CHECKPOINT`); ``control_rate_hz``
        must be ``1 / dt`` of the env the actor was trained on, the link lengths its arm's.
    :param pid: the PID smoother's config (unused, as for the learned controller).
    :raises FileNotFoundError: naming a missing checkpoint.
    :raises ValueError: for an actor not trained on the SLAC latent, at another control
        period or for another arm, or whose latent model's fingerprint differs from the
        perception checkpoint's (one line naming both files).
    """

    actor: torch.nn.Module
    metadata: ActorMetadata
    latent_dim: int

    def __init__(self, config: PolicyConfig, pid: PidConfig) -> None:
        shipped = share_dir() / 'checkpoints'
        if not config.checkpoint:
            config = replace(config, checkpoint=str(shipped / DEFAULT_SLAC_ACTOR_CHECKPOINT))
        latent_file = Path(config.latent_checkpoint or shipped / DEFAULT_LATENT_CHECKPOINT)
        self.actor, self.metadata = load_actor(config.checkpoint)
        meta = self.metadata
        check_actor(meta, config, OBSERVATION)
        fingerprint = latent_model_fingerprint(latent_file)
        if fingerprint != meta.latent_fingerprint:
            raise ValueError(
                f'controller checkpoint {config.checkpoint!r} was trained on the latent '
                f'model of {meta.latent_checkpoint or "?"} (fingerprint '
                f'{meta.latent_fingerprint or "none"}) but latent_checkpoint '
                f"{str(latent_file)!r} (the perception's) holds another (fingerprint "
                f"{fingerprint}); give the policy the perception's checkpoint, or train "
                'the controller on it (checkpoints/README.md)')
        self.latent_dim = meta.observation_dim
        self.latent_checkpoint = latent_file
        """The perception checkpoint whose latent model this actor reads."""
        # One thread: a 64x64 MLP gains nothing from more, and the machine is shared.
        torch.set_num_threads(1)

    def reset(self) -> None:
        """Forget episode state (the actor is memoryless; the filter lives in perception)."""

    def latent_velocity(self, latent: npt.NDArray[np.float32]) -> FloatArray:
        """The joint velocity the actor commands on one frame's latent.

        :param latent: (latent_dim,) float32, the filtered (z1, z2) of the frame.
        :return: (2,) float64 rad/s, within ``+-max_joint_velocity`` of the checkpoint.
        :raises ValueError: for a latent of another width, or a non-finite action.
        """
        values = np.asarray(latent, dtype=np.float32)
        if values.shape != (self.latent_dim,):
            raise ValueError(f'the actor reads a latent of {self.latent_dim} values, got '
                             f'shape {values.shape}')
        with torch.no_grad():
            action = self.actor(torch.from_numpy(values).unsqueeze(0))[0]
        velocity = action.numpy().astype(np.float64) * self.metadata.geometry.max_joint_velocity
        if not np.all(np.isfinite(velocity)):
            raise ValueError('the actor gave a non-finite action')
        return velocity


CONTROLLERS['slac'] = SlacController
