"""``reacher policy tune``: a small Optuna study over the main training knobs.

Each trial trains one short run and scores it by the mean evaluation success over its
periodic evaluations (the area under the learning curve, so faster learning scores
higher); the best trial's full TrainConfig is written as JSON, ready for
``reacher policy train`` flags.
"""

from __future__ import annotations

from dataclasses import asdict, replace
import json
from pathlib import Path
from typing import Any

from reacher_policy.training.config import TrainConfig
from reacher_policy.training.train import train


def suggest(trial: Any, base: TrainConfig) -> TrainConfig:
    """Sample one configuration around ``base``."""
    width = trial.suggest_categorical('width', [64, 128, 256])
    reward = replace(base.reward,
                     shaping_weight=trial.suggest_float('shaping_weight', 0.0, 2.0),
                     success_weight=trial.suggest_categorical('success_weight', [0.0, 10.0]))
    return replace(
        base,
        learning_rate=trial.suggest_float('learning_rate', 3e-4, 3e-3, log=True),
        gamma=trial.suggest_categorical('gamma', [0.8, 0.9, 0.95]),
        batch_size=trial.suggest_categorical('batch_size', [64, 128, 256]),
        gradient_steps=trial.suggest_categorical('gradient_steps', [1, 2]),
        net_arch=(width, width), reward=reward)


def tune(base: TrainConfig, output: Path, trials: int = 10, total_steps: int = 8000,
         eval_freq: int = 2000, eval_episodes: int = 30, seed: int = 0) -> dict[str, Any]:
    """Run the study and write the best configuration and the trial table to ``output``.

    :param base: the configuration the sampled knobs override.
    :param output: the JSON file to write; each trial's run goes beside it.
    :param trials: number of trials.
    :param total_steps: env steps per trial.
    :param eval_freq: env steps between a trial's evaluations.
    :param eval_episodes: episodes per evaluation.
    :param seed: seed of the sampler and of every trial's run.
    :return: the report written (best value, parameters and config, the trials).
    """
    import optuna

    output.parent.mkdir(parents=True, exist_ok=True)

    def objective(trial: Any) -> float:
        config = replace(suggest(trial, base), total_steps=total_steps, eval_freq=eval_freq,
                         eval_episodes=eval_episodes, final_eval_episodes=0, seed=seed,
                         progress=False, tensorboard=False,
                         out_dir=str(output.parent / f'trial_{trial.number}'))
        result = train(config)
        curve = [row['success_rate'] for row in result.evaluations]
        return sum(curve) / max(1, len(curve))

    study = optuna.create_study(direction='maximize',
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = suggest(optuna.trial.FixedTrial(study.best_params), base)
    report = {'best_value': study.best_value, 'best_params': study.best_params,
              'best_config': asdict(best),
              'trials': [{'number': t.number, 'value': t.value, 'params': t.params}
                         for t in study.trials]}
    output.write_text(json.dumps(report, indent=2, default=list) + '\n')
    return report
