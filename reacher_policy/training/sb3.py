"""Stable-Baselines3 glue: the training env, the model factory and the model loaders.

An SB3 model.zip keeps some of its data (the policy class, the spaces, the schedules) as
cloudpickle in its ``data`` member, and a saved replay buffer is a pickle: loading either
the SB3 way (``SAC.load``, ``load_replay_buffer``) runs whatever code the file's author
put in it. So by default nothing here unpickles: :func:`read_model_zip` reads the plain
JSON of ``data`` and the weights (``.pth`` members, ``torch.load(weights_only=True)``),
and :func:`load_weights_into` puts them into a model built from the run's own
configuration. Unpickling is the explicit opt-in ``--allow-pickle`` of ``reacher policy
eval``, ``export`` and ``train`` (``allow_pickle``), for files the user made and trusts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import json
from pathlib import Path
import pickle
from typing import Any
import warnings
import zipfile

import gymnasium as gym
import numpy as np

from reacher_policy.training.config import TrainConfig
from reacher_sim.wrappers import make_env


def make_train_env(config: TrainConfig, rank: int = 0) -> gym.Env[Any, Any]:
    """One training env (worker ``rank``) with the config's reward, curriculum and noise.

    :param config: the run; ``train_episode_steps`` > 0 truncates its episodes sooner.
    :param rank: the worker's index (SB3's ``make_vec_env`` seeds worker k with seed + k).
    :return: the env from :func:`reacher_sim.wrappers.make_env`; with
        ``observation='slac-latent'`` its pixel env seen through
        :class:`reacher_policy.training.slac.latent_env.SlacLatentObservation`.
    :raises ValueError: for symmetry augmentation or observation noise on the latent.
    """
    if config.observation == 'slac-latent' and (
            config.symmetry_augmentation or config.robustness.joint_noise_std_rad > 0.0
            or config.robustness.goal_noise_std_m > 0.0
            or config.robustness.observation_delay_steps > 0):
        raise ValueError('observation slac-latent: symmetry augmentation and observation '
                         'noise or delay act on the state vector, not on the latent')
    sim = config.sim
    if config.train_episode_steps > 0:
        sim = replace(sim, max_episode_steps=config.train_episode_steps)
    if config.observation == 'slac-latent':
        from reacher_policy.training.slac.latent_env import SlacLatentObservation
        return SlacLatentObservation(
            make_env(sim, 'pixels', reward=config.reward, curriculum=config.curriculum,
                     robustness=config.robustness), config.latent_checkpoint)
    return make_env(sim, reward=config.reward, curriculum=config.curriculum,
                    robustness=config.robustness)


def build_model(config: TrainConfig, env: Any) -> Any:
    """The SB3 model for ``config`` on the (vectorised) env."""
    from stable_baselines3 import DDPG, SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    common: dict[str, Any] = dict(
        learning_rate=config.learning_rate, gamma=config.gamma, tau=config.tau,
        batch_size=config.batch_size, buffer_size=config.buffer_size,
        learning_starts=config.learning_starts, train_freq=config.train_freq,
        gradient_steps=config.gradient_steps, n_steps=config.n_steps, seed=config.seed,
        device='cpu', verbose=0,
        policy_kwargs=dict(net_arch=list(config.net_arch)),
        tensorboard_log=str(Path(config.out_dir) / 'tb') if config.tensorboard else None)
    if config.symmetry_augmentation:
        from reacher_policy.training.symmetry import (
            SymmetryNStepReplayBuffer,
            SymmetryReplayBuffer,
        )
        if config.n_steps > 1:
            # A custom buffer class makes SB3 ignore n_steps: pass it to the buffer.
            common.update(replay_buffer_class=SymmetryNStepReplayBuffer,
                          replay_buffer_kwargs=dict(n_steps=config.n_steps, gamma=config.gamma),
                          n_steps=1)
        else:
            common.update(replay_buffer_class=SymmetryReplayBuffer)
    if config.algo == 'sac':
        ent: Any = config.ent_coef
        try:
            ent = float(ent)
        except ValueError:
            pass
        target: Any = config.target_entropy
        if target != 'auto':
            target = float(target)
        return SAC('MlpPolicy', env, ent_coef=ent, target_entropy=target, **common)
    noise = None
    if config.action_noise_std > 0.0:
        noise = NormalActionNoise(np.zeros(2), np.full(2, config.action_noise_std))
    if config.algo == 'td3':
        return TD3('MlpPolicy', env, action_noise=noise, policy_delay=config.policy_delay,
                   **common)
    return DDPG('MlpPolicy', env, action_noise=noise, **common)


PICKLE_OPT_IN = '--allow-pickle'
"""The flag that lets a command unpickle an SB3 file (its ``allow_pickle`` argument)."""


@dataclass(frozen=True)
class ModelZip:
    """What an SB3 model.zip holds that can be read without unpickling.

    :param data: the entries of its ``data`` member that are plain JSON (those SB3 wrote
        as cloudpickle, ``{':serialized:': ...}``, are left out, never decoded).
    :param params: state dicts by name (``'policy'``, ``'actor.optimizer'``, ...).
    :param variables: the ``pytorch_variables`` (SAC's ``log_ent_coef``), or None.
    """

    data: dict[str, Any]
    params: dict[str, Any]
    variables: dict[str, Any] | None

    @property
    def algorithm(self) -> str:
        """'sac' or 'td3' (SB3's DDPG is a TD3), from the policy class's module name."""
        policy_class = self.data.get('policy_class', {})
        module = policy_class.get('__module__', '') if isinstance(policy_class, dict) else ''
        return 'sac' if 'sac.' in module else 'td3'

    @property
    def num_timesteps(self) -> int:
        """Env steps the model was trained for."""
        return int(self.data.get('num_timesteps', 0))


def read_model_zip(path: str | Path) -> ModelZip:
    """Read an SB3 model.zip without unpickling anything.

    :param path: the model.zip.
    :return: its plain data and its weights.
    :raises FileNotFoundError: naming a missing file.
    :raises ValueError: naming the file when it is not an SB3 zip, or when its weights
        could only be read by unpickling (then saying so and naming ``--allow-pickle``).
    """
    from stable_baselines3.common.save_util import load_from_zip_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'SB3 model {str(path)!r} does not exist')
    try:
        with zipfile.ZipFile(path) as archive:
            document = json.loads(archive.read('data'))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f'{str(path)!r} is not a Stable-Baselines3 model.zip '
                         f'({type(error).__name__})') from None
    data = {key: value for key, value in document.items()
            if not (isinstance(value, dict) and ':serialized:' in value)}
    # SB3 reads the .pth members with torch.load(weights_only=True); load_data=False
    # leaves the pickled ``data`` alone.
    try:
        with warnings.catch_warnings():  # torch warns about the pickle it then refuses
            warnings.simplefilter('ignore')
            _, params, variables = load_from_zip_file(path, load_data=False, device='cpu')
    except pickle.UnpicklingError:
        raise ValueError(
            f'{str(path)!r} holds weights that only unpickling could load, which runs code '
            f'from the file; if you made it and trust it, pass {PICKLE_OPT_IN}') from None
    except (ValueError, RuntimeError, OSError, EOFError) as error:
        raise ValueError(f'{str(path)!r} is a damaged SB3 model.zip: '
                         f'{type(error).__name__}: {str(error).splitlines()[0][:200]}') from None
    if 'policy' not in params:
        raise ValueError(f'{str(path)!r} has no policy weights (policy.pth)')
    policy_kwargs = data.get('policy_kwargs', {})
    if 'policy_kwargs' not in data or 'activation_fn' in policy_kwargs:
        raise ValueError(
            f'{str(path)!r} sets its own network classes (policy_kwargs), which only '
            f'unpickling can read; if you made it and trust it, pass {PICKLE_OPT_IN}')
    return ModelZip(data, params, variables)


def load_weights_into(model: Any, path: str | Path) -> Any:
    """Put the weights of an SB3 model.zip into ``model``, unpickling nothing.

    The model is built from the run's own configuration (:func:`build_model`), so the
    zip must hold the same algorithm and network; its step count is taken over, so a
    resumed run counts on.

    :param model: the freshly built SB3 model.
    :param path: the model.zip to resume from.
    :return: ``model``.
    :raises ValueError: naming the file, when it cannot be read safely or holds another
        algorithm or network than ``model``.
    """
    from stable_baselines3.common.save_util import recursive_setattr

    saved = read_model_zip(path)
    try:
        model.set_parameters(saved.params, exact_match=True, device='cpu')
    except (ValueError, RuntimeError, KeyError) as error:
        raise ValueError(
            f"cannot resume from {str(path)!r}: its weights do not fit this run's "
            f'algorithm and network (--algo, --net-arch): '
            f'{str(error).splitlines()[0][:200]}') from None
    for name, value in (saved.variables or {}).items():
        recursive_setattr(model, f'{name}.data', value.data)
    model.num_timesteps = saved.num_timesteps
    return model


def load_model(path: str, env: Any = None) -> Any:
    """Load an SB3 model.zip of any of the three algorithms, the SB3 way: UNPICKLING.

    ``SAC.load`` / ``TD3.load`` unpickle the zip's ``data``, which runs any code a crafted
    file holds. Only the ``--allow-pickle`` paths call this; the default paths use
    :func:`read_model_zip` and :func:`load_weights_into`.
    """
    from stable_baselines3 import SAC, TD3
    with zipfile.ZipFile(path) as archive:
        data = archive.read('data').decode()
    # DDPG is SB3's TD3 with policy_delay=1 and no target noise, both saved in the zip.
    cls = SAC if 'sac.policies' in data else TD3
    return cls.load(path, env=env, device='cpu')
