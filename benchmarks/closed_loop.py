"""Closed-loop benchmark: the demo's figures per perception backend, controller and scene.

Runs ``reacher demo --headless --json`` once per (scene, estimator, controller, seed) with
the same seeds, so every backend faces the same goal sequence and the same scenes (the sim
draws a scene per goal from its own seeded stream), and writes
benchmarks/results/closed_loop.json plus a markdown table on stdout. Goals are pooled
over the seeds.

    python benchmarks/closed_loop.py --duration 60 --estimators classical --seeds 0 1 2
    python benchmarks/closed_loop.py --scenes clean background randomized \
        --estimators classical slac --seeds 0 1 2 --out benchmarks/results/closed_loop_scenes.json
    python benchmarks/closed_loop.py --estimators slac --controllers slac --seeds 0 1 2 \
        --params min_confidence:=0.0 --out benchmarks/results/closed_loop_slac_off.json
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import time

import numpy as np
from scipy.stats import binomtest
import tyro


@dataclass
class Args:
    """Closed-loop success, time to goal, control rate and latency per backend."""

    duration: float = 60.0
    """Seconds measured per run."""
    estimators: tuple[str, ...] = ('slac', 'classical')
    """Perception backends to compare: the default (SLAC) and the baseline."""
    controllers: tuple[str, ...] = ('ik',)
    """Controllers to compare."""
    seeds: tuple[int, ...] = (0,)
    """Simulator seeds; each backend runs on each seed's goals."""
    scenes: tuple[str, ...] = ('clean',)
    """Scenes the camera sees (reacher_sim.scene.SCENES: clean, a family, randomized)."""
    out: Path = Path('benchmarks/results/closed_loop.json')
    """Where to write the JSON results."""
    params: tuple[str, ...] = ()
    """ROS parameter overrides for every node, NAME:=VALUE (the demo's ``--ros-args -p``),
    e.g. min_confidence:=0.0 to turn the policy's confidence stop off."""


def run_demo(estimator: str, controller: str, seed: int, duration: float,
             scene: str = 'clean', params: tuple[str, ...] = ()) -> dict:
    """One headless demo run; returns its JSON summary."""
    reacher = Path(sys.executable).parent / 'reacher'
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    command = [str(reacher), 'demo', '--headless', '--json', '--duration', str(duration),
               '--estimator', estimator, '--controller', controller, '--seed', str(seed),
               '--scene', scene]
    if params:
        command += ['--ros-args', *[arg for param in params for arg in ('-p', param)]]
    result = subprocess.run(command, capture_output=True, text=True, env=env,
                            timeout=duration + 180)
    if result.returncode not in (0, 1):
        raise RuntimeError(f'{" ".join(command)} failed:\n{result.stdout}\n{result.stderr}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    args = tyro.cli(Args)
    runs = []
    combos = [(scene, estimator, controller) for scene in args.scenes
              for estimator in args.estimators for controller in args.controllers]
    for scene, estimator, controller in combos:
        for seed in args.seeds:
            start = time.monotonic()
            summary = run_demo(estimator, controller, seed, args.duration, scene, args.params)
            summary['seed'] = seed
            summary.setdefault('scene', scene)
            runs.append(summary)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.with_suffix('.partial.json').write_text(json.dumps(runs, indent=2) + '\n')
            print(f'{scene} {estimator}/{controller} seed {seed}: '
                  f'{summary["goals_reached"]} goals, success {summary["success_rate"]}, '
                  f'({time.monotonic() - start:.0f} s)', file=sys.stderr, flush=True)
    rows = []
    for scene, estimator, controller in combos:
        mine = [r for r in runs if (r['scene'], r['estimator'], r['controller'])
                == (scene, estimator, controller)]
        reached = sum(r['goals_reached'] for r in mine)
        finished = reached + sum(r['goals_timed_out'] for r in mine)

        def median(key: str, rows: list[dict] = mine) -> float:
            values = [r[key] for r in rows if r[key] is not None]
            return float(np.median(values)) if values else float('nan')

        rows.append({
            'scene': scene, 'estimator': estimator, 'controller': controller,
            'runs': len(mine),
            'confidence_stops': sum(r.get('confidence_stops') or 0 for r in mine),
            'corroborated_commands': sum(r.get('corroborated_commands') or 0 for r in mine),
            'goals_reached': reached, 'goals_finished': finished,
            'success_rate': reached / finished if finished else None,
            # 95% Wilson score interval: a few runs pool a few dozen goals at most.
            'success_rate_ci95': ([float(bound) for bound in binomtest(reached, finished)
                                   .proportion_ci(0.95, method='wilson')]
                                  if finished else None),
            'mean_time_to_goal_s': median('mean_time_to_goal_s'),
            'achieved_control_rate_hz': median('achieved_control_rate_hz'),
            'configured_control_rate_hz': median('configured_control_rate_hz'),
            'latency_ms_p50': median('latency_ms_p50'),
            'latency_ms_p99': median('latency_ms_p99'),
            'perception_inference_ms_p50': median('perception_inference_ms_p50'),
        })
    result = {'benchmark': 'closed_loop', 'args': {k: str(v) if isinstance(v, Path) else v
                                                   for k, v in vars(args).items()},
              'machine': {'cpus': os.cpu_count(), 'python': platform.python_version()},
              'rows': rows, 'runs': runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + '\n')
    args.out.with_suffix('.partial.json').unlink(missing_ok=True)
    print('| scene | estimator | controller | goals reached / finished | success (95% CI) '
          '| mean time to goal | confidence stops | control rate (achieved / set) '
          '| latency p50 / p99 | inference p50 |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for row in rows:
        success = (f'{row["success_rate"]:.1%} ({row["success_rate_ci95"][0]:.0%}-'
                   f'{row["success_rate_ci95"][1]:.0%})' if row['success_rate'] is not None
                   else 'no goal finished')
        print(f'| {row["scene"]} | {row["estimator"]} | {row["controller"]} | '
              f'{row["goals_reached"]} / {row["goals_finished"]} | {success} | '
              f'{row["mean_time_to_goal_s"]:.2f} s | {row["confidence_stops"]} | '
              f'{row["achieved_control_rate_hz"]:.2f} / '
              f'{row["configured_control_rate_hz"]:.0f} Hz | {row["latency_ms_p50"]:.1f} / '
              f'{row["latency_ms_p99"]:.1f} ms | {row["perception_inference_ms_p50"]:.2f} ms |')
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
