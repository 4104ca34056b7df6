"""Reliability benchmark: bad inputs, killed and frozen nodes, and a soak of the loop.

Starts the three node executables as processes with the shipped parameter files (as
``reacher demo`` does), watches them from a monitor node in this process, and measures:

- **bad inputs**: malformed images, commands, estimates and parameters, a 1 kHz command
  flood (with the share of the policy's commands the sim still applies), oversize frames;
  for each, whether every node survived, and whether the loop still reaches goals after.
- **kills and freezes**: each node killed (SIGKILL) or frozen (SIGSTOP) and brought back
  (restart or SIGCONT): whether the others survived, the time from perception's (or the
  sim's) death to the policy's first zero command, and the time to resume (from the
  restart to the first non-zero command computed from a fresh frame).
- **soak**: the loop for ``--soak-minutes``: goals reached and timed out, each node's
  resident memory over time and its slope (least squares after a warm-up), stale stops,
  deadline misses and callback errors.

Writes benchmarks/results/reliability.json and prints a markdown table.

    python benchmarks/reliability.py --soak-minutes 15
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass
import json
import os
from pathlib import Path
import platform
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / 'config'
NODES = {'sim_node': 'sim.yaml', 'perception_node': 'perception.yaml',
         'policy_node': 'policy.yaml'}

FLOOD = str(Path(__file__).resolve().parent.parent / 'scripts' / 'flood_commands.py')
"""A separate process publishing malformed commands at ``rate`` Hz (argv: rate size s)."""


@dataclass
class Args:
    """Bad inputs, node kills and freezes, and a soak of the closed loop."""

    soak_minutes: float = 15.0
    """Length of the soak, minutes (0 skips it)."""
    repeats: int = 3
    """Kills and freezes per node."""
    controller: str = 'ik'
    """The policy's controller during the kills and the soak ('ik' or 'learned'); the bad
    inputs run with 'learned', the controller the crash findings were about."""
    skip_bad_inputs: bool = False
    """Skip the bad-input phase."""
    skip_kills: bool = False
    """Skip the kill and freeze phase."""
    out: Path = Path('benchmarks/results/reliability.json')
    """Where to write the JSON results."""


class Node:
    """One node executable as a child process, logging to a file."""

    def __init__(self, name: str, log_dir: Path, params: dict[str, Any]) -> None:
        self.name = name
        self.log_dir = log_dir
        self.params = params
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> float:
        """Start (again); return the monotonic time of the start."""
        command = [str(Path(sys.executable).parent / self.name), '--ros-args',
                   '--params-file', str(CONFIG / NODES[self.name]),
                   '--params-file', str(CONFIG / 'geometry.yaml')]
        for key, value in self.params.items():
            command += ['-p', f'{key}:={value}']
        self.starts += 1
        log = open(self.log_dir / f'{self.name}.{self.starts}.log', 'wb')
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return time.monotonic()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, number: int) -> float:
        """Send a signal; return the monotonic time it was sent."""
        os.kill(self.pid, number)
        return time.monotonic()

    def rss_mb(self) -> float:
        status = Path(f'/proc/{self.pid}/status').read_text()
        return int(status.split('VmRSS:')[1].split()[0]) / 1024.0

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Monitor:
    """A node in this process recording what the loop publishes, with receipt times."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PointStamped
        import rclpy
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray

        self.rclpy = rclpy
        self.node = rclpy.create_node('reliability_monitor')
        self.commands: list[tuple[float, tuple[float, ...]]] = []
        self.estimates: list[float] = []
        self.diagnostics: dict[str, list[tuple[float, dict[str, str]]]] = {}
        self.node.create_subscription(Float64MultiArray, '/joint_commands',
                                      self._command, 50)
        self.node.create_subscription(JointState, '/perception/joint_states',
                                      lambda msg: self.estimates.append(time.monotonic()), 50)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics, 50)
        self.image_pub = self.node.create_publisher(Image, '/camera/image_raw', 1)
        self.command_pub = self.node.create_publisher(Float64MultiArray, '/joint_commands', 10)
        self.joints_pub = self.node.create_publisher(JointState, '/perception/joint_states', 10)
        self.goal_pub = self.node.create_publisher(PointStamped, '/perception/goal', 10)

    def _command(self, msg: Any) -> None:
        if len(msg.data) == 2:  # a flood's commands are not the policy's
            self.commands.append((time.monotonic(), tuple(msg.data)))
        del self.commands[:-5000]

    def _diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            node = status.name.split(':')[0]
            values = {kv.key: kv.value for kv in status.values}
            self.diagnostics.setdefault(node, []).append((time.monotonic(), values))

    def latest(self, node: str) -> dict[str, str]:
        history = self.diagnostics.get(node)
        return history[-1][1] if history else {}

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.rclpy.spin_once(self.node, timeout_sec=0.02)
        return condition()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def goals(self) -> tuple[int, int]:
        values = self.latest('sim_node')
        return int(values.get('goals_reached', 0)), int(values.get('goals_timed_out', 0))

    def first_command_after(self, since: float, zero: bool) -> float | None:
        for stamp, data in self.commands:
            if stamp > since and (all(v == 0.0 for v in data) == zero):
                return stamp
        return None

    def set_parameter(self, node: str, name: str, value: Any) -> tuple[bool, str]:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f'/{node}/set_parameters')
        try:
            if not client.wait_for_service(timeout_sec=10):
                return False, 'no service'
            for _ in range(3):
                future = client.call_async(SetParameters.Request(
                    parameters=[Parameter(name, value=value).to_parameter_msg()]))
                self.rclpy.spin_until_future_complete(self.node, future, timeout_sec=3)
                if future.result() is not None:
                    result = future.result().results[0]
                    return bool(result.successful), str(result.reason)
                client.remove_pending_request(future)
            return False, 'no answer'
        finally:
            self.node.destroy_client(client)


class Loop:
    """The three nodes and the monitor."""

    def __init__(self, log_dir: Path, controller: str) -> None:
        self.monitor = Monitor()
        self.nodes = {
            'sim_node': Node('sim_node', log_dir, {}),
            'perception_node': Node('perception_node', log_dir, {}),
            'policy_node': Node('policy_node', log_dir, {'controller': controller}),
        }

    def alive(self) -> dict[str, bool]:
        return {name: node.alive() for name, node in self.nodes.items()}

    def closed(self, timeout: float = 60.0) -> bool:
        """Wait until the policy commands from fresh estimates (a non-zero command)."""
        now = time.monotonic()
        return self.monitor.spin_until(
            lambda: self.monitor.first_command_after(now, zero=False) is not None, timeout)

    def reaches_goals(self, timeout: float = 60.0) -> bool:
        """Whether the sim reports a further goal reached within ``timeout``."""
        self.monitor.spin_for(1.2)  # a fresh diagnostics message
        before = self.monitor.goals()[0]
        return self.monitor.spin_until(lambda: self.monitor.goals()[0] > before, timeout)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.monitor.node.destroy_node()


@contextlib.contextmanager
def running_loop(log_dir: Path, controller: str) -> Iterator[Loop]:
    """A fresh loop, closed (commands from fresh frames), stopped on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    loop = Loop(log_dir, controller)
    try:
        if not loop.closed(90):
            raise RuntimeError(f'the loop did not close; logs in {log_dir}')
        yield loop
    finally:
        loop.stop()


def stamp_now(monitor: Monitor) -> Any:
    return monitor.node.get_clock().now().to_msg()


def bad_inputs(loop: Loop) -> list[dict[str, Any]]:
    """Try every bad input on the running loop; return one row per input."""
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray, Header

    monitor = loop.monitor

    def image(width: int, height: int, encoding: str = 'rgb8', data_bytes: int | None = None
              ) -> Image:
        size = width * height * 3 if data_bytes is None else data_bytes
        return Image(header=Header(stamp=stamp_now(monitor), frame_id='camera'),
                     width=width, height=height, encoding=encoding, step=3 * width,
                     data=bytes(size))

    def estimate(names: list[str], positions: list[float], goal: tuple[float, float]
                 ) -> None:
        header = Header(stamp=stamp_now(monitor), frame_id='world')
        point = PointStamped(header=header)
        point.point.x, point.point.y = goal
        monitor.goal_pub.publish(point)
        monitor.joints_pub.publish(JointState(header=header, name=names, position=positions))

    def repeat(send: Callable[[], None], count: int = 10, period: float = 0.05
               ) -> Callable[[], None]:
        def run() -> None:
            for _ in range(count):
                send()
                monitor.spin_for(period)
        return run

    inputs: list[tuple[str, str, Callable[[], None]]] = [
        ('image', 'bgr8 encoding', repeat(
            lambda: monitor.image_pub.publish(image(64, 64, 'bgr8')))),
        ('image', '32x32 instead of 64x64', repeat(
            lambda: monitor.image_pub.publish(image(32, 32)))),
        ('image', 'data shorter than height x step', repeat(
            lambda: monitor.image_pub.publish(image(64, 64, data_bytes=100)))),
        ('image', '12 MB frame (2000x2000 rgb8)', repeat(
            lambda: monitor.image_pub.publish(image(2000, 2000)), count=10, period=0.2)),
        ('command', 'NaN velocities', repeat(
            lambda: monitor.command_pub.publish(Float64MultiArray(data=[float('nan')] * 2)))),
        ('command', '3 values instead of 2', repeat(
            lambda: monitor.command_pub.publish(Float64MultiArray(data=[0.1, 0.1, 0.1])))),
        ('command', '1,000,000 values', repeat(
            lambda: monitor.command_pub.publish(Float64MultiArray(data=[0.0] * 1_000_000)),
            count=3, period=0.3)),
        ('estimate', 'joint state without the joint names', repeat(
            lambda: estimate(['wrist'], [0.1], (0.05, 0.1)))),
        ('estimate', 'goal at (1e300, 1e300)', repeat(
            lambda: estimate(['shoulder', 'elbow'], [0.0, 0.0], (1e300, 1e300)), count=20)),
        ('estimate', 'NaN goal', repeat(
            lambda: estimate(['shoulder', 'elbow'], [0.0, 0.0], (float('nan'), 0.0)))),
        ('estimate', 'goal outside the arena (0.5, 0)', repeat(
            lambda: estimate(['shoulder', 'elbow'], [0.0, 0.0], (0.5, 0.0)))),
    ]
    parameters = [
        ('sim_node', 'dt', 5.0), ('sim_node', 'image_size', 'abc'),
        ('sim_node', 'arena_size_m', float('nan')), ('sim_node', 'command_timeout_s', -1.0),
        ('perception_node', 'image_size', 128), ('perception_node', 'estimator', 'slac'),
        ('policy_node', 'pid.kp', 3), ('policy_node', 'pid.kp', float('nan')),
        ('policy_node', 'pid.kp', 1e9), ('policy_node', 'control_rate_hz', 50.0),
        ('policy_node', 'controller', 'ik'),
        # Valid changes, applied; kp = 0 once divided by zero in the learned controller.
        ('policy_node', 'pid.kp', 0.0), ('policy_node', 'pid.kp', 2.5),
        ('sim_node', 'command_timeout_s', 0.5), ('perception_node', 'warn_throttle_s', 5.0),
    ]
    rows = []
    for kind, what, run in inputs:
        run()
        monitor.spin_for(0.3)
        alive = loop.alive()
        rows.append({'kind': kind, 'input': what, 'survived': all(alive.values()),
                     'alive': alive})
        print(f'  {kind}: {what}: {"survived" if all(alive.values()) else alive}',
              file=sys.stderr)
    for node, name, value in parameters:
        accepted, reason = monitor.set_parameter(node, name, value)
        alive = loop.alive()
        rows.append({'kind': 'parameter', 'input': f'{node} {name}={value!r}',
                     'survived': all(alive.values()), 'alive': alive, 'accepted': accepted,
                     'reason': reason})
        print(f'  parameter {node} {name}={value!r}: '
              f'{"accepted" if accepted else "refused: " + reason}', file=sys.stderr)
    rows.append(flood_row(loop))
    return rows


def flood_row(loop: Loop, rate: float = 1000.0, size: int = 100_000,
              seconds: float = 8.0) -> dict[str, Any]:
    """A 1 kHz flood of malformed 800 KB commands: the share of the policy's commands the
    sim still takes (its accepted-command rate over the policy's command rate)."""
    monitor = loop.monitor
    flood = subprocess.Popen([sys.executable, FLOOD, str(rate), str(size),
                              str(seconds)], stdout=subprocess.PIPE, text=True)
    start = time.monotonic()
    monitor.spin_until(lambda: flood.poll() is not None, seconds + 30)
    sent = int((flood.communicate()[0] or 'sent 0').split()[-1])
    sim = [(t, int(v['commands'])) for t, v in monitor.diagnostics.get('sim_node', [])
           if t > start + 1.5 and 'commands' in v]
    policy = [(t, int(v['commands'])) for t, v in monitor.diagnostics.get('policy_node', [])
              if t > start + 1.5]
    end = start + seconds
    sim = [(t, n) for t, n in sim if t < end]
    policy = [(t, n) for t, n in policy if t < end]
    share = float('nan')
    if len(sim) >= 2 and len(policy) >= 2:
        accepted = (sim[-1][1] - sim[0][1]) / (sim[-1][0] - sim[0][0])
        published = (policy[-1][1] - policy[0][1]) / (policy[-1][0] - policy[0][0])
        share = accepted / published
    alive = loop.alive()
    print(f'  flood: {sent} commands of {size} values at {rate:g} Hz: policy share '
          f'{share:.3f}', file=sys.stderr)
    return {'kind': 'command', 'input': f'{rate:g} Hz flood of {size}-value commands '
            f'({seconds:g} s, {sent} sent)', 'survived': all(alive.values()),
            'alive': alive, 'policy_command_share': share}


def kills_and_freezes(loop: Loop, repeats: int) -> list[dict[str, Any]]:
    """Kill (SIGKILL, restart) and freeze (SIGSTOP, SIGCONT) each node ``repeats`` times."""
    monitor = loop.monitor
    rows = []
    for action in ('kill', 'freeze'):
        for name, node in loop.nodes.items():
            for attempt in range(repeats):
                if not loop.closed(60):
                    print(f'  loop not closed before {action} {name}', file=sys.stderr)
                monitor.spin_for(1.0)
                others = [other for other in loop.nodes.values() if other is not node]
                down = node.signal(signal.SIGKILL if action == 'kill' else signal.SIGSTOP)
                stopped_after = None
                if name != 'policy_node':  # the policy itself sees the others go silent
                    monitor.spin_until(
                        lambda down=down: monitor.first_command_after(down, True) is not None,
                        3.0)
                    zero = monitor.first_command_after(down, zero=True)
                    stopped_after = None if zero is None else zero - down
                monitor.spin_for(1.0)
                if action == 'kill':
                    node.process.wait() if node.process else None
                    back = node.start()
                else:
                    back = node.signal(signal.SIGCONT)

                def resumed(back: float = back) -> bool:
                    fresh = [t for t in monitor.estimates if t > back]
                    return bool(fresh) and monitor.first_command_after(fresh[0], False) \
                        is not None

                ok = monitor.spin_until(resumed, 60.0)
                fresh = [t for t in monitor.estimates if t > back]
                resume = (monitor.first_command_after(fresh[0], False) - back) if ok else None
                survived = all(other.alive() for other in others) and node.alive()
                rows.append({'action': action, 'node': name, 'attempt': attempt,
                             'zero_command_after_s': stopped_after,
                             'resumed_after_s': resume, 'survived': survived})
                print(f'  {action} {name} #{attempt}: zero after {stopped_after}, resumed '
                      f'after {resume}, others alive {survived}', file=sys.stderr)
    return rows


def slope_mb_per_hour(samples: list[tuple[float, float]], warmup_s: float) -> float:
    """Least-squares slope of (seconds, MB) samples after the warm-up, MB per hour."""
    kept = [(t, m) for t, m in samples if t >= warmup_s]
    if len(kept) < 3:
        return float('nan')
    times, memory = np.array(kept).T
    return float(np.polyfit(times, memory, 1)[0] * 3600.0)


def soak(loop: Loop, minutes: float, sample_s: float = 10.0,
         warmup_s: float = 120.0) -> dict[str, Any]:
    """Run the loop for ``minutes``; sample memory and read the counters at the end."""
    monitor = loop.monitor
    start = time.monotonic()
    monitor.spin_for(1.2)
    goals_before = monitor.goals()
    memory: dict[str, list[tuple[float, float]]] = {name: [] for name in loop.nodes}
    while time.monotonic() - start < minutes * 60.0:
        for name, node in loop.nodes.items():
            if node.alive():
                memory[name].append((time.monotonic() - start, node.rss_mb()))
        monitor.spin_for(sample_s)
    monitor.spin_for(1.2)
    reached, timed_out = monitor.goals()
    policy = monitor.latest('policy_node')
    result: dict[str, Any] = {
        'minutes': minutes, 'alive': loop.alive(),
        'goals_reached': reached - goals_before[0],
        'goals_timed_out': timed_out - goals_before[1],
        'stale_stops': int(policy.get('stale_stops', 0)),
        'deadline_misses': int(policy.get('deadline_misses', 0)),
        'callback_errors': {name: int(monitor.latest(name).get('callback_errors', 0))
                            for name in loop.nodes},
        'memory_mb': {name: {'start': samples[0][1] if samples else None,
                             'end': samples[-1][1] if samples else None,
                             'slope_mb_per_hour': slope_mb_per_hour(samples, warmup_s)}
                      for name, samples in memory.items()},
        'memory_samples': {name: [[round(t, 1), round(m, 2)] for t, m in samples]
                           for name, samples in memory.items()},
    }
    return result


def table(result: dict[str, Any]) -> str:
    """The markdown summary of benchmarks/README.md."""
    lines = ['| what | result |', '|---|---|']
    rows = result.get('bad_inputs', [])
    if rows:
        survived = sum(row['survived'] for row in rows)
        lines.append(f'| bad inputs tried / survived by every node | {len(rows)} / '
                     f'{survived} |')
        flood = [row for row in rows if 'policy_command_share' in row]
        if flood:
            lines.append(f'| policy commands taken by the sim under a 1 kHz flood of 800 KB '
                         f'commands | {flood[0]["policy_command_share"]:.1%} |')
        refused = [row for row in rows if row['kind'] == 'parameter' and not row['accepted']]
        lines.append(f'| bad parameter changes refused with a reason | {len(refused)} |')
    kills = result.get('kills', [])
    for action in ('kill', 'freeze'):
        mine = [row for row in kills if row['action'] == action]
        if not mine:
            continue
        lines.append(f'| node {action}s survived by the other nodes | {len(mine)} / '
                     f'{sum(row["survived"] for row in mine)} |')
        for name in ('perception_node', 'sim_node'):
            zero = [row['zero_command_after_s'] for row in mine
                    if row['node'] == name and row['zero_command_after_s'] is not None]
            if zero:
                lines.append(f'| {name} {action} -> zero command, median (max) | '
                             f'{np.median(zero) * 1e3:.0f} ({max(zero) * 1e3:.0f}) ms |')
        resume = [row['resumed_after_s'] for row in mine if row['resumed_after_s'] is not None]
        if resume:
            what = 'restart' if action == 'kill' else 'SIGCONT'
            lines.append(f'| {what} -> loop closed again, median (max) | '
                         f'{np.median(resume):.2f} ({max(resume):.2f}) s |')
    soak_result = result.get('soak')
    if soak_result:
        lines.append(f'| soak: minutes, goals reached / timed out | '
                     f'{soak_result["minutes"]:g}, {soak_result["goals_reached"]} / '
                     f'{soak_result["goals_timed_out"]} |')
        for name, memory in soak_result['memory_mb'].items():
            lines.append(f'| soak: {name} memory, start -> end (slope) | '
                         f'{memory["start"]:.1f} -> {memory["end"]:.1f} MB '
                         f'({memory["slope_mb_per_hour"]:+.2f} MB/h) |')
        lines.append(f'| soak: stale stops, deadline misses, callback errors | '
                     f'{soak_result["stale_stops"]}, {soak_result["deadline_misses"]}, '
                     f'{sum(soak_result["callback_errors"].values())} |')
    return '\n'.join(lines)


def main() -> None:
    args = tyro.cli(Args)
    import rclpy

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    rclpy.init()
    log_dir = Path(tempfile.mkdtemp(prefix='reliability-'))
    result: dict[str, Any] = {
        'benchmark': 'reliability',
        'args': {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        'machine': {'cpus': os.cpu_count(), 'python': platform.python_version(),
                    'load_average': os.getloadavg()},
        'log_dir': str(log_dir)}
    started = time.monotonic()
    try:
        if not args.skip_bad_inputs:
            print('bad inputs (controller learned)', file=sys.stderr)
            with running_loop(log_dir / 'bad', 'learned') as loop:
                rows = bad_inputs(loop)
                result['bad_inputs'] = rows
                result['goals_reached_after_bad_inputs'] = loop.reaches_goals(60)
        if not args.skip_kills:
            print('kills and freezes', file=sys.stderr)
            with running_loop(log_dir / 'kills', args.controller) as loop:
                result['kills'] = kills_and_freezes(loop, args.repeats)
        if args.soak_minutes > 0:
            print(f'soak, {args.soak_minutes:g} min', file=sys.stderr)
            with running_loop(log_dir / 'soak', args.controller) as loop:
                result['soak'] = soak(loop, args.soak_minutes)
    finally:
        rclpy.try_shutdown()
    result['wall_time_s'] = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + '\n')
    print(table(result))
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
