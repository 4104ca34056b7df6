"""The demo's monitor: nodes that watch the loops and collect the summary's figures.

One :class:`RobotMonitor` per loop, a node in that loop's namespace subscribing to the same
relative names as the loop's nodes (diagnostics, joint_commands, sim_node/reset), so the
namespace it is given decides what it sees: /arm1/diagnostics for ``/arm1``. It counts
joint_commands to measure the achieved control rate, reads the nodes' diagnostics for goal
counters and latency, and resets the simulator's statistics once the loop is closed. The
:class:`LoopMonitor` spins them all in one executor and does nothing else: the window is a
process of its own (reacher/window.py), so drawing never delays a count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
import re
import subprocess
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from tqdm import tqdm

from reacher_common.ros_utils import make_executor
from reacher_common.scheduling import NodeScheduling, use_fifo_scheduling

Processes = dict[str, subprocess.Popen[bytes]]
CONTROL_MODE_KEYS = ('timing.mode', 'control_mode')
"""Where the policy's diagnostics name its control mode ('free', 'phase-locked', ...); a
policy from before phase locking names none (and runs free)."""
POLICY_JITTER_KEY = 'timing.period_jitter_ms.p99'
"""The policy's own control-period jitter p99, ms (its ticks, without DDS delivery)."""
STAGE_KEY = re.compile(r'latency\.(?P<stage>.+)_ms\.(?P<stat>p\d+)')
"""A per-stage latency on a node's /diagnostics: ``latency.<stage>_ms.p50`` (and p99),
milliseconds: the perception and policy nodes' timing of each stage of a frame's trip
(docs/ros.md)."""


def stage_latencies(statuses: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Any]]:
    """The per-stage latencies that the nodes report, by stage name.

    Reads every key of the form :data:`STAGE_KEY` from each node's newest diagnostics;
    a node that reports none (before the nodes time their stages) adds nothing.

    :param statuses: node name -> its newest diagnostics values.
    :return: stage -> {'node': name, 'p50': ms, 'p99': ms, ...}; a stage that two nodes
        report is keyed ``<node>/<stage>`` for the second.
    """
    stages: dict[str, dict[str, Any]] = {}
    for node, values in statuses.items():
        found: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            match = STAGE_KEY.fullmatch(key)
            if match:
                found.setdefault(match['stage'], {'node': node})[match['stat']] = _float(value)
        for stage, figures in found.items():
            stages[stage if stage not in stages else f'{node}/{stage}'] = figures
    return stages


def smoothness(commands: Sequence[Sequence[float]], rate_hz: float) -> tuple[float, float]:
    """How smooth a stream of joint-velocity commands is, whatever its rate.

    :param commands: successive (2,) commands, rad/s, one per control period.
    :param rate_hz: the control rate, Hz: the finite differences are divided by its period.
    :return: RMS over both joints of the commanded acceleration (first difference, rad/s^2)
        and jerk (second difference, rad/s^3); nan for too few commands.
    """
    values = np.asarray([c for c in commands if len(c) == 2], dtype=float).reshape(-1, 2)
    if len(values) < 3 or not math.isfinite(rate_hz) or rate_hz <= 0:
        return math.nan, math.nan
    accel = np.diff(values, axis=0) * rate_hz
    jerk = np.diff(accel, axis=0) * rate_hz
    return float(np.sqrt(np.mean(accel ** 2))), float(np.sqrt(np.mean(jerk ** 2)))


def period_jitter_ms(times: Sequence[float], rate_hz: float, quantile: float = 99.0
                     ) -> float:
    """A percentile of |period - 1 / rate_hz| between successive events, milliseconds.

    :param times: event times, seconds (time.monotonic), ascending.
    :param rate_hz: the configured rate, Hz.
    :return: nan with fewer than two events or no finite rate.
    """
    if len(times) < 2 or not math.isfinite(rate_hz) or rate_hz <= 0:
        return math.nan
    periods = np.diff(np.asarray(times))
    return float(np.percentile(np.abs(periods - 1.0 / rate_hz), quantile) * 1e3)


class RobotMonitor:
    """Watches one loop: the nodes under ``namespace``.

    :param namespace: the loop's namespace, '/' for the root one.
    """

    def __init__(self, namespace: str = '/') -> None:
        self.namespace = namespace
        self.node = Node('reacher_demo_monitor', namespace=namespace)
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.diagnostics_time: dict[str, float] = {}
        self.command_times: list[float] = []
        self.command_values: list[tuple[float, ...]] = []
        self.start = self.end = math.nan
        self.reset_done = False
        self._reset_future: Any = None
        node = self.node
        node.create_subscription(DiagnosticArray, 'diagnostics', self._diagnostics, 50)
        node.create_subscription(Float64MultiArray, 'joint_commands', self._command, 50)
        self.reset_client = node.create_client(Trigger, 'sim_node/reset')

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}
            self.diagnostics_time[status.name] = time.monotonic()

    def _command(self, msg: Float64MultiArray) -> None:
        self.command_times.append(time.monotonic())
        self.command_values.append(tuple(msg.data[:2]))

    def status(self, node_name: str) -> dict[str, str]:
        """The newest diagnostics values of one of this loop's nodes ({} before any)."""
        return next((v for k, v in self.diagnostics.items() if k.startswith(node_name)), {})

    def step_reset(self) -> bool:
        """Reset the sim's statistics once commands flow and latencies are measured.

        Call it while spinning; it returns True once the sim answered the reset.
        """
        if self.reset_done:
            return True
        if self._reset_future is None:
            ready = (self.command_times and self.status('sim_node')
                     and self.status('policy_node').get('latency_samples', '0') != '0')
            if ready and self.reset_client.service_is_ready():
                self._reset_future = self.reset_client.call_async(Trigger.Request())
        elif self._reset_future.done():
            self.reset_done = True
        return self.reset_done

    def fill(self, summary: Any) -> None:
        """Write this loop's measured figures into a :class:`reacher.summary.Summary`."""
        sim, policy = self.status('sim_node'), self.status('policy_node')
        perception = self.status('perception_node')
        inside = [index for index, t in enumerate(self.command_times)
                  if self.start <= t <= self.end]
        window = [self.command_times[index] for index in inside]
        # What ran, as the nodes report it (the request, if they report nothing).
        summary.controller = policy.get('controller', summary.controller)
        summary.estimator = perception.get('estimator', summary.estimator)
        summary.goals_reached = int(sim.get('goals_reached', 0))
        summary.goals_timed_out = int(sim.get('goals_timed_out', 0))
        summary.success_rate = _float(sim.get('success_rate'))
        summary.mean_time_to_goal_s = _float(sim.get('mean_time_to_goal_s'))
        if len(window) > 1:
            summary.achieved_control_rate_hz = (len(window) - 1) / (window[-1] - window[0])
        summary.configured_control_rate_hz = _float(policy.get('configured_rate_hz'))
        summary.control_period_jitter_ms_p99 = period_jitter_ms(
            window, summary.configured_control_rate_hz)
        summary.command_accel_rms, summary.command_jerk_rms = smoothness(
            [self.command_values[index] for index in inside],
            summary.configured_control_rate_hz)
        summary.latency_stages_ms = stage_latencies(
            {'perception_node': perception, 'policy_node': policy})
        summary.control_mode = next((policy[key] for key in CONTROL_MODE_KEYS if key in policy),
                                    '')
        summary.policy_period_jitter_ms_p99 = _float(policy.get(POLICY_JITTER_KEY))
        summary.latency_ms_p50 = _float(policy.get('latency_ms_p50'))
        summary.latency_ms_p99 = _float(policy.get('latency_ms_p99'))
        summary.deadline_misses = int(policy.get('deadline_misses', 0))
        summary.stale_stops = int(policy.get('stale_stops', 0))
        summary.confidence_stops = int(policy.get('confidence_stops', 0))
        summary.corroborated_commands = int(policy.get('corroborated_commands', 0))
        summary.perception_inference_ms_p50 = _float(perception.get('inference_ms_p50'))
        summary.scheduling = {name: status['scheduling'] for name, status in (
            ('sim_node', sim), ('perception_node', perception), ('policy_node', policy))
            if 'scheduling' in status}

    def fresh_after(self, instant: float) -> bool:
        """Whether the sim and the policy reported after ``instant`` (time.monotonic)."""
        return all(self.diagnostics_time.get(name, 0.0) > instant
                   for name in self.diagnostics if name.startswith(('sim_node', 'policy_node')))


class LoopMonitor:
    """Watches the running loops from inside the demo process.

    :param namespaces: one namespace per loop ('/' for a single loop in the root namespace).
    """

    def __init__(self, namespaces: Sequence[str] = ('/',)) -> None:
        rclpy.init()
        # The nodes' executor (EventsExecutor by default): the commands' receive times are
        # the jitter's measure, so the monitor's own wake-up delay must stay small.
        self.executor = make_executor()
        self.robots = [RobotMonitor(namespace) for namespace in namespaces]
        for robot in self.robots:
            self.executor.add_node(robot.node)

    def use_real_time(self) -> str:
        """Run this process's threads under SCHED_FIFO at the nodes' default priority.

        The monitor receives the commands as the arm's driver would, and a robot's driver
        runs real-time (ros2_control: SCHED_FIFO 50). Call it after the last child
        process is started: children inherit the policy.

        :return: '' or why it was refused (reacher_common.scheduling).
        """
        return use_fifo_scheduling(NodeScheduling().thread_priority)[1]

    def _spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            self.executor.spin_once(timeout_sec=min(remaining, 0.02))

    def wait_for_loop(self, processes: Processes, timeout: float) -> str | None:
        """Wait until every loop's commands flow and its simulator answers; reset its statistics.

        :param processes: the node processes, by name (for the report of one that exited).
        :return: the name of a node that exited or never came up, or None when all are ready.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in processes.items():
                if process.poll() is not None:
                    return name
            if all([robot.step_reset() for robot in self.robots]):
                return None
            self._spin(0.1)
        late = [robot.namespace for robot in self.robots if not robot.reset_done]
        waiting = [name for name, p in processes.items() if p.poll() is None
                   and any(name.startswith(namespace.rstrip('/') + '/') for namespace in late)]
        return waiting[0] if waiting else next(iter(processes), 'sim_node')

    def measure(self, duration: float, processes: Processes) -> None:
        """Spin for ``duration`` seconds, showing progress; then collect fresh diagnostics."""
        start = time.monotonic()
        for robot in self.robots:
            robot.command_times.clear()
            robot.command_values.clear()
            robot.start = start
        # disable=None: a bar on a terminal, nothing in a log file or CI.
        bar = tqdm(total=round(duration), unit='s', desc='reaching', leave=False,
                   disable=None, bar_format='{desc} |{bar}| {n:.0f}/{total:.0f} s')
        while (elapsed := time.monotonic() - start) < duration:
            if any(p.poll() is not None for p in processes.values()):
                break
            self._spin(min(0.5, duration - elapsed))
            reached = [robot.status('sim_node').get('goals_reached', '?') for robot in self.robots]
            missed = [robot.status('sim_node').get('goals_timed_out', '?')
                      for robot in self.robots]
            bar.n = min(round(elapsed), bar.total)
            bar.set_description_str(f'goals reached {"/".join(reached)}, '
                                    f'timed out {"/".join(missed)}')
        bar.close()
        end = time.monotonic()
        for robot in self.robots:
            robot.end = end
        # Diagnostics come once a second: take the first set published after the end.
        wait_until = time.monotonic() + 3.0
        while time.monotonic() < wait_until and not all(
                robot.fresh_after(end) for robot in self.robots):
            self._spin(0.05)

    def close(self) -> None:
        """Shut this process's rclpy down."""
        for robot in self.robots:
            self.executor.remove_node(robot.node)
            robot.node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown()


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else math.nan
    except ValueError:
        return math.nan
