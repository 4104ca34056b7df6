"""``reacher policy tune``: a small Optuna study over the main training knobs.

Each trial trains one short run and scores it by the mean evaluation success over its
periodic evaluations (the area under the learning curve, so faster learning scores
higher); the best trial's full TrainConfig is written as JSON, ready for
``reacher policy train`` flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
import json
from pathlib import Path
import sys
from typing import Any

import tyro

from reacher_policy.train import named_config, train, TrainConfig


@dataclass(frozen=True)
class TuneArgs:
    """Run a small Optuna study of learning rate, gamma, net size, batch and reward weights."""

    trials: int = 10
    """Number of trials."""
    total_steps: int = 8000
    """Env steps per trial."""
    eval_freq: int = 2000
    """Env steps between a trial's evaluations."""
    eval_episodes: int = 30
    """Episodes per evaluation."""
    seed: int = 0
    """Seed of the sampler and of every trial's run."""
    preset: str = ''
    """A preset or ``PRESET+d4`` (``reacher_policy.train.named_config``) to start from;
    '' uses ``base``."""
    base: TrainConfig = field(default_factory=TrainConfig)
    """The configuration the sampled knobs override, when ``preset`` is ''."""
    output: str = 'runs/tune/best.json'
    """Where to write the best configuration and the trial table."""


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


def tune_main(argv: list[str]) -> int:
    """Run the study and write the best configuration."""
    import optuna

    args = tyro.cli(TuneArgs, args=argv, prog='reacher policy tune',
                    description=TuneArgs.__doc__)
    base = named_config(args.preset) if args.preset else args.base
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)

    def objective(trial: Any) -> float:
        config = replace(suggest(trial, base), total_steps=args.total_steps,
                         eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
                         final_eval_episodes=0, seed=args.seed, progress=False,
                         tensorboard=False,
                         out_dir=str(output.parent / f'trial_{trial.number}'))
        result = train(config)
        curve = [row['success_rate'] for row in result.evaluations]
        return sum(curve) / max(1, len(curve))

    study = optuna.create_study(direction='maximize',
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    study.optimize(objective, n_trials=args.trials)
    best = suggest(optuna.trial.FixedTrial(study.best_params), base)
    report = {'best_value': study.best_value, 'best_params': study.best_params,
              'best_config': asdict(best),
              'trials': [{'number': t.number, 'value': t.value, 'params': t.params}
                         for t in study.trials]}
    output.write_text(json.dumps(report, indent=2, default=list) + '\n')
    print(json.dumps({'best_value': study.best_value, 'best_params': study.best_params},
                     indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(tune_main(sys.argv[1:]))
