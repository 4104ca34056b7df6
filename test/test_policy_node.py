"""policy_node as a real process: commands, stale and confidence stops, pairing by stamp,
phase lock, parameters, faults."""

import math
from pathlib import Path
import shutil
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, Header

from reacher_common.estimate_msgs import estimate_status
from reacher_common.geometry import ArmGeometry
from reacher_common.ros_utils import array_to_image
from reacher_sim.render import ArmRenderer

from ros_support import (
    CONFIG,
    damaged_copy,
    DAMAGES,
    latest_diagnostics,
    NodeProcess,
    ParameterClient,
    running,
)

pytestmark = pytest.mark.ros

HERE = Path(__file__).resolve().parent
FAULTY = [sys.executable, str(HERE / 'faulty_backends.py'), 'policy_node']
SHIPPED_ACTOR = HERE.parent / 'checkpoints' / 'sac_reacher_20hz.pt'


@pytest.fixture
def policy(tmp_path):
    process = NodeProcess('policy_node', tmp_path, 'policy.yaml')
    with running(process):
        yield process


def test_commands_toward_the_goal_then_stop_when_estimates_go_stale(policy, collector):
    collector.listen('/joint_commands', Float64MultiArray)
    estimates = Estimates(collector)
    assert collector.spin_until(lambda: collector.messages['/joint_commands'], 20), \
        policy.output()
    # With no estimate yet the node holds the arm still.
    assert collector.messages['/joint_commands'][-1].data.tolist() == [0.0, 0.0]
    estimates.stream(1.0)
    command = np.array(collector.messages['/joint_commands'][-1].data)
    assert command.shape == (2,) and command[0] > 0.05  # the goal is counter-clockwise
    assert np.all(np.abs(command) <= 1.0 + 1e-9)
    # No more estimates: after estimate_timeout_s the node commands zero, and says so once.
    collector.spin_for(1.5)
    assert collector.messages['/joint_commands'][-1].data.tolist() == [0.0, 0.0]
    assert policy.output().count('older than') == 1


def test_malformed_estimates_are_dropped(policy, collector):
    collector.listen('/joint_commands', Float64MultiArray)
    joints_pub = collector.node.create_publisher(JointState, '/perception/joint_states', 10)
    goal_pub = collector.node.create_publisher(PointStamped, '/perception/goal', 10)
    assert collector.spin_until(lambda: collector.messages['/joint_commands'], 20)
    header = Header(frame_id='world', stamp=collector.node.get_clock().now().to_msg())
    goal = PointStamped(header=header)
    goal.point.x = float('nan')
    goal_pub.publish(goal)
    joints_pub.publish(JointState(header=header, name=['wrist'], position=[0.1]))
    estimates = Estimates(collector)
    bad_status = estimate_status(header, {})
    bad_status.status[0].values[0].value = 'very sure'
    estimates.status_pub.publish(bad_status)
    estimates.send(confidence=2.0)  # a complete frame, but a confidence out of [0, 1]
    collector.spin_for(0.5)
    assert policy.alive()
    output = policy.output()
    assert 'dropped /perception/goal' in output and 'dropped /perception/joint_states' in output
    assert 'dropped /perception/estimate_status: confidence is not a number' in output
    assert 'dropped estimate: confidence must be in [0, 1]' in output
    assert collector.messages['/joint_commands'][-1].data.tolist() == [0.0, 0.0]


def test_pid_gains_change_at_run_time_and_bad_values_are_rejected(policy, collector):
    client = collector.node.create_client(SetParameters, '/policy_node/set_parameters')
    assert client.wait_for_service(timeout_sec=20), policy.output()

    def set_parameter(name, value):
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()])
        future = client.call_async(request)
        rclpy.spin_until_future_complete(collector.node, future, timeout_sec=10)
        return future.result().results[0]

    assert set_parameter('pid.kp', 2.5).successful
    rejected = set_parameter('pid.kp', -1.0)
    assert not rejected.successful and 'pid.kp' in rejected.reason
    fixed = set_parameter('control_rate_hz', 50.0)
    assert not fixed.successful and 'read-only' in fixed.reason


@pytest.mark.parametrize('params, named', [
    ({'control_rate_hz': -5.0}, 'control_rate_hz'),
    ({'min_confidence': 1.5}, 'min_confidence'),
    ({'min_confidence': -0.1}, 'min_confidence'),
    ({'pid.kp': -1.0}, 'pid.kp'),
    ({'controller': 'telepathy'}, 'ik'),
    ({'fixed_latency_ms': 50.0}, 'fixed_latency_ms'),  # not below the 50 ms period
    ({'fixed_latency_ms': -1.0}, 'fixed_latency_ms'),
])
def test_bad_parameters_stop_the_start(tmp_path, params, named):
    process = NodeProcess('policy_node', tmp_path, 'policy.yaml', params)
    with running(process):
        assert process.wait(30) == 2
    assert 'cannot start' in process.output() and named in process.output()


class Estimates:
    """Publishes estimate bundles as perception_node does: joints, goal, status, one stamp."""

    def __init__(self, collector):
        self.collector = collector
        self.joints_pub = collector.node.create_publisher(
            JointState, '/perception/joint_states', 10)
        self.goal_pub = collector.node.create_publisher(PointStamped, '/perception/goal', 10)
        self.status_pub = collector.node.create_publisher(
            DiagnosticArray, '/perception/estimate_status', 10)

    def send(self, goal=(0.0, 0.15), joints=(0.0, 0.0), confidence=0.9, stamp=None,
             parts=('joints', 'goal', 'status')):
        header = Header(frame_id='world',
                        stamp=stamp or self.collector.node.get_clock().now().to_msg())
        msg = PointStamped(header=header)
        msg.point.x, msg.point.y = float(goal[0]), float(goal[1])
        if 'joints' in parts:
            self.joints_pub.publish(JointState(header=header, name=['shoulder', 'elbow'],
                                               position=[float(v) for v in joints]))
        if 'goal' in parts:
            self.goal_pub.publish(msg)
        if 'status' in parts:
            self.status_pub.publish(estimate_status(header, {'confidence': confidence}))
        return header.stamp

    def stream(self, seconds, period=0.05, **kwargs):
        """Send at the camera's 20 Hz for ``seconds``, spinning the collector meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.send(**kwargs)
            self.collector.spin_for(period)


def last_command(collector):
    return np.array(collector.messages['/joint_commands'][-1].data)


def moving(collector):
    command = last_command(collector)
    return bool(np.all(np.isfinite(command)) and np.abs(command).max() > 0.05)


@pytest.fixture
def learned(tmp_path):
    """policy_node with the learned controller on a copy of the shipped actor."""
    checkpoint = tmp_path / 'actor.pt'
    shutil.copy(SHIPPED_ACTOR, checkpoint)
    process = NodeProcess('policy_node', tmp_path, 'policy.yaml',
                          {'controller': 'learned', 'checkpoint': str(checkpoint)})
    with running(process):
        yield process, checkpoint


def test_zero_kp_with_the_learned_controller_keeps_the_node_commanding(learned, collector):
    policy, _ = learned
    collector.listen('/joint_commands', Float64MultiArray)
    parameters = ParameterClient(collector, 'policy_node')
    assert parameters.wait(), policy.output()
    assert parameters.set('pid.kp', 0.0).successful
    # The actor's velocity does not pass through kp, so kp = 0 neither divides by zero
    # nor stops the arm.
    Estimates(collector).stream(1.0)
    assert policy.alive(), policy.output()[-3000:]
    assert moving(collector), last_command(collector)


def test_goals_outside_the_arena_are_dropped_with_a_warning(learned, collector):
    policy, _ = learned
    collector.listen('/joint_commands', Float64MultiArray)
    collector.listen('/diagnostics', DiagnosticArray)
    estimates = Estimates(collector)
    assert collector.spin_until(lambda: collector.messages['/joint_commands'], 30), \
        policy.output()
    # Finite, but beyond float32: the actor's input would overflow.
    estimates.stream(1.0, goal=(1e300, 1e300))
    assert policy.alive(), policy.output()[-3000:]
    assert 'outside the arena' in policy.output()
    assert all(np.all(np.isfinite(m.data)) for m in collector.messages['/joint_commands'])
    assert last_command(collector).tolist() == [0.0, 0.0]
    assert collector.spin_until(lambda: int((latest_diagnostics(collector, 'policy_node') or {})
                                            .get('dropped_estimates', 0)) >= 10, 3)
    estimates.stream(0.5)
    assert moving(collector)


def test_gain_changes_neither_rebuild_the_controller_nor_reload_the_checkpoint(learned,
                                                                               collector):
    policy, checkpoint = learned
    collector.listen('/joint_commands', Float64MultiArray)
    parameters = ParameterClient(collector, 'policy_node')
    # Commands flow once the checkpoint is loaded.
    assert collector.spin_until(lambda: collector.messages['/joint_commands'], 30), \
        policy.output()
    assert parameters.wait(), policy.output()
    checkpoint.unlink()
    for kp in (3.0, 2.0, 2.5):
        assert parameters.set('pid.kp', kp).successful
    Estimates(collector).stream(0.6)
    assert policy.alive(), policy.output()[-3000:]
    assert moving(collector)


def test_a_failing_control_step_commands_zero_is_counted_and_the_node_keeps_running(
        tmp_path, collector):
    policy = NodeProcess('policy_node', tmp_path, 'policy.yaml', {'controller': 'faulty'},
                         program=FAULTY)
    collector.listen('/joint_commands', Float64MultiArray)
    collector.listen('/diagnostics', DiagnosticArray)
    estimates = Estimates(collector)
    with running(policy):
        assert collector.spin_until(lambda: collector.messages['/joint_commands'], 30), \
            policy.output()
        estimates.stream(0.5)
        assert moving(collector)
        estimates.stream(1.0, goal=(-0.05, 0.15))  # the controller raises on every tick
        assert policy.alive(), policy.output()[-3000:]
        assert last_command(collector).tolist() == [0.0, 0.0]

        def errors():
            for array in reversed(collector.messages['/diagnostics']):
                for status in array.status:
                    if status.name.startswith('policy_node'):
                        values = {kv.key: kv.value for kv in status.values}
                        return int(values.get('control_errors', 0)), status.level
            return 0, None

        assert collector.spin_until(lambda: errors()[0] >= 10, 3), errors()
        assert errors()[1] == DiagnosticStatus.ERROR
        estimates.stream(0.5)  # the fault is gone: control resumes
        assert moving(collector)
        # Throttled: a tick's failure is not a line per tick.
        assert 1 <= policy.output().count('control step failed') <= 2


def test_a_dead_perception_is_detected_within_three_frame_periods(policy, collector):
    zero_at = []

    def on_command(msg):
        if not zero_at and stopped and list(msg.data) == [0.0, 0.0]:
            zero_at.append(time.monotonic())

    stopped = []
    collector.listen('/joint_commands', Float64MultiArray)
    collector.node.create_subscription(Float64MultiArray, '/joint_commands', on_command, 10)
    estimates = Estimates(collector)
    assert collector.spin_until(lambda: collector.messages['/joint_commands'], 20)
    estimates.stream(1.0)
    assert moving(collector)
    estimates.send()
    last_sent = time.monotonic()
    stopped.append(True)  # perception dies: no estimate after this one
    assert collector.spin_until(lambda: zero_at, 2)
    detection_s = zero_at[0] - last_sent
    # Three camera periods (0.15 s) and one control tick; today's timeout took ~0.5 s.
    assert detection_s < 0.3, f'steered blind for {detection_s:.3f} s'


def test_parameters_declare_ranges_and_keep_their_type(policy, collector):
    parameters = ParameterClient(collector, 'policy_node')
    assert parameters.wait(), policy.output()
    kp = parameters.describe('pid.kp')
    assert kp.type == ParameterType.PARAMETER_DOUBLE and not kp.read_only
    assert (kp.floating_point_range[0].from_value,
            kp.floating_point_range[0].to_value) == (0.0, 100.0)
    rate = parameters.describe('control_rate_hz')
    assert rate.read_only and rate.floating_point_range[0].to_value == 1000.0
    assert parameters.describe('image_size').integer_range[0].to_value == 1024
    assert parameters.describe('controller').read_only
    # ros2 param set /policy_node pid.kp 3: an integer does not turn the double into one.
    refused = parameters.set('pid.kp', 3)
    assert not refused.successful and 'type' in refused.reason
    assert parameters.get('pid.kp') == 2.5 and isinstance(parameters.get('pid.kp'), float)
    for name, value in (('pid.kp', math.nan), ('pid.kp', 1e9), ('pid.output_limit', 0.0),
                        ('estimate_timeout_s', 0.0), ('controller', 'learned'),
                        ('upper_arm_length_m', 0.2)):
        result = parameters.set(name, value)
        assert not result.successful, (name, value)
        assert result.reason.strip() and not result.reason.rstrip('.').endswith('()'), \
            result.reason
    assert parameters.set('pid.kp', 3.0).successful
    assert parameters.get('pid.kp') == 3.0
    assert parameters.set('estimate_timeout_s', 0.3).successful
    assert policy.alive()


def test_integer_yaml_values_start_as_doubles(tmp_path, collector):
    params = tmp_path / 'policy.yaml'
    params.write_text((CONFIG / 'policy.yaml').read_text().replace('kp: 2.5', 'kp: 4'))
    process = NodeProcess('policy_node', tmp_path, str(params))
    with running(process):
        parameters = ParameterClient(collector, 'policy_node')
        assert parameters.wait(), process.output()
        value = parameters.get('pid.kp')
        assert value == 4.0 and isinstance(value, float)
        assert parameters.set('pid.kp', 3.5).successful


@pytest.mark.parametrize('damage', DAMAGES)
def test_a_corrupt_actor_checkpoint_stops_the_start_in_one_line(tmp_path, damage):
    checkpoint = damaged_copy(SHIPPED_ACTOR, tmp_path / 'actor.pt', damage)
    process = NodeProcess('policy_node', tmp_path, 'policy.yaml',
                          {'controller': 'learned', 'checkpoint': str(checkpoint)})
    with running(process):
        assert process.wait(60) == 2, process.output()
    lines = process.output().strip().splitlines()
    assert len(lines) == 1 and str(checkpoint) in lines[0], lines


def diagnostics_value(collector, key):
    return (latest_diagnostics(collector, 'policy_node') or {}).get(key)


def test_low_confidence_stops_the_arm_once_counts_it_and_resumes(policy, collector):
    collector.listen('/joint_commands', Float64MultiArray)
    collector.listen('/diagnostics', DiagnosticArray)
    estimates = Estimates(collector)
    assert collector.spin_until(lambda: collector.messages['/joint_commands'], 20), \
        policy.output()
    estimates.stream(0.6, confidence=0.9)
    assert moving(collector)
    estimates.stream(0.6, confidence=0.2)  # the estimator is unsure: the arm stops
    assert last_command(collector).tolist() == [0.0, 0.0]
    assert policy.output().count('below min_confidence') == 1
    assert collector.spin_until(lambda: diagnostics_value(collector, 'confidence_stops') == '1',
                                3), latest_diagnostics(collector, 'policy_node')
    estimates.stream(0.6, confidence=0.8)  # confident again: it resumes
    assert moving(collector)
    estimates.stream(0.6, confidence=math.nan)  # no confidence given: no stop
    assert moving(collector)
    assert policy.output().count('below min_confidence') == 1
    assert diagnostics_value(collector, 'stale_stops') == '0'


def test_min_confidence_changes_at_run_time_and_out_of_range_is_refused_by_name(policy,
                                                                                 collector):
    collector.listen('/joint_commands', Float64MultiArray)
    parameters = ParameterClient(collector, 'policy_node')
    assert parameters.wait(), policy.output()
    for value in (1.5, -0.1, math.nan):
        refused = parameters.set('min_confidence', value)
        assert not refused.successful and 'min_confidence' in refused.reason, refused.reason
    assert parameters.get('min_confidence') == 0.5
    refused = parameters.set('unsure_motion_budget_rad', -1.0)
    assert not refused.successful and 'unsure_motion_budget_rad' in refused.reason
    # No corroboration by dead reckoning: the threshold alone decides.
    assert parameters.set('unsure_motion_budget_rad', 0.0).successful
    assert parameters.get('unsure_motion_budget_rad') == 0.0
    estimates = Estimates(collector)
    estimates.stream(0.5, confidence=0.7)
    assert moving(collector)
    assert parameters.set('min_confidence', 0.75).successful
    estimates.stream(0.5, confidence=0.7)
    assert last_command(collector).tolist() == [0.0, 0.0]
    assert 'min_confidence 0.75' in policy.output()


def test_the_joints_and_the_goal_of_the_same_frame_are_paired_by_stamp(tmp_path, collector):
    # No rate limit: each command shows the goal it was computed for at once.
    policy = NodeProcess('policy_node', tmp_path, 'policy.yaml',
                         {'pid.rate_limit': 0.0, 'estimate_timeout_s': 5.0})
    collector.listen('/joint_commands', Float64MultiArray)
    collector.listen('/diagnostics', DiagnosticArray)
    estimates = Estimates(collector)
    ccw, cw = (0.0, 0.15), (0.0, -0.15)  # the shoulder turns positive / negative
    with running(policy):
        assert collector.spin_until(lambda: collector.messages['/joint_commands'], 20), \
            policy.output()
        first = collector.node.get_clock().now()
        frame_a, frame_b = first.to_msg(), (first + rclpy.duration.Duration(
            nanoseconds=50_000_000)).to_msg()
        # Frame B's goal arrives before frame A is complete, and after A's joints.
        estimates.send(stamp=frame_a, goal=ccw, parts=('joints',))
        estimates.send(stamp=frame_b, goal=cw, parts=('goal',))
        collector.spin_for(0.3)
        assert last_command(collector).tolist() == [0.0, 0.0]  # nothing complete yet
        collector.messages['/joint_commands'].clear()
        estimates.send(stamp=frame_a, goal=ccw, parts=('goal', 'status'))
        assert collector.spin_until(lambda: collector.messages['/joint_commands'], 2)
        assert last_command(collector)[0] > 0.05, last_command(collector)  # A's own goal
        collector.spin_for(0.3)
        assert last_command(collector)[0] > 0.05
        collector.messages['/joint_commands'].clear()
        estimates.send(stamp=frame_b, goal=cw, parts=('joints', 'status'))
        assert collector.spin_until(lambda: collector.messages['/joint_commands'], 2)
        assert last_command(collector)[0] < -0.05, last_command(collector)  # B's own goal
        assert collector.spin_until(
            lambda: diagnostics_value(collector, 'frames.paired') == '2', 3)
        assert policy.output().count('dropped') == 0


def send_frames(estimates, seconds, period=0.05):
    """Bundles on an exact camera clock (stamps k * period), sent on that schedule."""
    clock = estimates.collector.node.get_clock()
    first, start = clock.now(), time.monotonic()
    k = 0
    while time.monotonic() - start < seconds:
        estimates.send(stamp=(first + rclpy.duration.Duration(
            nanoseconds=round(k * period * 1e9))).to_msg())
        k += 1
        while time.monotonic() - start < k * period:  # finer than Collector.spin_until
            rclpy.spin_once(estimates.collector.node, timeout_sec=0.002)


@pytest.mark.parametrize('rate_hz, phase_lock, mode, ticks', [
    (20.0, True, 'phase-locked', '1'), (40.0, True, 'phase-locked', '2'),
    (20.0, False, 'free', '0')])
def test_phase_lock_commands_on_each_frame_and_ticks_between(tmp_path, collector, rate_hz,
                                                             phase_lock, mode, ticks):
    policy, values = diagnostics_after_frames(
        tmp_path, collector, {'control_rate_hz': rate_hz, 'phase_lock': phase_lock}, 3.0, 30)
    assert values['timing.mode'] == mode and values['timing.ticks_per_frame'] == ticks
    assert float(values['rate_hz']) == pytest.approx(rate_hz, rel=0.1)
    # Locked, the frame's command is computed in the callback that completed its
    # bundle; free-running, it waits for the next tick (up to a period).
    wait_p50 = float(values['latency.policy_wait_ms.p50'])
    assert (wait_p50 < 2.0) if phase_lock else (wait_p50 > 2.0), values
    for stage in ('frame_to_perception', 'inference'):  # the test sends no timing
        assert values[f'latency.{stage}_ms.p50'] == 'nan'
    assert float(values['latency.total_ms.p50']) > 0.0
    assert f'control {mode}' in policy.output() or not phase_lock


def diagnostics_after_frames(tmp_path, collector, params, seconds, samples):
    """A policy_node with ``params`` fed bundles on an exact camera clock for ``seconds``;
    returns it (stopped) and its /diagnostics once it counts more than ``samples`` frames."""
    policy = NodeProcess('policy_node', tmp_path, 'policy.yaml', params)
    collector.listen('/joint_commands', Float64MultiArray)
    collector.listen('/diagnostics', DiagnosticArray)
    estimates = Estimates(collector)
    with running(policy):
        assert collector.spin_until(lambda: collector.messages['/joint_commands'], 20), \
            policy.output()
        send_frames(estimates, seconds)
        assert collector.spin_until(
            lambda: int(diagnostics_value(collector, 'latency_samples') or 0) > samples, 3)
        return policy, latest_diagnostics(collector, 'policy_node')


@pytest.mark.parametrize('fixed_latency_ms', [0.0, 20.0])
def test_each_frames_command_leaves_the_fixed_latency_after_its_stamp(tmp_path, collector,
                                                                     fixed_latency_ms):
    _, values = diagnostics_after_frames(
        tmp_path, collector, {'fixed_latency_ms': fixed_latency_ms}, 2.0, 20)
    hold_p50 = float(values['latency.release_hold_ms.p50'])
    total_p50 = float(values['latency.total_ms.p50'])
    if fixed_latency_ms:
        # Held until the stamp + 20 ms, never earlier; the bundles came a few ms after it.
        assert total_p50 >= fixed_latency_ms and hold_p50 > 5.0, values
        assert float(values['latency.total_ms.p99']) < fixed_latency_ms + 25.0, values
    else:
        assert hold_p50 < 0.5 and values['late_releases'] == '0', values


@pytest.mark.slow
def test_a_real_perception_that_loses_the_arm_stops_the_policy_until_it_sees_it_again(
        tmp_path, collector):
    perception = NodeProcess('perception_node', tmp_path, 'perception.yaml')
    policy = NodeProcess('policy_node', tmp_path, 'policy.yaml')
    collector.listen('/joint_commands', Float64MultiArray)
    collector.listen('/diagnostics', DiagnosticArray)
    camera = collector.node.create_publisher(Image, '/camera/image_raw', 1)
    frame = ArmRenderer(ArmGeometry()).render(np.array([0.4, 1.1]), np.array([-0.1, 0.12]))
    covered = frame.copy()
    covered[20:44, 32:60] = (128, 128, 128)  # a grey card over the arm

    def show(pixels, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            header = Header(frame_id='camera', stamp=collector.node.get_clock().now().to_msg())
            camera.publish(array_to_image(pixels, header))
            collector.spin_for(0.05)

    with running(perception, policy):
        assert collector.spin_until(lambda: camera.get_subscription_count() > 0
                                    and collector.messages['/joint_commands'], 30)
        show(frame, 1.0)
        assert moving(collector), (perception.output(), policy.output())
        show(covered, 1.0)
        assert last_command(collector).tolist() == [0.0, 0.0]
        show(frame, 1.0)
        assert moving(collector)
        assert collector.spin_until(
            lambda: diagnostics_value(collector, 'confidence_stops') == '1', 3), \
            latest_diagnostics(collector, 'policy_node')
        assert diagnostics_value(collector, 'stale_stops') == '0'
    assert policy.output().count('below min_confidence') == 1
