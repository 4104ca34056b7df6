"""Smoothness and noise robustness of trained policies, on the same evaluation goals.

``--study smoothness``: success, mean |a_t - a_{t-1}| and jerk of policies trained with and
without the PID smoothness reward terms, each run directly on the env and through the
policy node's PID smoother (``reacher_policy.pid.PidSmoother``; rows are skipped with a
note where that module is absent).

``--study noise``: success under observation noise levels of policies trained with and
without observation noise.

Policies come from ``--runs-root/<config>/seed<k>/policy.pt`` and are trained first
(one at a time) where missing. A config is a preset name or ``PRESET+d4`` (the preset with
symmetry augmentation), as in ``rl_learning.py``; ``+`` becomes ``_`` in the folder name.

    python benchmarks/rl_robustness.py --study smoothness --seeds 0 1 2
"""

from dataclasses import asdict, dataclass, replace
import json
import math
from pathlib import Path
import statistics
import sys
from typing import Literal

import numpy as np
import torch
import tyro

from reacher_policy.checkpoint import load_actor
from reacher_policy.training.config import named_config
from reacher_policy.training.evaluate import evaluate_policy, torch_policy
from reacher_policy.training.train import train
from reacher_sim.config import SimConfig
from reacher_sim.options import RobustnessConfig
from reacher_sim.wrappers import make_env


@dataclass(frozen=True)
class Args:
    """Benchmark smoothness (PID terms, PID smoother) or observation-noise robustness."""

    study: Literal['smoothness', 'noise'] = 'smoothness'
    """Which study to run."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    policies: tuple[str, ...] = ()
    """Configs to compare: presets or 'PRESET+d4' (default: sac and sac-smooth, or sac and
    sac-noise)."""
    episodes: int = 500
    """Evaluation episodes (the same seeds for every row)."""
    eval_seed: int = 10_000
    """Seed of the first evaluation episode."""
    total_steps: int = 0
    """Override the presets' total env steps when training missing runs (0: keep)."""
    runs_root: str = 'runs/bench_learning'
    """Folder of training runs (shared with rl_learning.py)."""
    noise_levels_rad: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05)
    """'noise': joint-angle noise std, rad; goal noise std is level * reach (m/rad)."""
    output: str = ''
    """JSON results file ('' -> benchmarks/results/rl_<study>.json)."""


def policy_path(args, name, seed):
    path = Path(args.runs_root) / name.replace('+', '_') / f'seed{seed}' / 'policy.pt'
    if not path.is_file():
        config = replace(named_config(name), seed=seed, progress=False, tensorboard=False,
                         final_eval_episodes=0, out_dir=str(path.parent))
        if args.total_steps:
            config = replace(config, total_steps=args.total_steps)
        train(config, command=f'benchmarks/rl_robustness.py config {name}')
    return path


def run_with_pid(checkpoint, sim, episodes, seed, pid_config):
    """Episodes through the node's path: learned controller -> PID smoother -> arm.

    The controller is the policy node's own (``reacher_policy.learned``), so this measures
    what the node runs, not a copy of its setpoint formula.
    """
    from reacher_policy.config import PolicyConfig
    from reacher_policy.learned import LearnedController
    from reacher_policy.pid import PidSmoother
    controller = LearnedController(
        PolicyConfig(control_rate_hz=1.0 / sim.timing.dt, controller='learned',
                     checkpoint=str(checkpoint)), pid_config)
    pid = PidSmoother(pid_config)
    successes, changes, jerks = [], [], []
    for episode in range(episodes):
        env = make_env(sim)
        _, info = env.reset(seed=seed + episode)
        pid.reset()
        commands = []
        success = False
        for _ in range(sim.max_episode_steps):
            q = info['joint_positions']
            setpoint = controller.setpoint(q, info['goal'])
            command = pid.update(setpoint, q, sim.timing.dt) / sim.geometry.max_joint_velocity
            commands.append(np.clip(command, -1.0, 1.0))
            _, _, terminated, truncated, info = env.step(
                commands[-1].astype(np.float32))
            if terminated or truncated:
                success = bool(info['is_success'])
                break
        successes.append(success)
        a = np.array(commands)
        if len(a) > 1:
            changes.extend(np.abs(np.diff(a, axis=0)).mean(axis=1))
        if len(a) > 2:
            jerks.extend(np.abs(np.diff(a, 2, axis=0)).mean(axis=1)
                         * sim.geometry.max_joint_velocity / sim.timing.dt ** 2)
    return {'success_rate': float(np.mean(successes)),
            'mean_action_change': float(np.mean(changes)), 'mean_jerk': float(np.mean(jerks))}


def agg(values, spec='.3f'):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if len(values) == 1:
        return format(values[0], spec)
    return (f'{format(statistics.median(values), spec)} '
            f'[{format(min(values), spec)}, {format(max(values), spec)}]')


def smoothness(args):
    rows = []
    for preset in args.policies or ('sac', 'sac-smooth'):
        for seed in args.seeds:
            path = policy_path(args, preset, seed)
            actor, meta = load_actor(path)
            sim = SimConfig(geometry=meta.geometry, timing=meta.timing)
            direct = evaluate_policy(torch_policy(actor), sim, args.episodes, args.eval_seed)
            rows.append({'policy': preset, 'seed': seed, 'loop': 'env (no PID)',
                         'success_rate': direct.success_rate,
                         'mean_action_change': direct.mean_action_change,
                         'mean_jerk': direct.mean_jerk})
            from reacher_policy.config import PidConfig
            for label, pid_config in (
                    ('PID smoother, default gains (rate limit 10 rad/s^2)', PidConfig()),
                    ('PID smoother, rate limit 2 rad/s^2', PidConfig(rate_limit=2.0))):
                try:
                    piped = run_with_pid(path, sim, args.episodes, args.eval_seed, pid_config)
                except ImportError as error:
                    print(f'PID smoother rows skipped: {error}', file=sys.stderr)
                    break
                rows.append({'policy': preset, 'seed': seed, 'loop': label, **piped})
    lines = ['| policy | loop | success | mean abs action change | jerk (rad/s^3) |',
             '|---|---|---|---|---|']
    for key in dict.fromkeys((r['policy'], r['loop']) for r in rows):
        group = [r for r in rows if (r['policy'], r['loop']) == key]
        lines.append(f'| {key[0]} | {key[1]} | {agg([r["success_rate"] for r in group])} | '
                     f'{agg([r["mean_action_change"] for r in group])} | '
                     f'{agg([r["mean_jerk"] for r in group], ".1f")} |')
    return rows, '\n'.join(lines)


def noise(args):
    rows = []
    reach = SimConfig().geometry.reach_m
    for preset in args.policies or ('sac', 'sac-noise'):
        for seed in args.seeds:
            actor, meta = load_actor(policy_path(args, preset, seed))
            sim = SimConfig(geometry=meta.geometry, timing=meta.timing)
            for level in args.noise_levels_rad:
                robustness = RobustnessConfig(joint_noise_std_rad=level,
                                              goal_noise_std_m=level * reach)
                result = evaluate_policy(torch_policy(actor), sim, args.episodes,
                                         args.eval_seed, robustness)
                rows.append({'policy': preset, 'seed': seed, 'noise_rad': level,
                             'success_rate': result.success_rate,
                             'mean_action_change': result.mean_action_change})
    lines = ['| trained | ' + ' | '.join(f'noise {lv} rad' for lv in args.noise_levels_rad)
             + ' |', '|---|' + '---|' * len(args.noise_levels_rad)]
    for preset in dict.fromkeys(r['policy'] for r in rows):
        cells = [agg([r['success_rate'] for r in rows
                      if r['policy'] == preset and r['noise_rad'] == lv])
                 for lv in args.noise_levels_rad]
        lines.append(f'| {preset} | ' + ' | '.join(cells) + ' |')
    return rows, '\n'.join(lines)


def main(argv):
    args = tyro.cli(Args, args=argv, description=Args.__doc__)
    torch.set_num_threads(1)
    rows, text = smoothness(args) if args.study == 'smoothness' else noise(args)
    output = Path(args.output or f'benchmarks/results/rl_{args.study}.json')
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({'args': asdict(args), 'rows': rows,
                                  'table': text}, indent=2, default=list) + '\n')
    print(text)
    print(f'\nmedian [min, max] over seeds {list(args.seeds)}, {args.episodes} episodes')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
