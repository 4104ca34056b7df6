"""Export: an SB3 model's deterministic actor as the learned controller's small checkpoint.

The checkpoint format is :mod:`reacher_policy.checkpoint`'s; only this training module
knows how SB3 lays out its actors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from reacher_policy.checkpoint import ActorMetadata, ActorMlp, save_actor
from reacher_sim.config import SimConfig
from reacher_sim.observation import STATE_DIM


def actor_from_sb3(model: Any) -> ActorMlp:
    """Copy the deterministic actor of an SB3 SAC, TD3 or DDPG model into an ActorMlp.

    :param model: a ``stable_baselines3`` SAC, TD3 or DDPG instance with an MLP policy.
    :return: the ActorMlp, on CPU, in eval mode.
    :raises ValueError: for another algorithm or network shape.
    """
    actor = model.policy.actor
    if hasattr(actor, 'latent_pi'):  # SAC: tanh(mu(latent_pi(obs))).
        modules = list(actor.latent_pi)
        linears = [m for m in modules if isinstance(m, nn.Linear)] + [actor.mu]
        allowed: set[type[nn.Module]] = {nn.ReLU}
    else:  # TD3 / DDPG: mu = Sequential(Linear, ReLU, ..., Linear, Tanh).
        modules = list(actor.mu)
        linears = [m for m in modules if isinstance(m, nn.Linear)]
        allowed = {nn.ReLU, nn.Tanh}
    activations = {type(m) for m in modules if not isinstance(m, nn.Linear)}
    if not activations <= allowed:
        raise ValueError(f'actor activations {activations} are not ReLU: export supports '
                         "SB3's default ReLU MLP actors only")
    net_arch = tuple(layer.out_features for layer in linears[:-1])
    exported = ActorMlp(linears[0].in_features, net_arch, linears[-1].out_features)
    with torch.no_grad():
        for target, source in zip(exported.layers, linears, strict=True):
            assert isinstance(target, nn.Linear)
            target.weight.copy_(source.weight.detach().cpu())
            target.bias.copy_(source.bias.detach().cpu())
    return exported.eval()


def export_actor(model: Any, path: str | Path, algo: str, sim: SimConfig,
                 command: str = '') -> ActorMetadata:
    """Write the actor checkpoint of an SB3 model trained on ``sim``.

    :param model: a ``stable_baselines3`` SAC, TD3 or DDPG instance with an MLP policy.
    :param path: the .pt file to write (parents created).
    :param algo: recorded in the metadata.
    :param sim: the task it was trained on: its geometry and ``dt`` go in the metadata.
    :param command: the command that made it, recorded in the metadata.
    :return: the metadata written.
    :raises ValueError: for an actor that :func:`actor_from_sb3` cannot copy.
    """
    actor = actor_from_sb3(model)
    metadata = ActorMetadata(algo=algo, geometry=sim.geometry, timing=sim.timing,
                             observation_dim=STATE_DIM, net_arch=actor.net_arch,
                             env_steps=int(model.num_timesteps), command=command)
    save_actor(path, actor, metadata)
    return metadata


def export_model_file(model_path: str, output: str, algo: str, sim: SimConfig,
                      command: str = '') -> ActorMetadata:
    """Load an SB3 model.zip and write its actor checkpoint (``reacher policy export``).

    :param model_path: the SB3 model.zip (SAC, TD3 or DDPG with an MLP policy).
    :param output: the .pt file to write.
    :param algo: recorded in the metadata.
    :param sim: the task it was trained on.
    :param command: recorded in the metadata.
    :return: the metadata written.
    """
    from reacher_policy.training.sb3 import load_model
    return export_actor(load_model(model_path), output, algo, sim, command)
