"""The small actor checkpoint that the learned controller loads: weights plus metadata.

The file is a plain ``torch.save`` of ``{'state_dict': ..., 'metadata': ...}`` holding
only tensors, strings and numbers, so ``torch.load(weights_only=True)`` reads it without
unpickling code (unlike Stable-Baselines3's zip, which stays the training/resume format).
The actor is an MLP with ReLU hidden layers and a tanh output: the deterministic action of
SB3's SAC (``tanh(mu(latent_pi(obs)))``), TD3 and DDPG (``mu(obs)``) alike, which
``reacher_policy.training.export`` copies out of a trained model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reacher_common.geometry import (
    ArmGeometry,
    geometry_from_dict,
    geometry_to_dict,
    Timing,
)
from reacher_common.weights import load_checkpoint_payload

ACTOR_CHECKPOINT_FORMAT = 'reacher-actor-v1'
"""The ``format`` key of an actor checkpoint's metadata."""


@dataclass(frozen=True)
class ActorMetadata:
    """What a checkpoint's actor was trained for; checked before it drives an arm.

    On disk the metadata is one flat dict (:func:`reacher_common.geometry.geometry_to_dict`
    for the geometry and ``dt``, then the other fields), so files written before the
    geometry was one class, which hold only ``dt``, ``max_joint_velocity``, the link
    lengths and ``goal_size_m``, still load: the fields they lack take
    :class:`ArmGeometry`'s defaults, which is what their simulator drew.

    :param algo: 'sac', 'td3' or 'ddpg'.
    :param geometry: the arm, goal and velocity limit of the env it was trained on (the
        state vector reads the link lengths and goal size; an action of 1 commands
        ``max_joint_velocity``).
    :param timing: the env's step ``dt``, seconds: the actor's control period.
    :param observation_dim: length of the state vector.
    :param net_arch: hidden layer widths.
    :param env_steps: env steps the actor was trained for.
    :param command: the command that trained it.
    :param observation: what the actor reads: 'state' (the state vector of
        ``reacher_sim.observation``, the ``learned`` controller) or 'slac-latent' (the
        filtered latent (z1, z2) of a SLAC perception model, the ``slac`` controller).
        Files written before the field read as 'state'.
    :param latent_fingerprint: for 'slac-latent': the fingerprint of the latent model's
        weights (``reacher_common.weights.latent_model_fingerprint``); '' otherwise.
    :param latent_checkpoint: for 'slac-latent': the file name of that perception
        checkpoint, for messages; '' otherwise.
    """

    algo: str
    geometry: ArmGeometry
    timing: Timing
    observation_dim: int
    net_arch: tuple[int, ...]
    env_steps: int = 0
    command: str = ''
    observation: str = 'state'
    latent_fingerprint: str = ''
    latent_checkpoint: str = ''

    @property
    def dt(self) -> float:
        """The control period the actor was trained at, seconds (``timing.dt``)."""
        return self.timing.dt

    def to_dict(self) -> dict[str, Any]:
        """The flat dict stored in the checkpoint (lists and numbers only)."""
        return {'algo': self.algo, **geometry_to_dict(self.geometry, self.timing),
                'observation_dim': self.observation_dim, 'net_arch': list(self.net_arch),
                'env_steps': self.env_steps, 'command': self.command,
                'observation': self.observation, 'latent_fingerprint': self.latent_fingerprint,
                'latent_checkpoint': self.latent_checkpoint}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ActorMetadata:
        """Read what :meth:`to_dict` wrote, or an older file's flat subset of it.

        :raises KeyError: naming a missing required key.
        :raises ValueError: for an out-of-range geometry value.
        """
        geometry, timing = geometry_from_dict(values)
        return cls(algo=str(values['algo']), geometry=geometry, timing=timing,
                   observation_dim=int(values['observation_dim']),
                   net_arch=tuple(int(width) for width in values['net_arch']),
                   env_steps=int(values.get('env_steps', 0)),
                   command=str(values.get('command', '')),
                   observation=str(values.get('observation', 'state')),
                   latent_fingerprint=str(values.get('latent_fingerprint', '')),
                   latent_checkpoint=str(values.get('latent_checkpoint', '')))


class ActorMlp(nn.Module):
    """Deterministic actor: ReLU MLP with a tanh output in [-1, 1].

    :param observation_dim: input width.
    :param net_arch: hidden layer widths.
    :param action_dim: output width.
    """

    def __init__(self, observation_dim: int, net_arch: tuple[int, ...],
                 action_dim: int = 2) -> None:
        super().__init__()
        self.net_arch = tuple(net_arch)
        widths = [observation_dim, *net_arch, action_dim]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """Map (B, observation_dim) float32 to (B, action_dim) actions in [-1, 1]."""
        hidden = observation
        for layer in self.layers[:-1]:
            hidden = torch.relu(layer(hidden))
        return torch.tanh(self.layers[-1](hidden))


def save_actor(path: str | Path, actor: ActorMlp, metadata: ActorMetadata) -> None:
    """Write the actor and its metadata to ``path`` (parents created).

    :param path: the .pt file.
    :param actor: the actor.
    :param metadata: what it was trained for.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**metadata.to_dict(), 'format': ACTOR_CHECKPOINT_FORMAT}
    torch.save({'state_dict': {k: v.clone() for k, v in actor.state_dict().items()},
                'metadata': meta}, path)


def load_actor(path: str | Path) -> tuple[ActorMlp, ActorMetadata]:
    """Read an actor checkpoint written by :func:`save_actor`.

    :param path: the .pt file.
    :return: the actor (CPU, eval mode) and its metadata.
    :raises FileNotFoundError: naming a missing path.
    :raises ValueError: for a file that is not such a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f'actor checkpoint {str(path)!r} does not exist; train one with '
            "'reacher policy train' or set the checkpoint parameter to a shipped one, e.g. "
            'checkpoints/sac_reacher_20hz.pt')
    data, found = load_checkpoint_payload(
        path, 'actor checkpoint', (ACTOR_CHECKPOINT_FORMAT,),
        hint=" (an SB3 .zip? export it with 'reacher policy export')")
    meta = dict(found)
    meta.pop('format')
    try:
        metadata = ActorMetadata.from_dict(meta)
        actor = ActorMlp(metadata.observation_dim, metadata.net_arch)
        actor.load_state_dict(data['state_dict'])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f'actor checkpoint {str(path)!r} is damaged: '
                         f'{type(error).__name__}: {str(error).splitlines()[0][:200]}') from None
    return actor.eval(), metadata
