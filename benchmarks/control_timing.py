"""Control timing benchmark: free-running and phase-locked control in the same run, per stage.

For each estimator and each mode (``phase_lock`` true / false) it runs ``reacher demo
--headless --json`` while a node in this process records when each /joint_commands
arrives (the command period and its jitter as a subscriber sees them) and the nodes'
last /diagnostics: policy_node's per-stage latency (``latency.<stage>_ms.p50`` / ``.p99``,
docs/ros.md) and its own period jitter. Writes benchmarks/results/control_timing.json and
a markdown table on stdout.

    python benchmarks/control_timing.py --duration 30 --estimators classical slac
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
from typing import Any

import numpy as np
import tyro

STAGES = ('frame_to_perception', 'inference', 'perception_to_policy', 'policy_wait',
          'policy_compute', 'release_hold', 'command_publish', 'total')


@dataclass
class Args:
    """Free-running vs phase-locked control: latency per stage, rate, jitter, goals."""

    duration: float = 30.0
    """Seconds measured per run (the demo's --duration)."""
    estimators: tuple[str, ...] = ('classical', 'slac')
    """Perception backends."""
    modes: tuple[str, ...] = ('phase-locked', 'free')
    """Control timing modes: 'phase-locked' (phase_lock:=true) and 'free'."""
    seed: int = 0
    """Simulator seed (the same goals in every run)."""
    out: Path = Path('benchmarks/results/control_timing.json')
    """Where to write the JSON results."""


def watch_demo(command: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run the demo while recording command arrival times and the newest diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray
    import rclpy
    from std_msgs.msg import Float64MultiArray

    rclpy.init()
    node = rclpy.create_node('control_timing_watch')
    arrivals: list[float] = []
    diagnostics: dict[str, dict[str, str]] = {}

    def on_diagnostics(msg: Any) -> None:
        for status in msg.status:
            diagnostics[status.name.split(':')[0]] = {kv.key: kv.value for kv in status.values}

    node.create_subscription(Float64MultiArray, '/joint_commands',
                             lambda msg: arrivals.append(time.monotonic()), 100)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 50)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        if process.poll() is None:
            process.kill()
        stdout, stderr = process.communicate()
        node.destroy_node()
        rclpy.try_shutdown()
    if process.returncode not in (0, 1):
        raise RuntimeError(f'{" ".join(command)} failed:\n{stdout}\n{stderr}')
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {'summary': summary, 'arrivals': arrivals, 'diagnostics': diagnostics}


def run(estimator: str, mode: str, args: Args) -> dict[str, Any]:
    """One demo run in one mode; the row of the table."""
    reacher = Path(sys.executable).parent / 'reacher'
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    command = [str(reacher), 'demo', '--headless', '--json', '--duration', str(args.duration),
               '--estimator', estimator, '--seed', str(args.seed), '--ros-args', '-p',
               f'phase_lock:={"true" if mode == "phase-locked" else "false"}']
    watched = watch_demo(command, env, args.duration + 180)
    summary, policy = watched['summary'], watched['diagnostics'].get('policy_node', {})
    period = 1.0 / summary['configured_control_rate_hz']
    # The measured window: the last `duration` seconds of commands before the demo ended.
    arrivals = np.asarray(watched['arrivals'])
    arrivals = arrivals[arrivals >= arrivals[-1] - args.duration] if arrivals.size else arrivals
    jitter_ms = np.abs(np.diff(arrivals) - period) * 1e3
    reached, finished = summary['goals_reached'], (summary['goals_reached']
                                                   + summary['goals_timed_out'])
    return {
        'estimator': estimator, 'mode': mode, 'seed': args.seed,
        'goals_reached': reached, 'goals_finished': finished,
        'achieved_control_rate_hz': summary['achieved_control_rate_hz'],
        'configured_control_rate_hz': summary['configured_control_rate_hz'],
        'jitter_ms_p99_subscriber': float(np.percentile(jitter_ms, 99)),
        'jitter_ms_p99_policy': float(policy.get('timing.period_jitter_ms.p99', 'nan')),
        'timing_mode': policy.get('timing.mode'),
        'stages_ms': {stage: {q: float(policy.get(f'latency.{stage}_ms.{q}', 'nan'))
                              for q in ('p50', 'p99')} for stage in STAGES},
        'demo': summary,
    }


def main() -> None:
    args = tyro.cli(Args)
    rows = []
    for estimator in args.estimators:
        for mode in args.modes:
            start = time.monotonic()
            rows.append(run(estimator, mode, args))
            print(f'{estimator} {mode}: {time.monotonic() - start:.0f} s', file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        'command': ' '.join(['python', *sys.argv]), 'host': platform.node(),
        'cpus': os.cpu_count(), 'load_average_1min': os.getloadavg()[0], 'rows': rows},
        indent=1) + '\n')
    print('| estimator | mode | goals | rate (Hz) | jitter p99 (ms) | '
          + ' | '.join(f'{stage} p50 / p99' for stage in STAGES) + ' |')
    print('|---|---|---|---|---|' + '---|' * len(STAGES))
    for row in rows:
        stages = ' | '.join(f'{row["stages_ms"][s]["p50"]:.2f} / {row["stages_ms"][s]["p99"]:.2f}'
                            for s in STAGES)
        print(f'| {row["estimator"]} | {row["mode"]} | {row["goals_reached"]} / '
              f'{row["goals_finished"]} | {row["achieved_control_rate_hz"]:.2f} | '
              f'{row["jitter_ms_p99_subscriber"]:.2f} | {stages} |')


if __name__ == '__main__':
    main()
