"""Stable-Baselines3 glue: the training env, the model factory and the model loader."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from reacher_policy.training.config import TrainConfig
from reacher_sim.wrappers import make_env


def make_train_env(config: TrainConfig, rank: int = 0) -> gym.Env[Any, Any]:
    """One training env (worker ``rank``) with the config's reward, curriculum and noise.

    :param config: the run; ``train_episode_steps`` > 0 truncates its episodes sooner.
    :param rank: the worker's index (SB3's ``make_vec_env`` seeds worker k with seed + k).
    :return: the env from :func:`reacher_sim.wrappers.make_env`.
    """
    sim = config.sim
    if config.train_episode_steps > 0:
        sim = replace(sim, max_episode_steps=config.train_episode_steps)
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


def load_model(path: str, env: Any = None) -> Any:
    """Load an SB3 model.zip of any of the three algorithms (read from its data)."""
    import zipfile

    from stable_baselines3 import SAC, TD3
    with zipfile.ZipFile(path) as archive:
        data = archive.read('data').decode()
    # DDPG is SB3's TD3 with policy_delay=1 and no target noise, both saved in the zip.
    cls = SAC if 'sac.policies' in data else TD3
    return cls.load(path, env=env, device='cpu')
