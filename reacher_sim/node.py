"""sim_node: steps the arm at 1/dt Hz, publishes what the camera sees, obeys /joint_commands.

Publishes /camera/image_raw (rgb8), /camera/camera_info, /joint_states, /goal (ground
truth) and /visualization/markers (true arm, goal, fingertip trail) at ``camera_rate_hz``
(default: every physics step), all stamped with the time of the physics step they show,
/diagnostics (goal counters, achieved rate) every ``diagnostics_period_s``, /clock when
``publish_clock`` (then every stamp is simulation time), and /tf for the links where
tf2_msgs is installed; subscribes /joint_commands (std_msgs/Float64MultiArray, joint
velocities in rad/s, ros2_control forward-command convention); serves ~/reset and
~/new_goal (std_srvs/Trigger). Parameters: every field of ArmGeometry (config/geometry.yaml),
Timing, SimConfig, SceneConfig (as ``scene.*``) and SimNodeConfig; ``goal_timeout_s``,
``command_timeout_s``, ``warn_throttle_s`` and ``camera_rate_hz`` change at run time, the
others are read-only. ``camera_rate_hz`` must divide the physics rate 1/dt
(:func:`reacher_sim.config.frames_every`): a value that does not stops the start (exit 2)
or is refused at run time, naming it.
A malformed command is dropped with a throttled warning that gives its size, never its
values; an exception in a callback is logged (throttled), counted on /diagnostics, and the
node carries on. A scene other than 'clean' (``scene.name``) is drawn anew with each goal;
it changes the camera frames only, and /camera/camera_info gives the calibration of the
camera that drew them (a nudged camera's K and R; P stays the nominal camera), each
published just before its frame with the frame's stamp.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
import math
import time

from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock as Clock_
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.markers import arm_marker, goal_marker, link_transforms, trail_marker
from reacher_common.ros_params import (
    declare_config,
    ParameterError,
    refuse_parameters,
    updated_config,
)
from reacher_common.ros_utils import (
    array_to_image,
    CallbackErrors,
    CAMERA_FRAME,
    command_from_serialized,
    diagnostic_array,
    diagnostic_status,
    JOINT_NAMES,
    point_stamped,
    RateMeter,
    run_node,
    WORLD_FRAME,
)
from reacher_common.scheduling import hold_until
from reacher_sim.config import frames_every, SimConfig, SimNodeConfig
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import SceneConfig
from reacher_sim.task import GoalEvent, ReachingTask

SCENE_PREFIX = 'scene.'
"""ROS names of the SceneConfig fields: ``scene.name``, ``scene.noise_std_max``, ..."""

TfPublisher = Callable[[TimeMsg, np.ndarray, tuple[float, float]], None]

PAIR_READ_MAX_NS = 50_000
"""Longest gap (ns) between reading the clock and the step timer for a step's stamp: a
longer one was a preemption, and the pair is read again (a frame's stamp is its step's
instant to within this; unbounded, 0.1-0.16 ms off on the loaded 2-core machine)."""

COMMAND_DEPTH = 20
"""Depth of the /joint_commands queue. Under a 1 kHz flood of malformed 800 KB commands
(test_sim_node.py), depth 10 lost 0-12% of the policy's commands in bursts (5 runs on the
shared 2-core machine), depth 20 none (3 runs); the queue holds at most this many
messages, so its memory stays bounded."""


def make_tf_publisher(node: Node) -> TfPublisher | None:
    """A /tf publisher for world -> upper_arm -> forearm -> fingertip, where tf2_msgs exists.

    tf2_msgs is not among the PyPI ROS wheels; on a ROS install it is, and rviz2 can then
    show the links as frames too.
    """
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError:
        return None
    publisher = node.create_publisher(TFMessage, 'tf', 10)  # per arm, as Nav2's robots

    def publish(stamp: TimeMsg, joint_positions: np.ndarray,
                lengths: tuple[float, float]) -> None:
        publisher.publish(TFMessage(transforms=link_transforms(stamp, joint_positions, lengths)))

    return publish


class SimNode(Node):
    """The rclpy shell over :class:`ReachingTask` and :class:`ArmRenderer`."""

    def __init__(self) -> None:
        super().__init__('sim_node')
        self.sim_config = declare_config(
            self, SimConfig, geometry=declare_config(self, ArmGeometry),
            timing=declare_config(self, Timing),
            scene=declare_config(self, SceneConfig, prefix=SCENE_PREFIX))
        self.node_config = declare_config(self, SimNodeConfig, runtime=RUNTIME_FIELDS)
        try:
            self.frames_every = frames_every(self.node_config.camera_rate_hz,
                                             self.sim_config.timing.dt)
        except ValueError as error:
            raise ParameterError(str(error)) from error
        if self.node_config.step_wake_early_ms * 1e-3 >= self.sim_config.timing.dt:
            raise ParameterError(
                f'step_wake_early_ms={self.node_config.step_wake_early_ms!r} must be below the '
                f'physics step dt={self.sim_config.timing.dt!r} s')
        self.steps = 0
        self.frame_rate = RateMeter()
        self.task = ReachingTask(self.sim_config, self.node_config.goal_timeout_s,
                                 self.node_config.seed)
        self.renderer = ArmRenderer(self.sim_config.geometry)
        # Scenes come from a stream of their own, so the goals are the same in every scene.
        self.scene_rng = np.random.default_rng([self.node_config.seed, 1])
        self.camera_info = CameraInfo()
        self.new_scene()
        self.command = np.zeros(2)
        self.command_time = -math.inf
        self.rate = RateMeter()
        self.accepted_commands = 0
        self.dropped_commands = 0
        self.stopped_for_timeout = False
        self.errors = CallbackErrors(self, lambda: self.node_config.warn_throttle_s)
        guard = self.errors.guard

        # Relative names: they resolve under the node's namespace (docs/architecture.md).
        self.image_pub = self.create_publisher(Image, 'camera/image_raw', QoSProfile(depth=1))
        self.info_pub = self.create_publisher(CameraInfo, 'camera/camera_info', 10)
        self.joint_pub = self.create_publisher(JointState, 'joint_states', 10)
        self.goal_pub = self.create_publisher(PointStamped, 'goal', 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        # Serialized (raw): a command's size is checked before any conversion, so a flood
        # of huge commands costs little and the policy's commands keep their place in the
        # queue (COMMAND_DEPTH: 20 ms of a 1 kHz flood).
        self.create_subscription(Float64MultiArray, 'joint_commands',
                                 guard(self.command_callback, 'command'), COMMAND_DEPTH,
                                 raw=True)
        self.create_service(Trigger, '~/reset',
                            guard(self.reset_callback, 'reset', fallback=failed_trigger))
        self.create_service(Trigger, '~/new_goal',
                            guard(self.new_goal_callback, 'new goal', fallback=failed_trigger))
        self.marker_pub = self.create_publisher(MarkerArray, 'visualization/markers', 10)
        # /clock stays absolute: rclpy's time source subscribes '/clock'.
        self.clock_pub = (self.create_publisher(Clock, '/clock', 10)
                          if self.node_config.publish_clock else None)
        self.tf_pub = make_tf_publisher(self)
        self.trail: deque[np.ndarray] = deque(maxlen=self.node_config.trail_length)
        # The simulation clock: starts at one step and advances dt per step.
        self.sim_time_ns = 0
        self.tick_time_ns = 0
        # Stepping runs on the steady clock: with use_sim_time the node's own clock would
        # wait for the /clock that this very timer publishes.
        self.timer = self.create_timer(self.sim_config.timing.dt,
                                       guard(self.step_callback, 'step'),
                                       clock=Clock_(clock_type=ClockType.STEADY_TIME))
        self.create_timer(self.node_config.diagnostics_period_s,
                          guard(self.publish_diagnostics, 'diagnostics'))
        self.add_on_set_parameters_callback(guard(
            self.validate_parameters, 'parameter check', fallback=refuse_parameters))
        self.add_post_set_parameters_callback(guard(self.apply_parameters, 'parameter change'))
        self.get_logger().info(
            f'simulating at {1.0 / self.sim_config.timing.dt:.1f} Hz, '
            f'{self.sim_config.geometry.image_size}x{self.sim_config.geometry.image_size} '
            f'camera at {self.camera_rate_hz():.1f} Hz')

    def camera_rate_hz(self) -> float:
        """The configured camera rate, Hz: the physics rate over ``frames_every``."""
        return 1.0 / (self.sim_config.timing.dt * self.frames_every)

    def command_callback(self, serialized: bytes) -> None:
        """Take a joint-velocity command; drop (with a throttled warning) a malformed one.

        :param serialized: the CDR bytes of a std_msgs/Float64MultiArray; one longer than
            ``MAX_COMMAND_BYTES`` is dropped unread, and the log gives sizes, never values.
        """
        try:
            values = command_from_serialized(serialized)
        except ValueError as error:
            self.drop_command(str(error))
            return
        self.accepted_commands += 1
        self.command = values
        self.command_time = time.monotonic()
        if self.stopped_for_timeout:
            self.stopped_for_timeout = False
            self.get_logger().info('commands resumed')

    def drop_command(self, got: str) -> None:
        """Count a dropped command and say why (throttled)."""
        self.dropped_commands += 1
        self.get_logger().warning(
            f'dropped /joint_commands: need 2 finite joint velocities (rad/s) for '
            f'{list(JOINT_NAMES)}, got {got}',
            throttle_duration_sec=self.node_config.warn_throttle_s)

    def step_callback(self) -> None:
        """One physics step and (every ``frames_every`` steps) its frame, at the step's instant.

        The step timer is due ``step_wake_early_ms`` before each step's instant and fires a
        little after that (the executor's wake-up: p50 0.15 ms, p99 0.2 ms, at times
        several ms, on the 2-vCPU VM this project runs on). The step is computed and its
        frame rendered at once, from the command of the period that ends at the instant;
        then the node waits for the instant (``hold_until``; steps without a frame do not
        wait) and publishes the frame
        stamped with it, as a hardware-triggered camera stamps its trigger. The frames
        thus fall one period apart (stamps p99 0.03 ms off the period, against 1.1 ms when
        each was stamped when computed), and their latency counts from the instant the
        frame shows. A step later than its instant is published at once, stamped with its
        instant all the same.
        """
        self.rate.tick()
        entry_s = time.perf_counter()
        now_ns, late_ns = self.now_and_lateness_ns()
        lead_ns = int(self.node_config.step_wake_early_ms * 1e6)
        command = self.command
        if time.monotonic() - self.command_time > self.node_config.command_timeout_s:
            command = np.zeros(2)
            if not self.stopped_for_timeout and math.isfinite(self.command_time):
                self.get_logger().warning(
                    f'no /joint_commands for {self.node_config.command_timeout_s} s: '
                    'holding the arm still')
                self.stopped_for_timeout = True
        _, event = self.task.step(command)
        self.sim_time_ns += int(round(self.sim_config.timing.dt * 1e9))
        if event is not None:
            self.new_scene()
        self.steps += 1
        frame = None
        if self.steps >= self.frames_every:
            self.steps = 0
            arm = self.task.arm
            frame = self.renderer.render(arm.joint_positions, arm.goal)
        # Only a step with a frame waits: between frames (physics faster than the camera)
        # nothing reads a step's wall-clock instant, and each wait blocks the executor.
        if frame is not None and late_ns < lead_ns:
            hold_until(entry_s + (lead_ns - late_ns) * 1e-9)
        self.tick_time_ns = now_ns - late_ns + lead_ns
        if self.clock_pub is not None:  # first: a node on it must not see a frame from its future
            self.clock_pub.publish(Clock(clock=self._stamp()))
        if frame is not None:
            self.publish_state(frame)
        if event is not None:
            stats = self.task.stats()
            self.get_logger().info(
                f'goal {event.value}: {stats.goals_reached} reached, '
                f'{stats.goals_timed_out} timed out')
            if event is GoalEvent.REACHED:
                self.publish_diagnostics()

    def now_and_lateness_ns(self) -> tuple[int, int]:
        """The node clock's now and the step timer's lateness, ns, read back to back.

        The step's instant is ``now - lateness``: a pause between the two reads (the
        process preempted on a busy machine) shifts it by the pause. A pair read more than
        ``PAIR_READ_MAX_NS`` apart is read again, up to three times.
        """
        for _ in range(3):
            began_ns = time.perf_counter_ns()
            now_ns = self.get_clock().now().nanoseconds
            late_ns = self.timer_lateness_ns()
            if time.perf_counter_ns() - began_ns <= PAIR_READ_MAX_NS:
                break
        return now_ns, late_ns

    def timer_lateness_ns(self) -> int:
        """How long after it was due the step timer fired, ns, in [0, period] (call from it)."""
        until_next_ns = self.timer.time_until_next_call()
        if until_next_ns is None:
            return 0
        period_ns = self.timer.timer_period_ns
        return min(max(period_ns - until_next_ns, 0), period_ns)

    def _stamp(self) -> TimeMsg:
        """Simulation time with publish_clock, else the step's instant on the node clock."""
        if self.node_config.publish_clock:
            return TimeMsg(sec=self.sim_time_ns // 10**9, nanosec=self.sim_time_ns % 10**9)
        return TimeMsg(sec=self.tick_time_ns // 10**9, nanosec=self.tick_time_ns % 10**9)

    def publish_state(self, frame: np.ndarray) -> None:
        """Publish the camera frame, camera info, joint states, goal and markers of the step.

        :param frame: (H, W, 3) uint8 rgb8, the step's rendered frame.
        """
        self.frame_rate.tick()
        arm = self.task.arm
        stamp = self._stamp()
        camera_header = Header(stamp=stamp, frame_id=CAMERA_FRAME)
        # The calibration goes first, so a subscriber that rectifies has the frame's own
        # when the frame arrives.
        self.camera_info.header = camera_header
        self.info_pub.publish(self.camera_info)
        self.image_pub.publish(array_to_image(frame, camera_header))
        joints = JointState(header=Header(stamp=stamp, frame_id=WORLD_FRAME),
                            name=list(JOINT_NAMES),
                            position=arm.joint_positions.tolist(),
                            velocity=arm.joint_velocities.tolist())
        self.joint_pub.publish(joints)
        self.goal_pub.publish(point_stamped(arm.goal, Header(stamp=stamp, frame_id=WORLD_FRAME)))
        self.trail.append(arm.fingertip)
        cfg = self.sim_config.geometry
        lengths = (cfg.upper_arm_length_m, cfg.forearm_length_m)
        self.marker_pub.publish(MarkerArray(markers=[
            arm_marker('sim/arm', arm.joint_positions, lengths, stamp, (0.3, 0.55, 1.0, 1.0),
                       cfg.link_width_m),
            goal_marker('sim/goal', arm.goal, cfg.goal_size_m, stamp, (0.25, 0.8, 0.3, 0.8)),
            trail_marker('sim/trail', list(self.trail), stamp, (1.0, 0.6, 0.15, 0.8)),
        ]))
        if self.tf_pub is not None:
            self.tf_pub(stamp, arm.joint_positions, lengths)

    def publish_diagnostics(self) -> None:
        """Goal counters and the achieved simulation rate on /diagnostics."""
        stats = self.task.stats()
        values = {
            'goals_reached': stats.goals_reached,
            'goals_timed_out': stats.goals_timed_out,
            'success_rate': stats.success_rate,
            'mean_time_to_goal_s': stats.mean_time_to_goal_s,
            'current_goal_age_s': stats.current_goal_age_s,
            'task_time_s': self.task.time_s,
            'rate_hz': self.rate.rate_hz(),
            'configured_rate_hz': 1.0 / self.sim_config.timing.dt,
            'camera_rate_hz': self.frame_rate.rate_hz(),
            'configured_camera_rate_hz': self.camera_rate_hz(),
            'commands': self.accepted_commands,
            'dropped_commands': self.dropped_commands,
            'callback_errors': self.errors.total(),
        }
        self.diagnostics_pub.publish(diagnostic_array(
            self, [diagnostic_status(self, 'task', values)]))

    def new_scene(self) -> None:
        """Draw the next scene (with each goal: a new object in a new spot of the room)."""
        config = self.sim_config.scene
        if config.families:
            self.renderer.set_scene(config.sample(self.scene_rng, self.renderer.avoid_colours))
        # The camera of this scene (a nudged one in the camera family): perception
        # rectifies each frame with it.
        self.camera_info = CameraInfo(**self.renderer.calibration.message_fields())

    def validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Accept a change of the run-time fields that keeps the config valid.

        rclpy has already refused the read-only parameters, a changed type and a value
        outside the declared range.
        """
        try:
            config = updated_config(self.node_config, parameters)
            frames_every(config.camera_rate_hz, self.sim_config.timing.dt)
        except (ParameterError, ValueError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def apply_parameters(self, parameters: list[Parameter]) -> None:
        """Use the new timeouts, throttle and camera rate from the next step on.

        A new camera rate takes its first frame on the next step, and its rate meter
        starts anew.
        """
        config = updated_config(self.node_config, parameters)
        if config != self.node_config:
            if config.camera_rate_hz != self.node_config.camera_rate_hz:
                self.frames_every = frames_every(config.camera_rate_hz,
                                                 self.sim_config.timing.dt)
                self.steps = self.frames_every - 1
                self.frame_rate = RateMeter()
            self.node_config = config
            self.task.goal_timeout_s = config.goal_timeout_s
            self.get_logger().info(
                f'goal_timeout_s {config.goal_timeout_s:g} s, command_timeout_s '
                f'{config.command_timeout_s:g} s, warn_throttle_s {config.warn_throttle_s:g} '
                f's, camera at {self.camera_rate_hz():g} Hz')

    def reset_callback(self, request: Trigger.Request, response: Trigger.Response
                       ) -> Trigger.Response:
        """~/reset: new pose and goal, statistics cleared."""
        self.task.reset()
        self.new_scene()
        response.success, response.message = True, 'arm, goal and statistics reset'
        self.get_logger().info(response.message)
        return response

    def new_goal_callback(self, request: Trigger.Request, response: Trigger.Response
                          ) -> Trigger.Response:
        """~/new_goal: replace the goal now (not counted as missed)."""
        self.task.new_goal()
        self.new_scene()
        goal = self.task.arm.goal
        response.success = True
        response.message = f'new goal at ({goal[0]:.3f}, {goal[1]:.3f}) m'
        return response


RUNTIME_FIELDS = ('goal_timeout_s', 'command_timeout_s', 'warn_throttle_s', 'camera_rate_hz')
"""The fields of :class:`SimNodeConfig` that the node applies at run time."""


def failed_trigger(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
    """A service's answer when its callback raised (the error is logged)."""
    response.success, response.message = False, 'failed: see the sim_node log'
    return response


def main(args: list[str] | None = None) -> int:
    """Console entry point ``sim_node``."""
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
