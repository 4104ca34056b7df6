"""``reacher policy train``: train a state-based reaching policy with Stable-Baselines3.

It mirrors the seed's ``main.py TRAIN``: it trains DDPG, TD3 or SAC on the reacher env
(:func:`reacher_policy.training.sb3.make_train_env`) with a progress bar, TensorBoard
logs, periodic evaluation on fixed seeds, SB3 checkpoints (save and resume), a
learning-curve PNG, and exports the actor as the small checkpoint the learned controller
loads. The presets are in :mod:`reacher_policy.training.config`. ``--algo slac`` trains
the SLAC agent from pixels instead (:mod:`reacher_policy.training.slac.train`), with the
same folder layout (``agent.pt`` in place of model.zip and policy.pt).
"""

from __future__ import annotations

from dataclasses import asdict
import json
from pathlib import Path
from typing import Any

import torch

from reacher_policy.training.callbacks import latent_checkpoint, make_callback, TrainResult
from reacher_policy.training.config import TrainConfig
from reacher_policy.training.evaluate import evaluate_policy, sb3_policy
from reacher_policy.training.export import export_actor
from reacher_policy.training.plots import plot_learning_curve
from reacher_policy.training.sb3 import (
    build_model,
    load_model,
    load_weights_into,
    make_train_env,
    PICKLE_OPT_IN,
)


def train(config: TrainConfig, command: str = '') -> TrainResult:
    """Train, evaluate and save one run into ``config.out_dir``.

    :param config: the run.
    :param command: the command line, recorded in the checkpoint's metadata.
    :return: the measurements (also written to out_dir/evaluations.json).
    """
    if config.algo == 'slac':
        from reacher_policy.training.slac.train import train_slac
        return train_slac(config, command)
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    torch.set_num_threads(config.torch_threads)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = make_vec_env(make_train_env, n_envs=config.n_envs, seed=config.seed,
                       env_kwargs=dict(config=config),
                       vec_env_cls=SubprocVecEnv if config.vec_env == 'subproc'
                       else DummyVecEnv)
    if config.resume and config.allow_pickle:
        model = load_model(config.resume, env)
    elif config.resume:
        model = load_weights_into(build_model(config, env), config.resume)
    else:
        model = build_model(config, env)
    buffer = Path(config.resume or 'model.zip').with_name('replay_buffer.pkl')
    if config.resume and buffer.is_file():
        if not config.allow_pickle:
            env.close()
            raise ValueError(
                f'{buffer} is a pickle, and unpickling runs code from the file: pass '
                f'{PICKLE_OPT_IN} if you made it and trust it, or move it away to resume '
                'with an empty replay buffer')
        model.load_replay_buffer(buffer)
    result = TrainResult([], None, None, None, 0.0, 0)
    model_path = out / 'model.zip'
    model.learn(config.total_steps, callback=make_callback(config, result, model_path),
                reset_num_timesteps=not config.resume, tb_log_name='run')
    env.close()
    result.env_steps = int(model.num_timesteps)
    model.save(model_path)
    if config.save_replay_buffer:
        model.save_replay_buffer(out / 'replay_buffer.pkl')
    latent = latent_checkpoint(config)
    export_actor(model, out / 'policy.pt', config.algo, config.sim, command,
                 latent_checkpoint=latent)
    if config.final_eval_episodes > 0:
        final = evaluate_policy(sb3_policy(model), config.sim, config.final_eval_episodes,
                                config.eval_seed, config.eval_robustness,
                                latent_checkpoint=latent)
        result.final = final.as_dict()
    write_report(config, result, out)
    return result


def write_report(config: TrainConfig, result: TrainResult, out: Path) -> None:
    """Write evaluations.json and curve.png for a run."""
    (out / 'evaluations.json').write_text(json.dumps(
        {'config': _jsonable(asdict(config)), **asdict(result)}, indent=2) + '\n')
    if result.evaluations:
        plot_learning_curve(result.evaluations, out / 'curve.png', config.eval_episodes,
                            f'{config.algo} seed {config.seed}')


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
