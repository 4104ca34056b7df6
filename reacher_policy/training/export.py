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


def actor_from_state_dict(policy: dict[str, torch.Tensor]) -> ActorMlp:
    """Rebuild the deterministic actor of an SB3 policy from its weights alone.

    No SB3 object and no unpickling: the layers are read from the state dict's names and
    shapes (SAC: ``actor.latent_pi.<i>`` then ``actor.mu``; TD3 and DDPG:
    ``actor.mu.<i>``), the activations are SB3's default ReLU (and the final tanh).

    :param policy: the ``policy`` state dict of an SB3 SAC, TD3 or DDPG MLP policy.
    :return: the ActorMlp, on CPU, in eval mode.
    :raises ValueError: when the state dict holds no such actor.
    """
    def indexed(prefix: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        found = sorted(int(key[len(prefix):].split('.')[0]) for key in policy
                       if key.startswith(prefix) and key.endswith('.weight'))
        return [(policy[f'{prefix}{i}.weight'], policy[f'{prefix}{i}.bias']) for i in found]

    if 'actor.mu.weight' in policy:  # SAC: tanh(mu(latent_pi(obs)))
        layers = indexed('actor.latent_pi.') + [(policy['actor.mu.weight'],
                                                 policy['actor.mu.bias'])]
    else:  # TD3 / DDPG: mu = Sequential(Linear, ReLU, ..., Linear, Tanh)
        layers = indexed('actor.mu.')
    if not layers or any(weight.dim() != 2 for weight, _ in layers):
        raise ValueError('the policy weights hold no SB3 SAC, TD3 or DDPG MLP actor')
    net_arch = tuple(int(weight.shape[0]) for weight, _ in layers[:-1])
    actor = ActorMlp(int(layers[0][0].shape[1]), net_arch, int(layers[-1][0].shape[0]))
    with torch.no_grad():
        for target, (weight, bias) in zip(actor.layers, layers, strict=True):
            assert isinstance(target, nn.Linear)
            if target.weight.shape != weight.shape:
                raise ValueError(f'actor layer shapes do not chain: {tuple(weight.shape)}')
            target.weight.copy_(weight)
            target.bias.copy_(bias)
    return actor.eval()


def export_actor(model: Any, path: str | Path, algo: str, sim: SimConfig,
                 command: str = '', latent_checkpoint: str | None = None) -> ActorMetadata:
    """Write the actor checkpoint of an SB3 model trained on ``sim``.

    :param model: a ``stable_baselines3`` SAC, TD3 or DDPG instance with an MLP policy.
    :param path: the .pt file to write (parents created).
    :param algo: recorded in the metadata.
    :param sim: the task it was trained on: its geometry and ``dt`` go in the metadata.
    :param command: the command that made it, recorded in the metadata.
    :param latent_checkpoint: for a model trained on the SLAC latent (``observation:
        slac-latent``), the perception checkpoint it read ('' = the shipped one): the
        metadata records ``observation='slac-latent'``, the latent model's fingerprint
        and the file's name; None for a state policy.
    :return: the metadata written.
    :raises ValueError: for an actor that :func:`actor_from_sb3` cannot copy.
    """
    actor = actor_from_sb3(model)
    latent: dict[str, str] = {}
    if latent_checkpoint is not None:
        from reacher_common.weights import latent_model_fingerprint
        from reacher_perception.slac.checkpoint import default_slac_checkpoint
        file = Path(latent_checkpoint) if latent_checkpoint else default_slac_checkpoint()
        latent = {'observation': 'slac-latent', 'latent_checkpoint': file.name,
                  'latent_fingerprint': latent_model_fingerprint(file)}
    metadata = ActorMetadata(algo=algo, geometry=sim.geometry, timing=sim.timing,
                             observation_dim=int(model.observation_space.shape[0]),
                             net_arch=actor.net_arch, env_steps=int(model.num_timesteps),
                             command=command, **latent)
    save_actor(path, actor, metadata)
    return metadata


def export_model_file(model_path: str, output: str, algo: str, sim: SimConfig,
                      command: str = '', allow_pickle: bool = False) -> ActorMetadata:
    """Read an SB3 model.zip and write its actor checkpoint (``reacher policy export``).

    :param model_path: the SB3 model.zip (SAC, TD3 or DDPG with an MLP policy).
    :param output: the .pt file to write.
    :param algo: recorded in the metadata.
    :param sim: the task it was trained on.
    :param command: recorded in the metadata.
    :param allow_pickle: load the zip the SB3 way, unpickling its data (runs code from
        the file); by default only its weights are read.
    :return: the metadata written.
    :raises ValueError: for a zip that cannot be read safely (naming ``--allow-pickle``).
    """
    if allow_pickle:
        from reacher_policy.training.sb3 import load_model
        return export_actor(load_model(model_path), output, algo, sim, command)
    from reacher_policy.training.sb3 import read_model_zip

    saved = read_model_zip(model_path)
    actor = actor_from_state_dict(saved.params['policy'])
    metadata = ActorMetadata(algo=algo, geometry=sim.geometry, timing=sim.timing,
                             observation_dim=STATE_DIM, net_arch=actor.net_arch,
                             env_steps=saved.num_timesteps, command=command)
    save_actor(output, actor, metadata)
    return metadata
