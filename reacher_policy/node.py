"""policy_node: turns each camera frame's estimate into smoothed joint commands at a fixed rate.

Subscribes the estimate bundle of ``reacher_common.estimate_msgs``: /perception/joint_states
(sensor_msgs/JointState), /perception/goal (geometry_msgs/PointStamped) and
/perception/estimate_status (diagnostic_msgs/DiagnosticArray, the confidence), and pairs
the three parts of each frame by their stamp (``reacher_policy.bundle.FrameBundler``);
with the ``slac`` controller also /perception/latent (sensor_msgs/Image, 1 x N 32FC1), a
fourth part of the frame.
Phase-locked (``phase_lock``, the default), a frame's complete bundle is commanded at once
and the control timer (``control_rate_hz``, a whole multiple of the camera rate) is
re-aligned to it; free-running, the timer alone commands (``reacher_policy.timing`` says
why and what was measured). Each command runs the controller (``controller``: 'ik',
'learned' with a checkpoint, or 'slac' with a checkpoint and the perception's
``latent_checkpoint``) and the per-joint PID smoother (``pid.*``) and is published on
/joint_commands (std_msgs/Float64MultiArray, joint velocities in rad/s). When the newest
estimate is older than ``estimate_timeout_s``, or its confidence is below
``min_confidence`` (and dead reckoning from the last confident one does not corroborate
it: ``unsure_motion_budget_rad``), it commands zero and says so once. A goal outside the
arena, a status
that is not numbers or a confidence outside [0, 1] is dropped with a warning. A control
step that raises commands zero, is logged (throttled) and counted, and the node carries
on. /diagnostics reports the achieved rate, the timing mode, deadline misses, the period
jitter, each stage's latency (``latency.<stage>_ms.p50`` / ``.p99``,
``reacher_policy.timing.STAGES``), the stops and the errors (docs/ros.md lists the keys).
At run time ``pid.*``, ``estimate_timeout_s``, ``min_confidence``,
``unsure_motion_budget_rad``, ``min_corroborated_confidence`` and ``warn_throttle_s``
change (validated as at start-up); the other parameters are read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
import math
import time
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from reacher_common.config_tools import FieldError
from reacher_common.estimate_msgs import (
    EstimateStatus,
    GOAL_TOPIC,
    JOINTS_TOPIC,
    LATENT_TOPIC,
    read_estimate_status,
    read_latent,
    STATUS_TOPIC,
)
from reacher_common.geometry import ArmGeometry
from reacher_common.ros_params import (
    declare_config,
    parameter_message,
    ParameterError,
    refuse_parameters,
    updated_config,
)
from reacher_common.ros_utils import (
    CallbackErrors,
    diagnostic_array,
    diagnostic_status,
    JOINT_NAMES,
    RateMeter,
    run_node,
    stamp_to_nanoseconds,
    stamp_to_seconds,
)
from reacher_common.scheduling import hold_until
from reacher_policy.bundle import FrameBundler
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.loop import ControlOutput, PerceivedState, PolicyLoop
from reacher_policy.timing import PhaseLock, StageTimes

PID_PREFIX = 'pid.'
PID_FIELDS = tuple(field.name for field in fields(PidConfig))
"""Every gain and limit of the smoother changes at run time."""
LATENCY_WINDOW = 2000
CONTROL_STEP = 'control step'
"""The name under which a failed control tick is counted and logged."""
PARTS = ('joints', 'goal', 'status')
"""The parts of a frame's bundle, from JOINTS_TOPIC, GOAL_TOPIC and STATUS_TOPIC; a
controller on the latent adds 'latent' (LATENT_TOPIC)."""


def read_joints(msg: JointState) -> np.ndarray:
    """A joint estimate's positions in ``JOINT_NAMES`` order, found by name.

    :raises ValueError: naming the joints needed and the sizes found (never the payload:
        a message may hold a million names).
    """
    try:
        return np.array([msg.position[msg.name.index(name)] for name in JOINT_NAMES])
    except (ValueError, IndexError):
        raise ValueError(f'need positions for {list(JOINT_NAMES)}, got {len(msg.name)} '
                         f'names and {len(msg.position)} positions') from None


@dataclass(frozen=True)
class _FrameArrival:
    """When a frame's bundle became complete, for the stage timing of its first command."""

    stamp_s: float
    received_s: float
    status: EstimateStatus


class PolicyNode(Node):
    """The rclpy shell over :class:`reacher_policy.loop.PolicyLoop`."""

    def __init__(self) -> None:
        super().__init__('policy_node')
        self.config = declare_config(self, PolicyConfig, runtime=PolicyLoop.RUNTIME_FIELDS,
                                     geometry=declare_config(self, ArmGeometry))
        self.pid_config = declare_config(self, PidConfig, prefix=PID_PREFIX,
                                         runtime=PID_FIELDS)
        try:
            self.loop = PolicyLoop(self.config, self.pid_config)
        except FieldError as error:
            raise ParameterError(parameter_message(error)) from error
        self.period = 1.0 / self.config.control_rate_hz
        self.bundler = FrameBundler(PARTS + ('latent',) if self.loop.needs_latent else PARTS)
        self.lock = PhaseLock(self.period, locked=self.config.phase_lock)
        self.stages = StageTimes(LATENCY_WINDOW)
        self.arrival: _FrameArrival | None = None
        self.rate = RateMeter()
        self.deadline_misses = 0
        self.late_releases = 0
        self.fixed_latency_s = self.config.fixed_latency_ms * 1e-3
        if self.fixed_latency_s > 0.0 and self.get_parameter('use_sim_time').value:
            self.get_logger().warning(
                f'fixed_latency_ms {self.config.fixed_latency_ms:g} is not applied with '
                'use_sim_time: the frames are stamped in simulated time')
            self.fixed_latency_s = 0.0
        self.stale_stops = 0
        self.confidence_stops = 0
        self.corroborated_commands = 0
        self.last_corroborated = False
        self.dropped_estimates = 0
        self.errors = CallbackErrors(self, lambda: self.config.warn_throttle_s)
        self._reported_mode = ''
        self._drop_logged: dict[str, float] = {}
        guard = self.errors.guard
        self.guarded_control = guard(self.control, CONTROL_STEP, fallback=self.stop_callback)

        # Relative names: they resolve under the node's namespace (docs/architecture.md).
        self.command_pub = self.create_publisher(Float64MultiArray, 'joint_commands', 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        parts: list[tuple[str, type, str, Callable[[Any], Any], str]] = [
            ('joints', JointState, JOINTS_TOPIC, read_joints, 'joint estimate'),
            ('goal', PointStamped, GOAL_TOPIC,
             lambda msg: self.loop.check_goal([msg.point.x, msg.point.y]), 'goal estimate'),
            ('status', DiagnosticArray, STATUS_TOPIC, read_estimate_status, 'estimate status')]
        if self.loop.needs_latent:
            parts.append(('latent', Image, LATENT_TOPIC, read_latent, 'latent'))
        self.part_subscriptions: dict[str, tuple[Subscription, Callable[[Any], None]]] = {}
        for part, msg_type, topic, read, label in parts:
            callback = guard(self.part_callback(part, topic, read), label)
            self.part_subscriptions[topic] = (
                self.create_subscription(msg_type, topic, callback, 10), callback)
        self.timer = self.create_timer(self.period, guard(self.timer_callback, 'control timer'))
        self.create_timer(1.0, guard(self.publish_diagnostics, 'diagnostics'))
        self.add_on_set_parameters_callback(guard(
            self.validate_parameters, 'parameter check', fallback=refuse_parameters))
        self.add_post_set_parameters_callback(guard(self.apply_parameters, 'parameter change'))
        self.get_logger().info(
            f'controller {self.config.controller!r} at {self.config.control_rate_hz:.1f} Hz, '
            + ('phase-locked to the camera' if self.config.phase_lock else 'free-running'))

    def drop(self, topic: str, reason: str) -> None:
        """Count and report a part of an estimate that cannot be used, throttled per topic."""
        self.dropped_estimates += 1
        now = time.monotonic()
        if now - self._drop_logged.get(topic, -math.inf) >= self.config.warn_throttle_s:
            self._drop_logged[topic] = now
            self.get_logger().warning(f'dropped {topic}: {reason}')

    def take_parts_in_process(self) -> dict[str, Callable[[Any], None]]:
        """Stop reading the bundle's parts from DDS; return their callbacks by topic.

        For a perception node in this same process (``reacher.composed``), which hands
        each part over itself (``PerceptionNode.intra_process``): rclpy has no
        intra-process delivery, and a part read twice would count as late.
        """
        callbacks = {}
        for topic, (subscription, callback) in self.part_subscriptions.items():
            self.destroy_subscription(subscription)
            callbacks[topic] = callback
        self.part_subscriptions.clear()
        return callbacks

    def part_callback(self, part: str, topic: str, read: Callable[[Any], Any]
                      ) -> Callable[[Any], None]:
        """The subscription callback of one part of a frame's bundle.

        :param part: the bundle's name for it ('joints', 'goal', 'status', 'latent').
        :param topic: its topic, for the drop message.
        :param read: message -> value; a ``ValueError`` (saying why, without the payload)
            drops the message.
        """
        def callback(msg: Any) -> None:
            try:
                value = read(msg)
            except ValueError as error:
                self.drop(f'/{topic}', str(error))
                return
            self.add_part(part, msg.header.stamp, value)
        return callback

    def add_part(self, part: str, stamp: Time, value: Any) -> None:
        """Pair a part with the others of its frame; with all its parts, hand the frame over.

        Phase-locked, the complete frame is commanded at once and the control timer reset,
        so its next ticks fall whole control periods after this command.
        """
        received_s = self.now_s()
        frame = self.bundler.add(part, stamp_to_nanoseconds(stamp), value)
        if frame is None:
            return
        stamp_s = stamp_to_seconds(stamp)
        status: EstimateStatus = frame['status']
        try:
            self.loop.update_estimate(PerceivedState(
                stamp_s=stamp_s, joint_positions=frame['joints'], goal=frame['goal'],
                confidence=status.confidence, latent=frame.get('latent')))
        except ValueError as error:
            self.drop('estimate', str(error))
            return
        self.arrival = _FrameArrival(stamp_s, received_s, status)
        if self.lock.on_bundle(stamp_s):
            self.guarded_control(True)
            self.timer.reset()
        self.report_mode()

    def now_s(self) -> float:
        """The node clock's now, seconds (the clock of the frames' stamps)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def timer_callback(self) -> None:
        """A tick of the control timer: command unless a due frame is awaited."""
        if self.lock.on_tick():
            self.guarded_control(False)

    def control(self, bundle: bool) -> None:
        """One control step: controller, PID smoother, publish; timing and stops counted.

        :param bundle: a frame's bundle triggered it (else the timer).
        """
        start = time.perf_counter()
        now = self.now_s()
        output = self.loop.step(now)
        computed = time.perf_counter()
        if bundle and self.fixed_latency_s > 0.0 and self.arrival is not None:
            wait_s = self.arrival.stamp_s + self.fixed_latency_s - self.now_s()
            if wait_s > 0.0:
                hold_until(computed + min(wait_s, self.fixed_latency_s))
            else:
                self.late_releases += 1
        released = time.perf_counter()
        # The control period is the commands': measured where each one leaves.
        period = self.rate.tick()
        if period is not None and period > 1.5 * self.period:
            self.deadline_misses += 1
        self.publish_command(output)
        published = time.perf_counter()
        self.lock.commanded(bundle)
        self.report_stops(output)
        arrival, self.arrival = self.arrival, None
        if arrival is not None and not output.stale:
            status = arrival.status
            received_ms = (arrival.received_s - arrival.stamp_s) * 1e3
            self.stages.add(
                frame_to_perception=status.frame_to_perception_ms,
                inference=status.inference_ms,
                perception_to_policy=(received_ms - status.frame_to_perception_ms
                                      - status.inference_ms),
                policy_wait=(now - arrival.received_s) * 1e3,
                policy_compute=(computed - start) * 1e3,
                release_hold=(released - computed) * 1e3,
                command_publish=(published - released) * 1e3,
                total=(now - arrival.stamp_s) * 1e3 + (published - start) * 1e3)

    def report_stops(self, output: ControlOutput) -> None:
        """Say once that the arm stops (stale or unsure estimate), and count it.

        Also counts the commands that acted on an unsure estimate that dead reckoning
        corroborated (``corroborated_commands`` on /diagnostics).
        """
        self.last_corroborated = output.corroborated
        self.corroborated_commands += int(output.corroborated)
        if output.became_stale:
            self.stale_stops += 1
            self.get_logger().warning(
                f'perception estimate older than {self.config.estimate_timeout_s} s: '
                'commanding zero velocity until fresh estimates arrive')
        if output.became_unsure:
            self.confidence_stops += 1
            estimate = self.loop.estimate
            confidence = math.nan if estimate is None else estimate.confidence
            self.get_logger().warning(
                f'perception confidence {confidence:.2f} below min_confidence '
                f'{self.config.min_confidence:g}: commanding zero velocity until a confident '
                'estimate arrives')

    def report_mode(self) -> None:
        """Say once how the loop is timed, when that becomes known or changes."""
        mode = self.lock.mode
        if mode != self._reported_mode and mode != 'locking':
            self._reported_mode = mode
            frame_period = self.lock.frame_period_s or math.nan
            self.get_logger().info(
                f'control {mode}: camera period {frame_period * 1e3:.1f} ms, control period '
                f'{self.period * 1e3:.1f} ms')

    def stop_callback(self, bundle: bool = False) -> None:
        """After a control step raised: command zero and restart control from rest."""
        self.publish_command(self.loop.stop())

    def publish_command(self, output: ControlOutput) -> None:
        """Publish one command on /joint_commands."""
        self.command_pub.publish(Float64MultiArray(data=output.command.tolist()))

    def publish_diagnostics(self) -> None:
        """Rate, timing, stage latencies, stops and errors on /diagnostics (docs/ros.md)."""
        jitter_ms = np.abs(np.asarray(self.rate.periods() or [np.nan]) - self.period) * 1e3
        estimate = self.loop.estimate
        values: dict[str, Any] = {
            'rate_hz': self.rate.rate_hz(),
            'configured_rate_hz': self.config.control_rate_hz,
            'commands': self.rate.count,
            'deadline_misses': self.deadline_misses,
            'late_releases': self.late_releases,
            'latency_ms_p50': self.stages.percentile('total', 50.0),
            'latency_ms_p99': self.stages.percentile('total', 99.0),
            'latency_samples': self.stages.count('total'),
            **self.stages.summary(),
            'timing.mode': self.lock.mode,
            'timing.ticks_per_frame': self.lock.ticks_per_frame or 0,
            'timing.frame_period_ms': (self.lock.frame_period_s or math.nan) * 1e3,
            'timing.period_jitter_ms.p50': float(np.percentile(jitter_ms, 50)),
            'timing.period_jitter_ms.p99': float(np.percentile(jitter_ms, 99)),
            'timing.waits': self.lock.waits,
            'timing.watchdog_commands': self.lock.watchdog_commands,
            'frames.paired': self.bundler.complete,
            'frames.incomplete': self.bundler.incomplete,
            'frames.late_parts': self.bundler.late,
            'confidence': math.nan if estimate is None else estimate.confidence,
            'min_confidence': self.config.min_confidence,
            'stale_stops': self.stale_stops,
            'confidence_stops': self.confidence_stops,
            'corroborated_commands': self.corroborated_commands,
            'dropped_estimates': self.dropped_estimates,
            'control_errors': self.errors.counts.get(CONTROL_STEP, 0),
            'callback_errors': self.errors.total(),
            'controller': self.config.controller,
        }
        failing = self.errors.failed_since_last_asked(CONTROL_STEP)
        if failing:
            level = DiagnosticStatus.ERROR
            message = f'control step failed: {self.errors.last_error[CONTROL_STEP]}'
        elif self.loop.stale:
            level, message = DiagnosticStatus.WARN, 'stale estimate: holding still'
        elif self.loop.unsure:
            level, message = DiagnosticStatus.WARN, 'unsure estimate: holding still'
        elif self.last_corroborated:
            level = DiagnosticStatus.WARN
            message = 'unsure estimate, corroborated by dead reckoning: acting on it'
        else:
            level, message = DiagnosticStatus.OK, 'ok'
        self.diagnostics_pub.publish(diagnostic_array(
            self, [diagnostic_status(self, 'control', values, level, message)]))

    def validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Accept a change that gives valid configs; rclpy already refused read-only ones."""
        try:
            updated_config(self.config, parameters)
            updated_config(self.pid_config, parameters, PID_PREFIX)
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def apply_parameters(self, parameters: list[Parameter]) -> None:
        """Give the loop the new timing and threshold and the PID smoother the new gains."""
        config = updated_config(self.config, parameters)
        pid_config = updated_config(self.pid_config, parameters, PID_PREFIX)
        if config != self.config:
            self.loop.set_config(config)
            self.config = config
            self.get_logger().info(f'estimate_timeout_s {config.estimate_timeout_s:g} s, '
                                   f'min_confidence {config.min_confidence:g}, '
                                   f'warn_throttle_s {config.warn_throttle_s:g} s')
        if pid_config != self.pid_config:
            self.loop.set_pid_config(pid_config)
            self.pid_config = pid_config
            self.get_logger().info(f'PID updated: {pid_config}')


def main(args: list[str] | None = None) -> int:
    """Console entry point ``policy_node``."""
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
