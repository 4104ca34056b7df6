"""Training, evaluation and the CLI of reacher_policy (issue 3)."""

from dataclasses import replace
import importlib.util
import json

import numpy as np
import pytest

from reacher.cli import main as reacher_main
from reacher.cli import parse
from reacher_policy.checkpoint import load_actor
from reacher_policy.training.config import PRESETS
from reacher_policy.training.evaluate import (
    evaluate_policy,
    random_policy,
    sb3_policy,
    torch_policy,
)
from reacher_policy.training.sb3 import build_model, make_train_env
from reacher_policy.training.train import train
from reacher_sim.config import SimConfig
from reacher_sim.options import RewardConfig


def parse_train_args(argv):
    """``reacher policy train ARGV`` parsed by the reacher CLI (the preset taken out first)."""
    _, config, _ = parse(['policy', 'train', *argv])
    return config


def test_commands_import_without_the_training_stack():
    """The CLI can list and parse the subcommands without loading torch, gym or SB3."""
    import subprocess
    import sys

    code = (
        'import sys\n'
        'from reacher_policy.training.commands import COMMANDS\n'
        'from reacher_policy.training.config import named_config, PRESETS\n'
        "print('\\n'.join(name for name in sys.modules if name.split('.')[0] in "
        "('torch', 'gymnasium', 'stable_baselines3')))\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == []


def test_commands_table_pairs_frozen_args_with_runners():
    from dataclasses import fields, is_dataclass

    from reacher_common.config_tools import field_docs
    from reacher_policy.training.commands import COMMANDS, run_train
    from reacher_policy.training.config import TrainConfig
    assert set(COMMANDS) == {'train', 'eval', 'tune', 'export'}
    assert COMMANDS['train'] == (TrainConfig, run_train)
    for args_type, runner in COMMANDS.values():
        assert is_dataclass(args_type) and args_type.__dataclass_params__.frozen
        docs = field_docs(args_type)
        assert all(docs.get(f.name) for f in fields(args_type)), args_type
        assert callable(runner)


def test_preset_with_d4_suffix_parses():
    config = parse_train_args(['--preset', 'sac+d4', '--seed', '2'])
    assert config == replace(PRESETS['sac'], symmetry_augmentation=True, seed=2)


def test_presets_parse_and_flags_override():
    config = parse_train_args(['--preset', 'seed-ddpg', '--seed', '3'])
    assert config.algo == 'ddpg' and config.net_arch == (300,) and config.seed == 3
    assert config.sim.goal_sampling == 'seed' and config.learning_starts == 30_000
    config = parse_train_args(['--algo', 'td3', '--reward.action-weight', '0.5'])
    assert config.algo == 'td3' and config.reward.action_weight == 0.5
    with pytest.raises(SystemExit):
        parse_train_args(['--preset', 'nope'])


def test_target_entropy_reaches_sac():
    config = replace(PRESETS['sac'], net_arch=(8,))
    assert build_model(config, make_train_env(config)).target_entropy == -2.0
    config = parse_train_args(['--preset', 'sac', '--target-entropy', '-6',
                               '--reward.precision-weight', '1.0'])
    assert config.reward.precision_weight == 1.0
    assert build_model(config, make_train_env(config)).target_entropy == -6.0


def test_evaluation_is_reproducible_and_uses_fixed_seeds():
    first = evaluate_policy(random_policy(0), SimConfig(), episodes=8, seed=5)
    second = evaluate_policy(random_policy(0), SimConfig(), episodes=8, seed=5)
    assert first.success_rate == second.success_rate
    assert first.mean_return == second.mean_return
    assert first.mean_action_change > 0.3  # uniform random actions change a lot


def test_cli_help_lists_every_knob(capsys):
    assert reacher_main(['policy', 'train', '--help']) == 0
    text = capsys.readouterr().out
    for flag in ('--algo', '--n-envs', '--reward.action-change-weight',
                 '--curriculum.mode', '--robustness.joint-noise-std-rad', '--resume'):
        assert flag in text
    assert reacher_main(['policy']) == 2


@pytest.mark.slow
def test_short_training_improves_success_and_round_trips(tmp_path):
    config = replace(PRESETS['sac'], total_steps=3000, learning_starts=300, net_arch=(32, 32),
                     batch_size=64, ent_coef='auto_0.1', eval_freq=1500, eval_episodes=30,
                     final_eval_episodes=30, progress=False, tensorboard=False,
                     reward=RewardConfig(shaping_weight=1.0, success_weight=10.0),
                     sim=SimConfig(success_hold_steps=3), out_dir=str(tmp_path / 'run'))
    untrained = build_model(config, make_train_env(config))
    before = evaluate_policy(sb3_policy(untrained), config.sim, 30, config.eval_seed)
    result = train(config)
    assert result.final is not None
    assert result.final['success_rate'] >= before.success_rate + 0.2
    # The exported actor acts as the SB3 model did, on the same episodes.
    actor, meta = load_actor(tmp_path / 'run' / 'policy.pt')
    assert meta.dt == config.sim.timing.dt and meta.net_arch == (32, 32)
    exported = evaluate_policy(torch_policy(actor), config.sim, 30, config.eval_seed)
    assert exported.success_rate == pytest.approx(result.final['success_rate'])
    report = json.loads((tmp_path / 'run' / 'evaluations.json').read_text())
    assert len(report['evaluations']) == 2
    assert (tmp_path / 'run' / 'curve.png').stat().st_size > 0
    # Resume continues the step count from the saved model.
    resumed = train(replace(config, resume=str(tmp_path / 'run' / 'model.zip'),
                            total_steps=500, final_eval_episodes=0, eval_freq=0,
                            out_dir=str(tmp_path / 'resumed')))
    assert resumed.env_steps == 3500
    assert np.isfinite(resumed.train_time_s)


needs_optuna = pytest.mark.skipif(
    importlib.util.find_spec('optuna') is None,
    reason='optuna is not installed (pip install "reacher[learn]"; it has no rosdep key)')


@needs_optuna
@pytest.mark.slow
def test_tune_writes_the_best_configuration(tmp_path):
    output = tmp_path / 'best.json'
    assert reacher_main(['policy', 'tune', '--trials', '2', '--total-steps', '400',
                         '--eval-freq', '200', '--eval-episodes', '4',
                         '--base.learning-starts', '100', '--output', str(output)]) == 0
    report = json.loads(output.read_text())
    assert len(report['trials']) == 2
    assert report['best_config']['net_arch'][0] == report['best_params']['width']


@needs_optuna
@pytest.mark.slow
def test_tune_starts_from_a_named_preset(tmp_path):
    output = tmp_path / 'best.json'
    assert reacher_main(['policy', 'tune', '--preset', 'sac-d4', '--trials', '1',
                         '--total-steps', '400', '--eval-freq', '200', '--eval-episodes', '2',
                         '--output', str(output)]) == 0
    best = json.loads(output.read_text())['best_config']
    assert best['symmetry_augmentation'] is True
    assert best['learning_starts'] == PRESETS['sac-d4'].learning_starts


def test_tune_refuses_an_unknown_preset(tmp_path):
    with pytest.raises(SystemExit, match="config 'sac-d5'"):
        _, args, runner = parse(['policy', 'tune', '--preset', 'sac-d5',
                                 '--output', str(tmp_path / 'best.json')])
        runner(args)


@pytest.mark.parametrize('vec_env', ['dummy', 'subproc'])
def test_vectorised_training_counts_steps_over_workers(tmp_path, vec_env):
    config = replace(PRESETS['td3'], total_steps=200, learning_starts=50, net_arch=(8,),
                     batch_size=16, n_envs=2, vec_env=vec_env, eval_freq=100,
                     eval_episodes=2, final_eval_episodes=2, progress=False,
                     tensorboard=True, out_dir=str(tmp_path))
    result = train(config)
    assert result.env_steps == 200
    assert [row['env_steps'] for row in result.evaluations] == [100.0, 200.0]
    assert any((tmp_path / 'tb').rglob('events.out.tfevents.*'))
