"""``reacher demo``: the closed loop from pixels without a ROS install.

Starts the three node executables (sim_node, perception_node, policy_node) as separate
processes with the package's parameter files, exactly as ``ros2 launch reacher
bringup.launch.py`` does, watches the loop from a monitor node in this process, and
prints a summary (the JSON one last with ``--json``): goals reached, success rate, mean
time to goal, achieved control rate and camera-to-command latency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from reacher_common.paths import config_file, share_dir

NODES = ('sim_node', 'perception_node', 'policy_node')
GEOMETRY_FILE = 'geometry.yaml'
"""The arm's geometry (under ``/**:``), given to every node after its own file: rcl applies
a node's parameter sections in the order they first appear, and ``-p`` overrides join the
``/**`` section, so a ``/**`` file given first would let the node's own file override them."""
PARAMETER_FILES = {'sim_node': 'sim.yaml', 'perception_node': 'perception.yaml',
                   'policy_node': 'policy.yaml'}


@dataclass
class DemoArgs:
    """Run the camera-in-the-loop reacher: three ROS 2 nodes as separate processes."""

    headless: bool = False
    """Run without a window (the window needs a display and pyglet)."""
    duration: float = 60.0
    """Seconds to measure, counted from the moment the loop is closed."""
    json: bool = False
    """Print the summary as one JSON line, last."""
    estimator: str = 'classical'
    """Perception backend: 'classical' (OpenCV) or a learned one, e.g. 'slac'."""
    controller: str = 'ik'
    """Policy controller: 'ik' (analytic inverse kinematics) or 'learned'."""
    seed: int = 0
    """Seed of the simulator's goals and initial pose."""
    ros_args: tuple[str, ...] = ()
    """ROS arguments for every node; on the command line, everything after '--ros-args'
    (as for ros2 run), e.g. 'reacher demo --ros-args -p pid.kp:=3.0'."""
    log_dir: Path | None = None
    """Where the nodes' logs go (default: a new temporary directory)."""
    startup_timeout: float = 60.0
    """Seconds to wait for the loop to close before giving up."""
    require_success: float = 0.0
    """Exit with status 1 when the success rate ends below this (for CI), in [0, 1]."""


@dataclass
class Summary:
    """What a demo run measured (the ``--json`` line)."""

    estimator: str
    controller: str
    duration_s: float
    goals_reached: int = 0
    goals_timed_out: int = 0
    success_rate: float = math.nan
    mean_time_to_goal_s: float = math.nan
    configured_control_rate_hz: float = math.nan
    achieved_control_rate_hz: float = math.nan
    latency_ms_p50: float = math.nan
    latency_ms_p99: float = math.nan
    perception_inference_ms_p50: float = math.nan
    deadline_misses: int = 0
    stale_stops: int = 0
    nodes: dict[str, int | None] = field(default_factory=dict)


def find_executable(name: str) -> str:
    """Path of a node executable: beside this Python, in a colcon install, or on PATH.

    :raises FileNotFoundError: naming the executable and how to install it.
    """
    import shutil

    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    colcon = share_dir().parent.parent / 'lib' / 'reacher' / name
    if colcon.exists():
        return str(colcon)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f'cannot find the node executable {name!r}: install the package '
                            '(make venv, or pip install -e .) or source a colcon install')


def rviz_hint(env: dict[str, str]) -> str | None:
    """How to watch this run in rviz2, where rviz2 is installed (None elsewhere)."""
    import shutil

    if not shutil.which('rviz2'):
        return None
    rviz_config = config_file('reacher.rviz')
    domain = env.get('ROS_DOMAIN_ID', '0')
    return (f'watch it in rviz2: ROS_DOMAIN_ID={domain} ROS_AUTOMATIC_DISCOVERY_RANGE='
            f'{env["ROS_AUTOMATIC_DISCOVERY_RANGE"]} rviz2 -d {rviz_config}')


def node_environment() -> dict[str, str]:
    """The environment for the nodes: DDS on loopback unless the caller chose otherwise."""
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


def start_nodes(args: DemoArgs, log_dir: Path, env: dict[str, str]
                ) -> dict[str, subprocess.Popen[bytes]]:
    """Start the three node processes, each logging to ``log_dir/<node>.log``."""
    overrides = {
        'sim_node': ['-p', f'seed:={args.seed}'],
        'perception_node': ['-p', f'estimator:={args.estimator}'],
        'policy_node': ['-p', f'controller:={args.controller}'],
    }
    # Resolve every executable and parameter file before starting any process.
    geometry = str(config_file(GEOMETRY_FILE))
    commands = {name: [find_executable(name), '--ros-args',
                       '--params-file', str(config_file(PARAMETER_FILES[name])),
                       '--params-file', geometry, *overrides[name], *args.ros_args]
                for name in NODES}
    processes = {}
    for name, command in commands.items():
        log = open(log_dir / f'{name}.log', 'wb')  # noqa: SIM115 - closed with the process
        processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                           env=env, start_new_session=True)
    return processes


def stop_nodes(processes: dict[str, subprocess.Popen[bytes]], timeout: float = 10.0
               ) -> dict[str, int | None]:
    """SIGINT every node, then SIGKILL what is left after ``timeout``; return exit codes."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for process in processes.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {name: process.returncode for name, process in processes.items()}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])
    except OSError:
        return '(no log)'


def run(args: DemoArgs) -> tuple[Summary, int]:
    """Run the demo; return the summary and the process exit code."""
    if args.duration <= 0:
        raise ValueError(f'--duration {args.duration} must be > 0 seconds')
    env = node_environment()
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = env['ROS_AUTOMATIC_DISCOVERY_RANGE']
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix='reacher-demo-'))
    log_dir.mkdir(parents=True, exist_ok=True)
    env.setdefault('ROS_LOG_DIR', str(log_dir / 'ros'))
    os.environ.setdefault('ROS_LOG_DIR', env['ROS_LOG_DIR'])

    from reacher.monitor import LoopMonitor  # imports rclpy: after the environment is set

    summary = Summary(estimator=args.estimator, controller=args.controller,
                      duration_s=args.duration)
    # The monitor (and its window) first: if it cannot start, no node is left running.
    monitor = LoopMonitor(show_window=not args.headless)
    print(f'[demo] starting {", ".join(NODES)} (logs in {log_dir}); DDS discovery range '
          f'{env["ROS_AUTOMATIC_DISCOVERY_RANGE"]}, domain {env.get("ROS_DOMAIN_ID", "0")}',
          flush=True)
    rviz = rviz_hint(env)
    if rviz:
        print(f'[demo] {rviz}', flush=True)
    try:
        processes = start_nodes(args, log_dir, env)
    except BaseException:
        monitor.close()
        raise
    code = 0
    try:
        failed = monitor.wait_for_loop(processes, args.startup_timeout)
        if failed:
            name = failed
            print(f'[demo] {name} did not come up; the end of its log:\n'
                  f'{_tail(log_dir / f"{name}.log")}', file=sys.stderr, flush=True)
            code = 1
        else:
            monitor.measure(args.duration, processes)
            monitor.fill(summary)
    except KeyboardInterrupt:
        print('[demo] interrupted', file=sys.stderr)
        code = 130
    finally:
        monitor.close()
        summary.nodes = stop_nodes(processes)
    if code == 0 and not summary.success_rate >= args.require_success:
        code = 1
    return summary, code


def print_summary(summary: Summary, as_json: bool) -> None:
    """Print the human summary, and the JSON line last when asked."""
    rows = [
        ('estimator / controller', f'{summary.estimator} / {summary.controller}'),
        ('goals reached', f'{summary.goals_reached} (timed out: {summary.goals_timed_out})'),
        ('success rate', f'{summary.success_rate:.1%}'),
        ('mean time to goal', f'{summary.mean_time_to_goal_s:.2f} s'),
        ('control rate', f'{summary.achieved_control_rate_hz:.2f} Hz achieved / '
                         f'{summary.configured_control_rate_hz:.1f} Hz configured'),
        ('camera-to-command latency', f'p50 {summary.latency_ms_p50:.1f} ms, '
                                      f'p99 {summary.latency_ms_p99:.1f} ms'),
    ]
    width = max(len(key) for key, _ in rows)
    print(f'\nReacher demo, {summary.duration_s:.0f} s from pixels:')
    for key, value in rows:
        print(f'  {key:<{width}}  {value}')
    if as_json:
        print(json.dumps(_finite(asdict(summary))), flush=True)


def _finite(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def run_demo(args: DemoArgs) -> int:
    """``reacher demo``'s runner: run the loop, print the summary, return the exit code.

    :raises ValueError: for a bad argument or a node that refused to start.
    :raises FileNotFoundError: for a missing executable or parameter file.
    """
    summary, code = run(args)
    print_summary(summary, args.json)
    return code


def main(argv: list[str] | None = None) -> int:
    """``reacher demo ...`` with ``argv`` the arguments after ``demo``."""
    from reacher.cli import main as reacher_main

    return reacher_main(['demo', *(sys.argv[1:] if argv is None else argv)])
