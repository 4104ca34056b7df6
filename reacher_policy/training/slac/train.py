"""``reacher policy train --algo slac``: train the SLAC agent as the SB3 runs are trained.

The same run folder and report as :mod:`reacher_policy.training.train`: a progress bar,
TensorBoard scalars under ``tb/``, a fixed-seed evaluation every ``eval_freq`` env steps
(the deterministic actor on pixels, :class:`SlacEvalPolicy`), the agent saved after each
(``agent.pt``, ``weights_only``), ``evaluations.json``, ``curve.png`` and the final
evaluation; ``resume`` continues from an ``agent.pt`` (weights, optimisers and step
count; the replay starts empty).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import sys
import time
from typing import Any

import torch

from reacher_policy.training.callbacks import TrainResult
from reacher_policy.training.config import TrainConfig
from reacher_policy.training.evaluate import evaluate_policy
from reacher_policy.training.slac.acting import SlacEvalPolicy
from reacher_policy.training.slac.agent import SlacAgent
from reacher_policy.training.slac.callback import SlacCallback
from reacher_sim.wrappers import make_env


def make_pixel_env(config: TrainConfig) -> Any:
    """The training env of a SLAC run: ``sim``'s pixel env with the run's reward.

    Curriculum and robustness options apply as for the SB3 runs (the observation noise
    and delay act on the state only, so not on pixels).
    """
    sim = config.sim
    if config.train_episode_steps > 0:
        sim = replace(sim, max_episode_steps=config.train_episode_steps)
    return make_env(sim, 'pixels', reward=config.reward, curriculum=config.curriculum,
                    robustness=config.robustness)


def evaluate_agent(agent: SlacAgent, config: TrainConfig, episodes: int) -> Any:
    """The deterministic agent on ``episodes`` fixed-seed pixel episodes of ``config.sim``."""
    return evaluate_policy(SlacEvalPolicy(agent, agent.config.sequence_length), config.sim,
                           episodes=episodes, seed=config.eval_seed,
                           robustness=config.eval_robustness, observation_mode='pixels')


class EvalProgress(SlacCallback):
    """Periodic evaluation, TensorBoard, checkpoint and progress bar of a SLAC run.

    :param config: the run.
    :param result: filled in place.
    :param agent_path: where the agent is saved after each evaluation.
    :param command: recorded in the checkpoint.
    """

    def __init__(self, config: TrainConfig, result: TrainResult, agent_path: Path,
                 command: str) -> None:
        self.config = config
        self.result = result
        self.agent_path = agent_path
        self.command = command
        self.eval_time = 0.0
        self.start = 0.0
        self.last_eval = 0
        self.bar: Any = None

    def on_training_start(self, agent: SlacAgent) -> None:
        """Start the clock and the progress bar."""
        from tqdm import tqdm
        self.bar = tqdm(total=agent.num_timesteps + self.config.total_steps,
                        initial=agent.num_timesteps, disable=not self.config.progress,
                        unit='step', mininterval=2.0)
        self.last_eval = agent.num_timesteps
        self.start = time.perf_counter()

    def on_step(self, agent: SlacAgent) -> bool:
        """Evaluate, log and save every ``eval_freq`` steps; stop at ``stop_success``."""
        from tqdm import tqdm
        config = self.config
        self.bar.update(1)
        if config.eval_freq <= 0 or agent.num_timesteps - self.last_eval < config.eval_freq:
            return True
        self.last_eval = agent.num_timesteps
        begin = time.perf_counter()
        evaluation = evaluate_agent(agent, config, config.eval_episodes)
        train_time = begin - self.start - self.eval_time
        row = {'env_steps': float(agent.num_timesteps), 'train_time_s': train_time,
               **evaluation.as_dict()}
        self.result.evaluations.append(row)
        if agent.writer is not None:
            for key in ('success_rate', 'mean_time_to_goal_s', 'mean_return',
                        'mean_action_change'):
                agent.writer.add_scalar(f'eval/{key}', row[key], agent.num_timesteps)
            agent.writer.flush()
        if self.result.steps_to_90 is None and evaluation.success_rate >= 0.9:
            self.result.steps_to_90 = agent.num_timesteps
            self.result.wall_time_to_90_s = train_time
        self.bar.set_postfix(success=f'{evaluation.success_rate:.2f}')
        tqdm.write(f'eval at {agent.num_timesteps} steps ({train_time:.0f} s): success '
                   f'{evaluation.success_rate:.3f}, time to goal '
                   f'{evaluation.mean_time_to_goal_s:.2f} s', file=sys.stderr)
        agent.save(self.agent_path, {'command': self.command})
        self.eval_time += time.perf_counter() - begin
        return bool(evaluation.success_rate < config.stop_success)

    def on_training_end(self, agent: SlacAgent) -> None:
        """Close the bar and record the training time (evaluations excluded)."""
        self.bar.close()
        self.result.train_time_s = time.perf_counter() - self.start - self.eval_time


def train_slac(config: TrainConfig, command: str = '') -> TrainResult:
    """Train, evaluate and save one SLAC run into ``config.out_dir``.

    :param config: the run (``algo='slac'``; the agent's hyperparameters in ``slac``).
    :param command: the command line, recorded in the checkpoint's metadata.
    :return: the measurements (also written to out_dir/evaluations.json).
    :raises ValueError: from :meth:`SlacAgent.load` for a resume file that does not fit.
    """
    from reacher_policy.training.train import write_report

    torch.set_num_threads(config.torch_threads)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = make_pixel_env(config)
    log = str(out / 'tb') if config.tensorboard else None
    if config.resume:
        agent = SlacAgent.load(config.resume, env, config.slac, seed=config.seed,
                               tensorboard_log=log,
                               symmetry_augmentation=config.symmetry_augmentation)
    else:
        agent = SlacAgent(config.slac, env, seed=config.seed, tensorboard_log=log,
                          symmetry_augmentation=config.symmetry_augmentation)
    result = TrainResult([], None, None, None, 0.0, 0)
    agent_path = out / 'agent.pt'
    agent.learn(config.total_steps, EvalProgress(config, result, agent_path, command),
                reset_num_timesteps=not config.resume)
    env.close()
    result.env_steps = agent.num_timesteps
    agent.save(agent_path, {'command': command})
    if config.final_eval_episodes > 0:
        result.final = evaluate_agent(agent, config, config.final_eval_episodes).as_dict()
    if agent.writer is not None:
        agent.writer.close()
    write_report(config, result, out)
    return result
