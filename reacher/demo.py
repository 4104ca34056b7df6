"""``reacher demo``: the closed loop from pixels without a ROS install.

Starts the three node executables (sim_node, perception_node, policy_node) as separate
processes with the package's parameter files, exactly as ``ros2 launch reacher
bringup.launch.py`` does, watches the loop from a monitor node in this process, and
prints a summary (the JSON one last with ``--json``): goals reached, success rate, mean
time to goal, achieved control rate and camera-to-command latency.

``--robots N`` runs N complete loops side by side, in the namespaces /arm1 ... /armN (under
``--namespace`` if given), each with its own seed (``--seed`` + index); the summary has one
entry per loop under ``robots``. DDS stays on loopback (config/fastdds_loopback.xml) unless
``--multi-host`` (reacher/dds.py).
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

from reacher.bringup import NODES, parameter_files, qualified, robot_namespaces, rviz_remappings
from reacher.dds import dds_environment, describe
from reacher_common.paths import config_file, share_dir


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
    """Seed of the simulator's goals and initial pose (robot i, from 0, gets seed + i)."""
    scene: str = 'clean'
    """What the camera sees around the arm (reacher_sim/scene.py): 'clean', one family
    ('background', 'texture', 'lighting', 'distractors', 'camera', 'blur', 'noise', 'jpeg')
    or 'randomized'; a new one with each goal."""
    robots: int = 1
    """How many complete loops to run side by side; several run in <namespace>/arm1, /arm2..."""
    namespace: str = ''
    """ROS namespace of the loop (of the loops' parent with --robots > 1); '' = the root."""
    multi_host: bool = False
    """Let DDS use the network (config/fastdds_multihost.xml, discovery range SUBNET and
    ROS_STATIC_PEERS) instead of loopback only, for nodes on other machines."""
    ros_args: tuple[str, ...] = ()
    """ROS arguments for every node; on the command line, everything after '--ros-args'
    (as for ros2 run), e.g. 'reacher demo --ros-args -p pid.kp:=3.0'."""
    log_dir: Path | None = None
    """Where the nodes' logs go (default: a new temporary directory)."""
    startup_timeout: float = 60.0
    """Seconds to wait for the loop to close before giving up."""
    require_success: float = 0.0
    """Exit with status 1 when the success rate (of every loop) ends below this (for CI),
    in [0, 1]."""


@dataclass
class Summary:
    """What a demo run measured (the ``--json`` line).

    With several loops, ``robots`` holds each loop's own summary and the top-level figures
    combine them: counts summed, success rate and mean time to goal over all their goals,
    the control rate averaged, latency and inference time of the worst loop.
    """

    estimator: str
    controller: str
    duration_s: float
    namespace: str = '/'
    scene: str = 'clean'
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
    robots: list[Summary] = field(default_factory=list)


def combine(summaries: list[Summary], namespace: str) -> Summary:
    """The top-level summary of several loops (see :class:`Summary`)."""
    first = summaries[0]
    total = Summary(first.estimator, first.controller, first.duration_s, namespace,
                    scene=first.scene, robots=summaries)
    total.goals_reached = sum(s.goals_reached for s in summaries)
    total.goals_timed_out = sum(s.goals_timed_out for s in summaries)
    finished = total.goals_reached + total.goals_timed_out
    total.success_rate = total.goals_reached / finished if finished else math.nan
    timed = [(s.goals_reached, s.mean_time_to_goal_s) for s in summaries
             if s.goals_reached and math.isfinite(s.mean_time_to_goal_s)]
    if timed:
        total.mean_time_to_goal_s = (sum(n * t for n, t in timed)
                                     / sum(n for n, _ in timed))
    total.configured_control_rate_hz = first.configured_control_rate_hz
    total.achieved_control_rate_hz = _mean([s.achieved_control_rate_hz for s in summaries])
    total.latency_ms_p50 = _worst([s.latency_ms_p50 for s in summaries])
    total.latency_ms_p99 = _worst([s.latency_ms_p99 for s in summaries])
    total.perception_inference_ms_p50 = _worst(
        [s.perception_inference_ms_p50 for s in summaries])
    total.deadline_misses = sum(s.deadline_misses for s in summaries)
    total.stale_stops = sum(s.stale_stops for s in summaries)
    total.nodes = {name: code for s in summaries for name, code in s.nodes.items()}
    return total


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _worst(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else math.nan


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


def rviz_hint(env: dict[str, str], namespace: str) -> str | None:
    """How to watch the loop in ``namespace`` in rviz2, where rviz2 is installed."""
    import shutil

    if not shutil.which('rviz2'):
        return None
    variables = ' '.join(f'{name}={env[name]}' for name in
                         ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                          'FASTRTPS_DEFAULT_PROFILES_FILE') if env.get(name))
    command = f'{variables} rviz2 -d {config_file("reacher.rviz")}'
    if namespace != '/':
        remaps = ' '.join(f'-r {old}:={new}' for old, new in rviz_remappings())
        command += f' --ros-args -r __ns:={namespace} {remaps}'
    return f'watch {namespace} in rviz2: {command}'


def node_environment(multi_host: bool = False) -> dict[str, str]:
    """The environment for the nodes: DDS on loopback unless ``multi_host`` (reacher/dds.py)."""
    env = dict(os.environ)
    env.update(dds_environment(env, multi_host))
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


def log_path(log_dir: Path, name: str) -> Path:
    """Where the node process ``name`` ('sim_node' or '/arm1/sim_node') logs."""
    return log_dir / f'{name.lstrip("/")}.log'


def start_nodes(args: DemoArgs, log_dir: Path, env: dict[str, str],
                namespaces: list[str] | None = None) -> dict[str, subprocess.Popen[bytes]]:
    """Start the three node processes of each loop, each logging to :func:`log_path`.

    :param namespaces: one per loop (default: :func:`robot_namespaces` of ``args``).
    :return: the processes by :func:`qualified` name ('sim_node', '/arm1/sim_node').
    """
    namespaces = namespaces or robot_namespaces(args.namespace, args.robots)
    # Resolve every executable and parameter file before starting any process.
    executables = {name: find_executable(name) for name in NODES}
    files = {name: [arg for path in parameter_files(name) for arg in ('--params-file', str(path))]
             for name in NODES}
    commands = {}
    for index, namespace in enumerate(namespaces):
        overrides = {
            'sim_node': ['-p', f'seed:={args.seed + index}',
                         '-p', f'scene.name:={args.scene}'],
            'perception_node': ['-p', f'estimator:={args.estimator}'],
            'policy_node': ['-p', f'controller:={args.controller}'],
        }
        remap = ['-r', f'__ns:={namespace}'] if namespace != '/' else []
        for name in NODES:
            commands[qualified(namespace, name)] = [
                executables[name], '--ros-args', *remap, *files[name], *overrides[name],
                *args.ros_args]
    processes = {}
    for name, command in commands.items():
        path = log_path(log_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, 'wb')  # noqa: SIM115 - closed with the process
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
    if args.robots < 1:
        raise ValueError(f'--robots {args.robots} must be >= 1')
    namespaces = robot_namespaces(args.namespace, args.robots)
    env = node_environment(args.multi_host)
    # This process's monitor talks DDS the way the nodes do.
    os.environ.update(dds_environment(os.environ, args.multi_host))
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix='reacher-demo-'))
    log_dir.mkdir(parents=True, exist_ok=True)
    env.setdefault('ROS_LOG_DIR', str(log_dir / 'ros'))
    os.environ.setdefault('ROS_LOG_DIR', env['ROS_LOG_DIR'])

    from reacher.monitor import LoopMonitor  # imports rclpy: after the environment is set

    summaries = [Summary(estimator=args.estimator, controller=args.controller,
                         duration_s=args.duration, namespace=namespace, scene=args.scene)
                 for namespace in namespaces]
    # The monitor (and its window) first: if it cannot start, no node is left running.
    monitor = LoopMonitor(namespaces, show_window=not args.headless)
    where = '' if namespaces == ['/'] else f' in {", ".join(namespaces)}'
    print(f'[demo] starting {", ".join(NODES)}{where} (logs in {log_dir}); {describe(env)}',
          flush=True)
    rviz = rviz_hint(env, namespaces[0])
    if rviz:
        print(f'[demo] {rviz}', flush=True)
    try:
        processes = start_nodes(args, log_dir, env, namespaces)
    except BaseException:
        monitor.close()
        raise
    code = 0
    try:
        failed = monitor.wait_for_loop(processes, args.startup_timeout)
        if failed:
            print(f'[demo] {failed} did not come up; the end of its log:\n'
                  f'{_tail(log_path(log_dir, failed))}', file=sys.stderr, flush=True)
            code = 1
        else:
            monitor.measure(args.duration, processes)
            for robot, summary in zip(monitor.robots, summaries, strict=True):
                robot.fill(summary)
    except KeyboardInterrupt:
        print('[demo] interrupted', file=sys.stderr)
        code = 130
    finally:
        monitor.close()
        codes = stop_nodes(processes)
    for summary in summaries:
        summary.nodes = {name: code for name, code in codes.items()
                         if name.startswith(qualified(summary.namespace, ''))}
    summary = summaries[0] if len(summaries) == 1 else combine(summaries, args.namespace or '/')
    if code == 0 and not all(s.success_rate >= args.require_success for s in summaries):
        code = 1
    return summary, code


def print_summary(summary: Summary, as_json: bool) -> None:
    """Print the human summary (one block per loop), and the JSON line last when asked."""
    print(f'\nReacher demo, {summary.duration_s:.0f} s from pixels:')
    for each in summary.robots or [summary]:
        if summary.robots:
            print(f'{each.namespace}:')
        _print_rows(each)
    if summary.robots:
        print(f'all {len(summary.robots)}: {summary.goals_reached} goals reached '
              f'(timed out: {summary.goals_timed_out}), success rate '
              f'{summary.success_rate:.1%}')
    if as_json:
        print(json.dumps(_finite(asdict(summary))), flush=True)


def _print_rows(summary: Summary) -> None:
    rows = [
        ('estimator / controller', f'{summary.estimator} / {summary.controller}'),
        ('scene', summary.scene),
        ('goals reached', f'{summary.goals_reached} (timed out: {summary.goals_timed_out})'),
        ('success rate', f'{summary.success_rate:.1%}'),
        ('mean time to goal', f'{summary.mean_time_to_goal_s:.2f} s'),
        ('control rate', f'{summary.achieved_control_rate_hz:.2f} Hz achieved / '
                         f'{summary.configured_control_rate_hz:.1f} Hz configured'),
        ('camera-to-command latency', f'p50 {summary.latency_ms_p50:.1f} ms, '
                                      f'p99 {summary.latency_ms_p99:.1f} ms'),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f'  {key:<{width}}  {value}')


def _finite(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
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
