"""Latency benchmark: the loop per control mode, camera rate and control rate, headless and
with the window open under Xvfb (issue 14).

Each run is one ``reacher demo --json`` with the classical estimator and the IK controller,
with ``--camera-rate``, ``--physics-rate`` and ``--control-rate`` set, and the control mode
passed through to the policy node as ``--ros-args -p <mode_parameter>:=<value>``
(``phase_lock:=false`` / ``true``). A run
with the window is the same demo without ``--headless`` under ``xvfb-run -a``. Every run
keeps what the demo measured: success, goals, achieved and configured control rate,
control-period jitter p99, camera-to-command latency p50/p99, every per-stage latency the
nodes put on /diagnostics (``latency.<stage>_ms.p50``/``p99``), and the commands'
smoothness (RMS acceleration and jerk). The load average before and after each run is
kept too (the machine may be shared).

A run counts for its mode only when the policy's diagnostics name that mode
(``timing.mode``, the demo's ``control_mode``): a policy from before phase locking names
none and runs free, so it counts for 'free' only; for another mode it has no such mode
yet (an undeclared ``-p`` is ignored by rclpy), that mode's other runs are skipped, and
the JSON says so under ``not_run``.

    python benchmarks/latency.py                       # default: a few minutes
    python benchmarks/latency.py --full --duration 60  # every combination
    python benchmarks/latency.py --done-when           # issue 14's bars: ~20 minutes
    python benchmarks/latency.py --done-when --no-composed   # three node processes
    python benchmarks/latency.py --params thread_priority:=0 cpu_dma_latency_us:=-1
                                                       # the OS's default scheduling

``--done-when`` runs what issue 14's "Done when" asks, ``reacher demo --headless
--duration 60 --json`` with every rate at its default (20 Hz physics, camera and
control): for each estimator (classical and slac), ``--repeats`` phase-locked headless
runs, each checked against the bars (:data:`BARS`: latency p50 <= 3 ms and p99 <= 5 ms,
control-period jitter p99 <= 1 ms, achieved rate within 1%, >= 95% of goals), then one
free-running headless run and one run of each mode with the window under Xvfb (the
per-stage comparison). The JSON's ``bars`` says, per checked run, which bar failed, and
``bars_met`` whether every checked run met every bar; the load average before and after
each run is in ``runs``. Run it on an otherwise idle machine.

The default runs 20 Hz camera and control headless and with the window, and a 30 Hz camera
at 1x control, for each mode; ``--full`` runs camera 20 and 30 Hz x control 1x, 2x and 3x
x every mode x headless and window.
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools
import json
import math
import os
from pathlib import Path
import platform
import shutil
import subprocess
import sys
import time
from typing import Any

import tyro


@dataclass
class Args:
    """The loop's latency, rate, jitter and smoothness per mode, camera and control rate."""

    duration: float = 20.0
    """Seconds measured per run (after the loop is closed)."""
    modes: tuple[str, ...] = ('free=false', 'phase-locked=true')
    """Control modes, each NAME=VALUE: the policy's name for it on /diagnostics
    (``timing.mode``) and the value of ``mode_parameter`` that selects it."""
    mode_parameter: str = 'phase_lock'
    """The policy_node parameter that selects the mode."""
    full: bool = False
    """Every combination: camera 20 and 30 Hz x control 1x, 2x, 3x x modes x window."""
    physics_multiple: int = 3
    """Physics steps per camera frame (dt = 1 / (camera rate x this)), so that 3x control
    still meets a fresh physics step; the success hold stays 0.5 s. Not with
    ``--done-when``, whose runs are the plain ``reacher demo`` (physics, camera and control
    at their 20 Hz defaults), as issue 14 states them."""
    seed: int = 0
    """The simulator's seed (the same goals in every run)."""
    estimators: tuple[str, ...] = ('classical',)
    """Perception estimators; every case runs with each."""
    done_when: bool = False
    """Issue 14's check (module docstring): sets duration 60 s and estimators classical
    and slac."""
    repeats: int = 3
    """With ``--done-when``: phase-locked headless runs per estimator checked on the bars."""
    composed: bool = True
    """Run every demo as the demo runs by default, perception and policy composed in one
    process (reacher/composed.py); --no-composed: three node processes."""
    params: tuple[str, ...] = ()
    """Extra ``NAME:=VALUE`` parameters for every node of every run, e.g.
    ``thread_priority:=0 cpu_dma_latency_us:=-1`` (the OS's default scheduling)."""
    out: Path = Path('benchmarks/results/latency.json')
    """Where to write the JSON results."""


@dataclass(frozen=True)
class Case:
    """One demo run's configuration."""

    camera_hz: float
    control_multiple: int
    mode: str
    window: bool
    estimator: str = 'classical'
    checked: bool = False
    """Whether this run is checked against :data:`BARS`."""

    @property
    def control_hz(self) -> float:
        return self.camera_hz * self.control_multiple

    def label(self) -> str:
        return (f'{self.estimator}, camera {self.camera_hz:g} Hz, control '
                f'{self.control_multiple}x, {self.mode}, '
                f'{"window" if self.window else "headless"}')


def cases(args: Args) -> list[Case]:
    """The runs of this invocation, in order (see the module docstring)."""
    modes = [mode.split('=', 1)[0] for mode in args.modes]
    if args.done_when:
        free, locked = modes[0], modes[-1]
        return [case for estimator in args.estimators for case in (
            *[Case(20.0, 1, locked, False, estimator, True) for _ in range(args.repeats)],
            Case(20.0, 1, free, False, estimator), Case(20.0, 1, free, True, estimator),
            Case(20.0, 1, locked, True, estimator))]
    if args.full:
        return [Case(camera, multiple, mode, window, estimator)
                for estimator, mode, camera, multiple, window in itertools.product(
                    args.estimators, modes, (20.0, 30.0), (1, 2, 3), (False, True))]
    return [case for estimator in args.estimators for mode in modes for case in (
        Case(20.0, 1, mode, False, estimator), Case(20.0, 1, mode, True, estimator),
        Case(30.0, 1, mode, False, estimator))]


BARS: dict[str, tuple[str, float]] = {
    'latency_ms_p50': ('<=', 3.0), 'latency_ms_p99': ('<=', 5.0),
    'control_period_jitter_ms_p99': ('<=', 1.0), 'rate_error_pct': ('abs<=', 1.0),
    'success_rate': ('>=', 0.95)}
"""Issue 14's bars for a phase-locked headless run on an idle machine: the row's field,
how it compares, and the bound."""


def bar_failures(r: dict[str, Any]) -> list[str]:
    """The bars a row misses, each as 'field=value (bound)'; [] when it meets them all."""
    failures = []
    for name, (how, bound) in BARS.items():
        value = r.get(name)
        ok = isinstance(value, (int, float)) and math.isfinite(value) and (
            value <= bound if how == '<=' else value >= bound if how == '>=' else
            abs(value) <= bound)
        if not ok:
            failures.append(f'{name}={value} ({how.replace("abs", "|x| ")} {bound:g})')
    return failures


def run_case(case: Case, args: Args, value: str) -> dict[str, Any]:
    """One demo run; returns its JSON summary with the case and the load around it."""
    reacher = Path(sys.executable).parent / 'reacher'
    command = [str(reacher), 'demo', '--json', '--duration', str(args.duration),
               '--estimator', case.estimator, '--controller', 'ik', '--seed', str(args.seed)]
    if not args.done_when:  # the done-when runs are the plain demo: every rate its default
        command += ['--camera-rate', f'{case.camera_hz:g}',
                    '--physics-rate', f'{case.camera_hz * args.physics_multiple:g}',
                    '--control-rate', f'{case.control_hz:g}']
    command.append('--composed' if args.composed else '--no-composed')
    if case.window:
        xvfb = shutil.which('xvfb-run')
        if xvfb is None:
            raise RuntimeError('the window runs need xvfb-run (apt-get install xvfb)')
        command = [xvfb, '-a', *command]
    else:
        command.append('--headless')
    command += ['--ros-args', '-p', f'{args.mode_parameter}:={value}',
                *[arg for param in args.params for arg in ('-p', param)]]
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    load_before = os.getloadavg()
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env,
                            timeout=args.duration + 240)
    if result.returncode not in (0, 1):
        raise RuntimeError(f'{" ".join(command)} failed:\n{result.stdout}\n{result.stderr}')
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    summary.update(case={'camera_hz': case.camera_hz, 'control_hz': case.control_hz,
                         'control_multiple': case.control_multiple, 'mode': case.mode,
                         'window': case.window, 'estimator': case.estimator,
                         'checked': case.checked},
                   command=' '.join(command), wall_s=round(time.monotonic() - start, 1),
                   load_average_before=load_before, load_average_after=os.getloadavg())
    return summary


FREE = 'free'
"""What a policy without phase locking does."""


def mode_confirmed(summary: dict[str, Any], mode: str) -> bool:
    """Whether the run ran in ``mode`` (see the module docstring)."""
    reported = summary.get('control_mode') or ''
    return reported == mode or (reported == '' and mode == FREE)


def row(summary: dict[str, Any]) -> dict[str, Any]:
    """The table's figures of one run."""
    case = summary['case']
    configured = summary.get('configured_control_rate_hz') or math.nan
    achieved = summary.get('achieved_control_rate_hz') or math.nan
    stages = summary.get('latency_stages_ms') or {}
    return {
        'estimator': case.get('estimator', 'classical'), 'checked': case.get('checked', False),
        'camera_hz': case['camera_hz'], 'control_hz': case['control_hz'],
        'mode': case['mode'], 'window': case['window'],
        'scheduling': ', '.join(sorted(set((summary.get('scheduling') or {}).values()))),
        'success_rate': summary.get('success_rate'),
        'goals_reached': summary.get('goals_reached'),
        'goals_timed_out': summary.get('goals_timed_out'),
        'achieved_control_rate_hz': achieved, 'configured_control_rate_hz': configured,
        'rate_error_pct': 100.0 * (achieved - configured) / configured,
        'control_period_jitter_ms_p99': summary.get('control_period_jitter_ms_p99'),
        'policy_period_jitter_ms_p99': summary.get('policy_period_jitter_ms_p99'),
        'latency_ms_p50': summary.get('latency_ms_p50'),
        'latency_ms_p99': summary.get('latency_ms_p99'),
        'stages_ms': {stage: {k: v for k, v in figures.items() if k != 'node'}
                      for stage, figures in stages.items()},
        'command_accel_rms': summary.get('command_accel_rms'),
        'command_jerk_rms': summary.get('command_jerk_rms'),
        'load_average_1min': summary['load_average_before'][0],
    }


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '-'
    return format(value, spec)


def _case_cells(r: dict[str, Any]) -> list[str]:
    return [r.get('estimator', 'classical'), f'{r["camera_hz"]:g}', f'{r["control_hz"]:g}',
            r['mode'], 'Xvfb' if r['window'] else 'headless']


def _markdown(head: list[str], body: list[list[str]]) -> str:
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    return '\n'.join(lines + ['| ' + ' | '.join(cells) + ' |' for cells in body])


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown tables of the rows: the loop's figures, then the stages (if any)."""
    case = ['estimator', 'camera Hz', 'control Hz', 'mode', 'window']
    main = _markdown(
        [*case, 'success (goals)', 'control rate achieved (error)',
         'period jitter p99 ms: received / policy', 'latency p50 / p99 ms',
         'accel RMS rad/s^2', 'jerk RMS rad/s^3', 'load 1 min'],
        [[*_case_cells(r), f'{_fmt(r["success_rate"], ".2f")} ({r["goals_reached"]})',
          f'{_fmt(r["achieved_control_rate_hz"], ".2f")} ({_fmt(r["rate_error_pct"], "+.2f")}%)',
          f'{_fmt(r["control_period_jitter_ms_p99"], ".2f")} / '
          f'{_fmt(r["policy_period_jitter_ms_p99"], ".2f")}',
          f'{_fmt(r["latency_ms_p50"], ".1f")} / {_fmt(r["latency_ms_p99"], ".1f")}',
          _fmt(r['command_accel_rms'], '.2f'), _fmt(r['command_jerk_rms'], '.1f'),
          _fmt(r['load_average_1min'], '.1f')] for r in rows])
    stages = list(dict.fromkeys(stage for r in rows for stage in r['stages_ms']))
    if not stages:
        return main + "\n\n(no per-stage latency on the nodes' diagnostics)"
    per_stage = _markdown(
        [*case, *(f'{stage} p50 / p99 ms' for stage in stages)],
        [[*_case_cells(r), *(f'{_fmt(r["stages_ms"].get(s, {}).get("p50"), ".2f")} / '
                             f'{_fmt(r["stages_ms"].get(s, {}).get("p99"), ".2f")}'
                             for s in stages)] for r in rows])
    return main + '\n\n' + per_stage


def main() -> None:
    args = tyro.cli(Args)
    bad = [param for param in args.params if ':=' not in param]
    if bad:
        raise SystemExit(f'--params takes NAME:=VALUE, got {bad[0]!r}')
    if args.done_when:
        args.duration = 60.0
        if args.estimators == ('classical',):
            args.estimators = ('classical', 'slac')
    values = dict(mode.split('=', 1) for mode in args.modes)
    runs: list[dict[str, Any]] = []
    not_run: dict[str, str] = {}
    for case in cases(args):
        if case.mode in not_run:
            continue
        summary = run_case(case, args, values[case.mode])
        if not mode_confirmed(summary, case.mode):
            not_run[case.mode] = (
                f'with {args.mode_parameter}:={values[case.mode]} policy_node reported the '
                f'mode {summary.get("control_mode")!r}, not {case.mode!r}: no such mode yet')
            print(f'{case.label()}: {not_run[case.mode]}; skipping the mode', file=sys.stderr)
            continue
        runs.append(summary)
        print(f'{case.label()}: success {summary["success_rate"]}, control '
              f'{summary["achieved_control_rate_hz"]:.2f} Hz, latency p50 '
              f'{summary["latency_ms_p50"]} ms ({summary["wall_s"]:.0f} s)', file=sys.stderr)
        # Partial results survive an interrupted sweep.
        write(args, runs, not_run)
    write(args, runs, not_run)
    print(table([row(summary) for summary in runs]))
    for mode, reason in not_run.items():
        print(f'\nnot run: {mode}: {reason}')
    checked = [row(summary) for summary in runs if summary['case']['checked']]
    if checked:
        print('\nissue 14 bars (phase-locked, headless, 60 s):')
        for r in checked:
            failures = bar_failures(r)
            print(f'  {r["estimator"]}: {"met" if not failures else "; ".join(failures)} '
                  f'(load 1 min {_fmt(r["load_average_1min"], ".2f")})')


def write(args: Args, runs: list[dict[str, Any]], not_run: dict[str, str]) -> None:
    """Write the JSON results (every run's summary, the table's rows, what did not run)."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        'args': {key: str(value) if isinstance(value, Path) else value
                 for key, value in vars(args).items()},
        'commit': _commit(), 'platform': platform.platform(), 'cpus': os.cpu_count(),
        'rows': [row(summary) for summary in runs], 'runs': runs, 'not_run': not_run,
    }
    checked = [row(summary) for summary in runs if summary['case']['checked']]
    if checked:
        payload['bars'] = [{'estimator': r['estimator'], 'failures': bar_failures(r),
                            'load_average_1min': r['load_average_1min']} for r in checked]
        payload['bars_met'] = not any(bar_failures(r) for r in checked)
    args.out.write_text(json.dumps(_finite(payload), indent=1) + '\n')


def _commit() -> str:
    """The checkout's commit, '+dirty' when tracked files other than the results differ."""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'diff', '--quiet', 'HEAD', '--', '.',
                                ':!benchmarks/results'], check=False).returncode
    except (OSError, subprocess.CalledProcessError):
        return ''
    return head + ('+dirty' if dirty else '')


def _finite(value: Any) -> Any:
    """JSON has no NaN: null instead; tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


if __name__ == '__main__':
    main()
