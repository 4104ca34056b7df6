"""The training callback and the :class:`TrainResult` it fills.

The callback evaluates on fixed seeds, logs TensorBoard scalars, saves checkpoints and
shows a progress bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import sys
import time
from typing import Any

from reacher_policy.training.config import TrainConfig
from reacher_policy.training.evaluate import evaluate_policy, sb3_policy


@dataclass
class TrainResult:
    """What a training run measured.

    :param evaluations: one dict per periodic evaluation (``env_steps``, ``wall_time_s``
        and the :class:`PolicyEvalResult` fields).
    :param steps_to_90: env steps of the first evaluation at >= 90% success, or None.
    :param wall_time_to_90_s: training wall time until then (evaluations excluded), or None.
    :param final: the final evaluation, or None.
    :param train_time_s: training wall time, evaluations excluded.
    :param env_steps: env steps trained.
    """

    evaluations: list[dict[str, float]]
    steps_to_90: int | None
    wall_time_to_90_s: float | None
    final: dict[str, float] | None
    train_time_s: float
    env_steps: int


def latent_checkpoint(config: TrainConfig) -> str | None:
    """The ``latent_checkpoint`` argument of :func:`evaluate_policy` for a run."""
    return config.latent_checkpoint if config.observation == 'slac-latent' else None


def make_callback(config: TrainConfig, result: TrainResult, model_path: Path) -> Any:
    """The SB3 callback of a run: it evaluates, logs, saves and shows progress.

    Every ``config.eval_freq`` env steps it evaluates the deterministic policy on the
    fixed episodes of ``config.eval_seed`` (training time excludes the evaluations),
    appends a row to ``result.evaluations``, records TensorBoard scalars, saves the model
    to ``model_path`` and stops training once ``config.stop_success`` is reached.

    :param config: the run.
    :param result: filled in place (evaluations, steps and time to 90%, train time).
    :param model_path: where the periodic SB3 checkpoint goes.
    :return: a ``stable_baselines3`` ``BaseCallback``.
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm import tqdm

    class EvalProgressCallback(BaseCallback):
        """Periodic fixed-seed evaluation, TensorBoard scalars, checkpoints, progress."""

        def _on_training_start(self) -> None:
            self.bar = tqdm(total=config.total_steps, initial=self.num_timesteps,
                            disable=not config.progress, unit='step', mininterval=2.0)
            self.last_eval = self.num_timesteps
            self.eval_time = 0.0
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            if config.eval_freq <= 0 or self.num_timesteps - self.last_eval < config.eval_freq:
                return True
            self.last_eval = self.num_timesteps
            begin = time.perf_counter()
            evaluation = evaluate_policy(sb3_policy(self.model), config.sim,
                                         config.eval_episodes, config.eval_seed,
                                         config.eval_robustness,
                                         latent_checkpoint=latent_checkpoint(config))
            train_time = begin - self.start - self.eval_time
            row = {'env_steps': float(self.num_timesteps), 'train_time_s': train_time,
                   **evaluation.as_dict()}
            result.evaluations.append(row)
            for key in ('success_rate', 'mean_time_to_goal_s', 'mean_return',
                        'mean_action_change'):
                self.logger.record(f'eval/{key}', row[key])
            self.logger.dump(self.num_timesteps)
            if result.steps_to_90 is None and evaluation.success_rate >= 0.9:
                result.steps_to_90 = self.num_timesteps
                result.wall_time_to_90_s = train_time
            self.bar.set_postfix(success=f'{evaluation.success_rate:.2f}')
            tqdm.write(f'eval at {self.num_timesteps} steps ({train_time:.0f} s): success '
                       f'{evaluation.success_rate:.3f}, time to goal '
                       f'{evaluation.mean_time_to_goal_s:.2f} s', file=sys.stderr)
            self.model.save(model_path)
            self.eval_time += time.perf_counter() - begin
            return bool(evaluation.success_rate < config.stop_success)

        def _on_training_end(self) -> None:
            self.bar.close()
            result.train_time_s = time.perf_counter() - self.start - self.eval_time

    return EvalProgressCallback()
