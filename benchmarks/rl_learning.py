"""Env steps and wall time to 90% evaluation success, and final success, per configuration.

Each configuration (a preset of ``reacher_policy.training.config.PRESETS``) is trained on
each seed one after another in this process (one training at a time: the machine is small
and shared). Periodic evaluations use the run's own task on fixed seeds; the final
evaluation uses ``--final-episodes`` episodes of the default task (reachable goals,
10-step hold) for every configuration, so all rows are compared on the same goals.
Wall time is training time only (evaluations excluded), on one torch thread.

    python benchmarks/rl_learning.py --configs sac seed-ddpg --seeds 0 1 2

A config name ``PRESET+d4`` is the preset with ``symmetry_augmentation=True``.
"""

from dataclasses import asdict, dataclass, replace
import json
import math
from pathlib import Path
import platform
import statistics
import sys
import time

import tyro

from reacher_policy.checkpoint import load_actor
from reacher_policy.training.config import named_config, SEED_SIM
from reacher_policy.training.evaluate import evaluate_policy, torch_policy
from reacher_policy.training.train import train


@dataclass(frozen=True)
class Args:
    """Benchmark learning speed and final success of training presets."""

    configs: tuple[str, ...] = ('sac', 'sac-curriculum', 'td3', 'ddpg', 'seed-ddpg')
    """Presets to run (see reacher_policy.training.config.PRESETS); 'NAME+d4' adds
    symmetry augmentation to preset NAME."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds."""
    total_steps: int = 0
    """Override every preset's total env steps except seed-ddpg's (0: keep each preset's)."""
    seed_ddpg_steps: int = 0
    """Override seed-ddpg's total env steps (0: keep its 150k)."""
    eval_freq: int = 0
    """Override the env steps between evaluations (0: keep each preset's)."""
    eval_episodes: int = 50
    """Episodes per periodic evaluation."""
    final_episodes: int = 500
    """Episodes of the final evaluation on the default task."""
    out_root: str = 'runs/bench_learning'
    """Folder of the training runs."""
    output: str = 'benchmarks/results/rl_learning.json'
    """JSON results file."""

def fmt(values, spec='.0f'):
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return '-'
    if len(values) == 1:
        return format(values[0], spec)
    return f'{format(statistics.median(values), spec)} [{format(min(values), spec)}, ' \
           f'{format(max(values), spec)}]'

def table(rows, seeds):
    lines = ['| config | algo | steps to 90% | train s to 90% | reached 90% | '
             'final success (500, reachable) | final, own task | s per 1k steps |',
             '|---|---|---|---|---|---|---|---|']
    for name in dict.fromkeys(r['config'] for r in rows):
        runs = [r for r in rows if r['config'] == name]
        reached = sum(r['steps_to_90'] is not None for r in runs)
        lines.append(
            f"| {name} | {runs[0]['algo']} | {fmt([r['steps_to_90'] for r in runs])} | "
            f"{fmt([r['wall_time_to_90_s'] for r in runs], '.1f')} | {reached}/{len(runs)} | "
            f"{fmt([r['final_success'] for r in runs], '.3f')} | "
            f"{fmt([r['final_success_own_task'] for r in runs], '.3f')} | "
            f"{fmt([1000 * r['train_time_s'] / r['env_steps'] for r in runs], '.1f')} |")
    lines.append(f'\nmedian [min, max] over seeds {list(seeds)}')
    return '\n'.join(lines)

def main(argv):
    args = tyro.cli(Args, args=argv, description=Args.__doc__)
    configs = {name: named_config(name) for name in args.configs}
    rows = []
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    for name in args.configs:
        for seed in args.seeds:
            config = replace(configs[name], seed=seed, eval_episodes=args.eval_episodes,
                             final_eval_episodes=args.final_episodes, progress=False,
                             tensorboard=False,
                             out_dir=f"{args.out_root}/{name.replace('+', '_')}/seed{seed}")
            if args.total_steps and name != 'seed-ddpg':
                config = replace(config, total_steps=args.total_steps)
            if args.seed_ddpg_steps and name == 'seed-ddpg':
                config = replace(config, total_steps=args.seed_ddpg_steps)
            if args.eval_freq and name != 'seed-ddpg':
                config = replace(config, eval_freq=args.eval_freq)
            start = time.perf_counter()
            result = train(config, command=f'benchmarks/rl_learning.py preset {name}')
            actor, _ = load_actor(Path(config.out_dir) / 'policy.pt')
            final = evaluate_policy(torch_policy(actor), SEED_SIM, args.final_episodes,
                                    config.eval_seed)
            rows.append({
                'config': name, 'algo': config.algo, 'seed': seed,
                'env_steps': result.env_steps, 'steps_to_90': result.steps_to_90,
                'wall_time_to_90_s': result.wall_time_to_90_s,
                'train_time_s': result.train_time_s,
                'final_success': final.success_rate,
                'final_time_to_goal_s': final.mean_time_to_goal_s,
                'final_success_own_task': result.final['success_rate'] if result.final
                else None,
                'curve': [(int(e['env_steps']), e['success_rate'])
                          for e in result.evaluations],
                'run_wall_s': time.perf_counter() - start})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != 'curve'}),
                  file=sys.stderr, flush=True)
            output.write_text(json.dumps({
                'args': asdict(args), 'machine': platform.processor() or platform.machine(),
                'presets': {n: asdict(configs[n]) for n in args.configs},
                'rows': rows}, indent=2, default=list) + '\n')
    print(table(rows, args.seeds))
    return 0

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
