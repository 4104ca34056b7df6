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

from dataclasses import dataclass
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time

from reacher.bringup import (
    COMPOSED,
    NODES,
    parameter_files,
    qualified,
    robot_namespaces,
    rviz_remappings,
)
from reacher.dds import dds_environment, describe
from reacher.summary import combine, print_summary, Summary
from reacher_common.paths import config_file, share_dir
from reacher_perception.config import PerceptionConfig


@dataclass
class DemoArgs:
    """Run the camera-in-the-loop reacher: three ROS 2 nodes as separate processes."""

    headless: bool = False
    """Run without a window (the window needs a display and pyglet)."""
    duration: float = 60.0
    """Seconds to measure, counted from the moment the loop is closed."""
    json: bool = False
    """Print the summary as one JSON line, last."""
    estimator: str = PerceptionConfig.estimator
    """Perception backend: 'slac' (the shipped SLAC latent model, with its confidence) or
    'classical' (the OpenCV fit, the baseline)."""
    controller: str = 'ik'
    """Policy controller: 'ik' (analytic inverse kinematics), 'learned' (the actor on the
    estimated state) or 'slac' (the actor on the SLAC latent: needs --estimator slac)."""
    seed: int = 0
    """Seed of the simulator's goals and initial pose (robot i, from 0, gets seed + i)."""
    scene: str = 'clean'
    """What the camera sees around the arm (reacher_sim/scene.py): 'clean', one family
    ('background', 'texture', 'lighting', 'distractors', 'camera', 'blur', 'noise', 'jpeg')
    or 'randomized'; a new one with each goal."""
    camera_rate: float = 0.0
    """Camera frames per second (sim_node ``camera_rate_hz``); 0 = config/sim.yaml (one
    frame per physics step, 20 Hz). It must divide the physics rate: 30 needs
    --physics-rate 30, 60, ... The shipped SLAC model was trained on 20 Hz frames only."""
    physics_rate: float = 0.0
    """Physics steps per second (sim_node ``dt`` = 1 / rate, with ``success_hold_steps``
    scaled to keep the 0.5 s hold); 0 = config/sim.yaml (20 Hz)."""
    control_rate: float = 0.0
    """Control commands per second (policy_node ``control_rate_hz``); 0 = config/policy.yaml
    (20 Hz). The shipped learned actor runs at 20 Hz only."""
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
    composed: bool = True
    """Run perception and policy composed in one process (``perception_policy``,
    reacher/composed.py): the estimate bundle reaches the policy in-process, without its
    DDS hop (0.5-0.6 ms of the camera-to-command latency at the median here); --no-composed runs
    each node in its own process, isolated from the others' faults."""
    require_success: float = 0.0
    """Exit with status 1 when the success rate (of every loop) ends below this (for CI),
    in [0, 1]."""


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


def rate_overrides(args: DemoArgs) -> list[str]:
    """sim_node's ``-p`` arguments for ``--physics-rate`` and ``--camera-rate``.

    A new physics rate scales ``success_hold_steps`` so that a goal is still held for the
    same time (0.5 s with the shipped config).
    """
    from reacher_common.geometry import Timing
    from reacher_sim.config import SimConfig

    overrides = []
    if args.physics_rate:
        hold_s = SimConfig().success_hold_steps * Timing().dt
        overrides += ['-p', f'dt:={1.0 / args.physics_rate!r}',
                      '-p', f'success_hold_steps:={max(1, round(hold_s * args.physics_rate))}']
    if args.camera_rate:
        overrides += ['-p', f'camera_rate_hz:={float(args.camera_rate)!r}']
    return overrides


def check_rates(args: DemoArgs) -> float:
    """Refuse rates that cannot work before any node starts; return the camera rate, Hz.

    :raises ValueError: for a negative rate, a camera rate that does not divide the
        physics rate (naming ``--camera-rate``), a SLAC estimator whose checkpoint was
        trained at another frame period, or the slac controller without the slac
        estimator.
    """
    from reacher_common.geometry import Timing
    from reacher_sim.config import frames_every

    if args.controller == 'slac' and args.estimator != 'slac':
        raise ValueError(f'--controller slac acts on the SLAC latent, which --estimator '
                         f'{args.estimator} does not publish: add --estimator slac')
    for name in ('camera_rate', 'physics_rate', 'control_rate'):
        if getattr(args, name) < 0:
            raise ValueError(f'--{name.replace("_", "-")} {getattr(args, name)} must be >= 0 '
                             '(0: the shipped config)')
    dt = 1.0 / args.physics_rate if args.physics_rate else Timing().dt
    try:
        camera_rate = 1.0 / (dt * frames_every(args.camera_rate, dt))
    except ValueError:
        multiples = ', '.join(f'{args.camera_rate * n:g}' for n in (1, 2, 3))
        raise ValueError(f'--camera-rate {args.camera_rate:g} must divide the physics rate '
                         f'{1.0 / dt:g} Hz (each frame shows one physics step): pass '
                         f'--physics-rate {multiples}, ...') from None
    if args.estimator == 'slac' and not math.isclose(camera_rate, 1.0 / Timing().dt):
        from reacher_perception.slac.checkpoint import default_slac_checkpoint, load_checkpoint

        trained = load_checkpoint(default_slac_checkpoint()).timing.dt
        if not math.isclose(camera_rate * trained, 1.0, rel_tol=1e-6):
            raise ValueError(
                f'the SLAC model was trained on frames {trained:g} s apart '
                f'({1.0 / trained:g} Hz): its latent dynamics are per frame, so it cannot '
                f'filter a {camera_rate:g} Hz camera; use --estimator classical, or train '
                f'a model on {camera_rate:g} Hz frames')
    return camera_rate


def process_names(args: DemoArgs) -> tuple[str, ...]:
    """The node processes of one loop: three, or the sim and ``perception_policy``."""
    return ('sim_node', *COMPOSED) if args.composed else NODES


def start_nodes(args: DemoArgs, log_dir: Path, env: dict[str, str],
                namespaces: list[str] | None = None) -> dict[str, subprocess.Popen[bytes]]:
    """Start each loop's node processes (:func:`process_names`), logging to :func:`log_path`.

    :param namespaces: one per loop (default: :func:`robot_namespaces` of ``args``).
    :return: the processes by :func:`qualified` name ('sim_node', '/arm1/sim_node').
    """
    namespaces = namespaces or robot_namespaces(args.namespace, args.robots)
    names = process_names(args)
    # Resolve every executable and parameter file before starting any process.
    executables = {name: find_executable(name) for name in names}
    files = {name: [arg for path in parameter_files(name) for arg in ('--params-file', str(path))]
             for name in names}
    commands = {}
    for index, namespace in enumerate(namespaces):
        overrides = {
            'sim_node': ['-p', f'seed:={args.seed + index}',
                         '-p', f'scene.name:={args.scene}', *rate_overrides(args)],
            'perception_node': ['-p', f'estimator:={args.estimator}'],
            'policy_node': ['-p', f'controller:={args.controller}',
                            *(['-p', f'control_rate_hz:={float(args.control_rate)!r}']
                              if args.control_rate else [])],
        }
        overrides['perception_policy'] = [*overrides['perception_node'],
                                          *overrides['policy_node']]
        remap = ['-r', f'__ns:={namespace}'] if namespace != '/' else []
        for name in names:
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
    camera_rate = check_rates(args)
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
                         duration_s=args.duration, namespace=namespace, scene=args.scene,
                         camera_rate_hz=camera_rate)
                 for namespace in namespaces]
    # The window and the monitor first: if either cannot start, no node is left running.
    window = None
    if not args.headless:
        from reacher.window import start_window

        title = 'reacher: camera, its own estimate in white'
        if len(namespaces) > 1:
            title += f', {namespaces[0]}'
        window = start_window(namespaces[0], title, args.estimator, args.controller, env,
                              log_dir / 'window.log')
    try:
        monitor = LoopMonitor(namespaces)
    except BaseException:
        if window is not None:
            stop_nodes({'window': window})
        raise
    where = '' if namespaces == ['/'] else f' in {", ".join(namespaces)}'
    print(f'[demo] starting {", ".join(process_names(args))}{where} (logs in {log_dir}); '
          f'{describe(env)}', flush=True)
    rviz = rviz_hint(env, namespaces[0])
    if rviz:
        print(f'[demo] {rviz}', flush=True)
    try:
        processes = start_nodes(args, log_dir, env, namespaces)
    except BaseException:
        monitor.close()
        if window is not None:
            stop_nodes({'window': window})
        raise
    refused = monitor.use_real_time()
    if refused:
        print(f'[demo] the monitor runs with the default scheduler: SCHED_FIFO refused '
              f'({refused}); see docs/ros.md, "Real-time scheduling"', flush=True)
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
        if window is not None:
            stop_nodes({'window': window})
    for summary in summaries:
        summary.nodes = {name: code for name, code in codes.items()
                         if name.startswith(qualified(summary.namespace, ''))}
    summary = summaries[0] if len(summaries) == 1 else combine(summaries, args.namespace or '/')
    if code == 0 and not all(s.success_rate >= args.require_success for s in summaries):
        code = 1
    return summary, code


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
