"""policy_node: turns perception estimates into smoothed joint commands at a fixed rate.

Subscribes /perception/joint_states (sensor_msgs/JointState) and /perception/goal
(geometry_msgs/PointStamped); on a timer at ``control_rate_hz`` it runs the controller
(``controller`` parameter: 'ik', or 'learned' with a checkpoint) and the per-joint PID
smoother (``pid.*`` parameters, changeable at run time) and publishes /joint_commands
(std_msgs/Float64MultiArray, joint velocities in rad/s). When the newest estimate is older
than ``estimate_timeout_s`` it commands zero and says so once. A goal outside the arena is
dropped with a warning. A control step that raises commands zero, is logged (throttled)
and counted, and the node carries on. /diagnostics reports the achieved rate, deadline
misses, the camera-to-command latency and the errors. At run time ``pid.*``,
``estimate_timeout_s`` and ``warn_throttle_s`` change (validated as at start-up); the
other parameters are read-only.
"""

from __future__ import annotations

from dataclasses import fields

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from reacher_common.config_tools import FieldError
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
    stamp_to_seconds,
)
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.loop import ControlOutput, PerceivedState, PolicyLoop

PID_PREFIX = 'pid.'
PID_FIELDS = tuple(field.name for field in fields(PidConfig))
"""Every gain and limit of the smoother changes at run time."""
LATENCY_WINDOW = 2000
CONTROL_STEP = 'control step'
"""The name under which a failed control tick is counted and logged."""


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
        self.goal: np.ndarray | None = None
        self.rate = RateMeter()
        self.latencies_ms: list[float] = []
        self.deadline_misses = 0
        self.stale_stops = 0
        self.dropped_estimates = 0
        self.errors = CallbackErrors(self, lambda: self.config.warn_throttle_s)
        self._reported_control_errors = 0
        guard = self.errors.guard

        # Relative names: they resolve under the node's namespace (docs/architecture.md).
        self.command_pub = self.create_publisher(Float64MultiArray, 'joint_commands', 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self.create_subscription(JointState, 'perception/joint_states',
                                 guard(self.joints_callback, 'joint estimate'), 10)
        self.create_subscription(PointStamped, 'perception/goal',
                                 guard(self.goal_callback, 'goal estimate'), 10)
        self.period = 1.0 / self.config.control_rate_hz
        self.create_timer(self.period, guard(self.control_callback, CONTROL_STEP,
                                             fallback=self.stop_callback))
        self.create_timer(1.0, guard(self.publish_diagnostics, 'diagnostics'))
        self.add_on_set_parameters_callback(guard(
            self.validate_parameters, 'parameter check', fallback=refuse_parameters))
        self.add_post_set_parameters_callback(guard(self.apply_parameters, 'parameter change'))
        self.get_logger().info(f'controller {self.config.controller!r} at '
                               f'{self.config.control_rate_hz:.1f} Hz')

    def goal_callback(self, msg: PointStamped) -> None:
        """Keep the newest goal estimate that lies in the arena."""
        try:
            self.goal = self.loop.check_goal([msg.point.x, msg.point.y])
        except ValueError as error:
            self.dropped_estimates += 1
            self.get_logger().warning(f'dropped /perception/goal: {error}',
                                      throttle_duration_sec=self.config.warn_throttle_s)

    def joints_callback(self, msg: JointState) -> None:
        """Combine the joint estimate with the newest goal into the loop's input."""
        try:
            positions = np.array([msg.position[msg.name.index(name)] for name in JOINT_NAMES])
        except (ValueError, IndexError):
            self.dropped_estimates += 1
            # Sizes only: a message may hold a million names.
            self.get_logger().warning(
                f'dropped /perception/joint_states: need positions for {list(JOINT_NAMES)}, '
                f'got {len(msg.name)} names and {len(msg.position)} positions',
                throttle_duration_sec=self.config.warn_throttle_s)
            return
        if self.goal is None:
            return
        try:
            self.loop.update_estimate(PerceivedState(
                stamp_s=stamp_to_seconds(msg.header.stamp), joint_positions=positions,
                goal=self.goal))
        except ValueError as error:
            self.dropped_estimates += 1
            self.get_logger().warning(f'dropped estimate: {error}',
                                      throttle_duration_sec=self.config.warn_throttle_s)

    def control_callback(self) -> None:
        """One control step: controller, PID smoother, publish."""
        period = self.rate.tick()
        if period is not None and period > 1.5 * self.period:
            self.deadline_misses += 1
        now = self.get_clock().now().nanoseconds * 1e-9
        output = self.loop.step(now)
        self.publish_command(output)
        if output.became_stale:
            self.stale_stops += 1
            self.get_logger().warning(
                f'perception estimate older than {self.config.estimate_timeout_s} s: '
                'commanding zero velocity until fresh estimates arrive')
        if not output.stale and output.estimate_age_s is not None:
            self.latencies_ms.append(output.estimate_age_s * 1e3)
            del self.latencies_ms[:-LATENCY_WINDOW]

    def stop_callback(self) -> None:
        """After a control step raised: command zero and restart control from rest."""
        self.publish_command(self.loop.stop())

    def publish_command(self, output: ControlOutput) -> None:
        """Publish one command on /joint_commands."""
        self.command_pub.publish(Float64MultiArray(data=output.command.tolist()))

    def publish_diagnostics(self) -> None:
        """Achieved rate, deadline misses, latency and stale stops on /diagnostics."""
        latencies = np.asarray(self.latencies_ms or [np.nan])
        values = {
            'rate_hz': self.rate.rate_hz(),
            'configured_rate_hz': self.config.control_rate_hz,
            'commands': self.rate.count,
            'deadline_misses': self.deadline_misses,
            'latency_ms_p50': float(np.percentile(latencies, 50)),
            'latency_ms_p99': float(np.percentile(latencies, 99)),
            'latency_samples': len(self.latencies_ms),
            'stale_stops': self.stale_stops,
            'dropped_estimates': self.dropped_estimates,
            'control_errors': self.errors.counts.get(CONTROL_STEP, 0),
            'callback_errors': self.errors.total(),
            'controller': self.config.controller,
        }
        control_errors = self.errors.counts.get(CONTROL_STEP, 0)
        failing = control_errors > self._reported_control_errors
        self._reported_control_errors = control_errors
        if failing:
            level = DiagnosticStatus.ERROR
            message = f'control step failed: {self.errors.last_error[CONTROL_STEP]}'
        elif self.loop.stale:
            level, message = DiagnosticStatus.WARN, 'stale estimate: holding still'
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
        """Give the loop the new timing and the PID smoother the new gains."""
        config = updated_config(self.config, parameters)
        pid_config = updated_config(self.pid_config, parameters, PID_PREFIX)
        if config != self.config:
            self.loop.set_config(config)
            self.config = config
            self.get_logger().info(f'estimate_timeout_s {config.estimate_timeout_s:g} s, '
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
