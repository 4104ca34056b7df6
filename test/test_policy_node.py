"""policy_node as a real process: commands at its rate, stale stop, parameters."""

from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header

from ros_support import NodeProcess, running

pytestmark = pytest.mark.ros


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
    assert not fixed.successful and 'restart' in fixed.reason


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
