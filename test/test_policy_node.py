"""policy_node as a real process: commands at its rate, stale stop, parameters, faults."""

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
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header

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
    joints_pub = collector.node.create_publisher(JointState, '/perception/joint_states', 10)
    goal_pub = collector.node.create_publisher(PointStamped, '/perception/goal', 10)
    assert collector.spin_until(lambda: collector.messages['/joint_commands'], 20), \
        policy.output()
    # With no estimate yet the node holds the arm still.
    assert collector.messages['/joint_commands'][-1].data.tolist() == [0.0, 0.0]

    def send_estimate():
        header = Header(frame_id='world', stamp=collector.node.get_clock().now().to_msg())
        goal = PointStamped(header=header)
        goal.point.x, goal.point.y = 0.0, 0.15
        goal_pub.publish(goal)
        joints_pub.publish(JointState(header=header, name=['shoulder', 'elbow'],
                                      position=[0.0, 0.0]))

    for _ in range(20):
        send_estimate()
        collector.spin_for(0.05)
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
    collector.spin_for(0.5)
    assert policy.alive()
    output = policy.output()
    assert 'dropped /perception/goal' in output and 'dropped /perception/joint_states' in output
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
    ({'pid.kp': -1.0}, 'pid.kp'),
    ({'controller': 'telepathy'}, 'ik'),
])
def test_bad_parameters_stop_the_start(tmp_path, params, named):
    process = NodeProcess('policy_node', tmp_path, 'policy.yaml', params)
    with running(process):
        assert process.wait(30) == 2
    assert 'cannot start' in process.output() and named in process.output()


class Estimates:
    """Publishes estimates as perception_node does: the goal, then the joints, one stamp."""

    def __init__(self, collector):
        self.collector = collector
        self.joints_pub = collector.node.create_publisher(
            JointState, '/perception/joint_states', 10)
        self.goal_pub = collector.node.create_publisher(PointStamped, '/perception/goal', 10)

    def send(self, goal=(0.0, 0.15), joints=(0.0, 0.0)):
        header = Header(frame_id='world',
                        stamp=self.collector.node.get_clock().now().to_msg())
        msg = PointStamped(header=header)
        msg.point.x, msg.point.y = float(goal[0]), float(goal[1])
        self.goal_pub.publish(msg)
        self.joints_pub.publish(JointState(header=header, name=['shoulder', 'elbow'],
                                           position=[float(v) for v in joints]))

    def stream(self, seconds, **kwargs):
        """Send at the camera's 20 Hz for ``seconds``, spinning the collector meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.send(**kwargs)
            self.collector.spin_for(0.05)


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
