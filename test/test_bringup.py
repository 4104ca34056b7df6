"""ROS conventions of the bringup (reacher/bringup.py, the nodes' names and QoS): a loop runs
under any namespace with its parameters, any camera driver feeds perception, and several
loops run side by side without cross-talk. Real node processes over DDS on loopback."""

import json
import subprocess

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, Header

from reacher.bringup import qualified, robot_namespaces
from reacher_common.geometry import ArmGeometry
from reacher_common.kinematics import wrap_angle
from reacher_common.ros_utils import array_to_image
from reacher_sim.render import ArmRenderer

from ros_support import CONFIG, executable, get_parameters, NodeProcess, running

LOOP_TOPICS = ('camera/image_raw', 'camera/camera_info', 'joint_states', 'goal',
               'perception/joint_states', 'perception/goal', 'joint_commands', 'diagnostics')


def sim_counters(collector, topic):
    """(goals reached, goals timed out) from the newest sim_node status on ``topic``."""
    for array in reversed(collector.messages[topic]):
        for status in array.status:
            if status.name.startswith('sim_node'):
                values = {kv.key: kv.value for kv in status.values}
                return int(values['goals_reached']), int(values['goals_timed_out'])
    return 0, 0


def test_robot_namespaces():
    assert robot_namespaces() == ['/']
    assert robot_namespaces('arm1') == ['/arm1']
    assert robot_namespaces('/lab/', 3) == ['/lab/arm1', '/lab/arm2', '/lab/arm3']
    assert robot_namespaces('', 2) == ['/arm1', '/arm2']
    assert qualified('/', 'sim_node') == 'sim_node'
    assert qualified('/arm2', 'sim_node') == '/arm2/sim_node'
    for bad in ('1arm', 'arm 1', 'a//b', 'arm-1'):
        with pytest.raises(ValueError, match='not a valid ROS namespace'):
            robot_namespaces(bad)
    with pytest.raises(ValueError, match='robots'):
        robot_namespaces('', 0)


def edited(tmp_path, name, old, new):
    """A copy of config/<name> with one value changed, its keys (`/**/node:`) as shipped."""
    text = (CONFIG / name).read_text()
    assert old in text, (name, old)
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.ros
@pytest.mark.slow
def test_a_namespaced_loop_applies_its_parameter_files_and_keeps_its_topics(tmp_path,
                                                                            collector):
    # The shipped files' keys under a namespace: each copy changes one value that is
    # equal to the code default in the shipped file, so a value seen means a file applied.
    sim = edited(tmp_path, 'sim.yaml', 'diagnostics_period_s: 1.0', 'diagnostics_period_s: 0.5')
    perception = edited(tmp_path, 'perception.yaml', 'warn_throttle_s: 5.0',
                        'warn_throttle_s: 4.0')
    policy = edited(tmp_path, 'policy.yaml', 'kp: 2.5', 'kp: 2.4')
    nodes = [
        # `-p` beats the node's own file (it joins the /** section, applied after it).
        NodeProcess('sim_node', tmp_path, sim, {'goal_timeout_s': 13.0}, namespace='/robot1'),
        NodeProcess('perception_node', tmp_path, perception, namespace='/robot1'),
        NodeProcess('policy_node', tmp_path, policy, namespace='/robot1'),
    ]
    collector.listen('/robot1/diagnostics', DiagnosticArray, depth=500)
    with running(*nodes):
        reached = collector.spin_until(
            lambda: sim_counters(collector, '/robot1/diagnostics')[0] >= 2, timeout=90)
        logs = '\n'.join(node.output()[-1500:] for node in nodes)
        assert reached, logs
        node = collector.node
        known = collector.spin_until(lambda: all(
            node.get_publishers_info_by_topic(f'/robot1/{topic}') for topic in LOOP_TOPICS),
            timeout=30)
        assert known, sorted(dict(node.get_topic_names_and_types()))
        sim_values = get_parameters(node, '/robot1/sim_node', [
            'dt', 'diagnostics_period_s', 'goal_timeout_s', 'image_size', 'seed'])
        perception_values = get_parameters(node, '/robot1/perception_node',
                                           ['warn_throttle_s', 'upper_arm_length_m'])
        policy_values = get_parameters(node, '/robot1/policy_node', ['pid.kp', 'controller'])
        topics = dict(node.get_topic_names_and_types())
        publishers = {topic: [(info.node_namespace, info.node_name)
                              for info in node.get_publishers_info_by_topic(topic)]
                      for topic in topics}
    assert sim_values == {'dt': 0.05, 'diagnostics_period_s': 0.5, 'goal_timeout_s': 13.0,
                          'image_size': 64, 'seed': 0}
    assert perception_values == {'warn_throttle_s': 4.0, 'upper_arm_length_m': 0.1}
    assert policy_values == {'pid.kp': 2.4, 'controller': 'ik'}
    for topic in LOOP_TOPICS:
        assert f'/robot1/{topic}' in topics, sorted(topics)
        assert f'/{topic}' not in topics, sorted(topics)
    ours = [topic for topic in topics if topic not in ('/rosout', '/parameter_events')]
    assert all(topic.startswith('/robot1/') for topic in ours), ours
    assert all(namespace == '/robot1' for topic in ours for namespace, _ in publishers[topic])
    assert sim_counters(collector, '/robot1/diagnostics')[1] == 0


@pytest.mark.ros
@pytest.mark.slow
def test_a_best_effort_camera_feeds_perception(tmp_path, collector):
    """A driver publishing sensor-data QoS (best effort, REP-2003), as most cameras do."""
    geometry = ArmGeometry()
    pose, goal = np.array([0.7, -1.1]), np.array([-0.08, 0.12])
    frame = ArmRenderer(geometry).render(pose, goal)
    camera = collector.node.create_publisher(Image, '/cam1/camera/image_raw',
                                             qos_profile_sensor_data)
    assert camera.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    collector.listen('/cam1/perception/joint_states', JointState)
    perception = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                             {'estimator': 'classical'}, namespace='/cam1')
    with running(perception):
        matched = collector.spin_until(lambda: camera.get_subscription_count() == 1, 30)
        assert matched, perception.output()
        [info] = collector.node.get_subscriptions_info_by_topic('/cam1/camera/image_raw')
        assert info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT

        def estimated():
            camera.publish(array_to_image(frame, Header(
                stamp=collector.node.get_clock().now().to_msg(), frame_id='camera')))
            collector.spin_for(0.05)
            return len(collector.messages['/cam1/perception/joint_states']) >= 5

        assert collector.spin_until(estimated, timeout=30), perception.output()
    estimates = np.array([m.position for m in collector.messages['/cam1/perception/joint_states']])
    assert np.degrees(np.abs(wrap_angle(estimates - pose))).max() < 3.0


@pytest.mark.ros
@pytest.mark.slow
def test_two_loops_side_by_side_without_cross_talk(tmp_path, collector):
    """`reacher demo --robots 2`: /arm1 and /arm2 each close their own loop; a bag recorded
    under /arm2 holds /arm2's topics only, and its estimates match /arm2's ground truth."""
    for namespace in ('/arm1', '/arm2'):
        collector.listen(f'{namespace}/joint_commands', Float64MultiArray, depth=1000)
    demo = subprocess.Popen(
        [executable('reacher'), 'demo', '--headless', '--robots', '2', '--duration', '20',
         '--seed', '5', '--json', '--log-dir', str(tmp_path / 'logs')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        flowing = collector.spin_until(lambda: all(
            len(collector.messages[f'{ns}/joint_commands']) > 20 for ns in ('/arm1', '/arm2')),
            timeout=90)
        assert flowing, 'the loops did not close'
        node = collector.node

        def graph_complete():
            # This process learns of each remote endpoint on its own schedule: wait until it
            # knows a publisher of every loop topic, and the node behind each (an endpoint
            # can be seen before its participant's node names), before taking the picture.
            infos = [node.get_publishers_info_by_topic(f'{ns}/{topic}')
                     for ns in ('/arm1', '/arm2') for topic in LOOP_TOPICS]
            return all(infos) and all(info.node_name != '_NODE_NAME_UNKNOWN_'
                                      for group in infos for info in group)

        assert collector.spin_until(graph_complete, timeout=30)
        topics = dict(node.get_topic_names_and_types())
        graph = {topic: ([(i.node_namespace, i.node_name)
                          for i in node.get_publishers_info_by_topic(topic)],
                         [(i.node_namespace, i.node_name)
                          for i in node.get_subscriptions_info_by_topic(topic)])
                 for topic in topics}
        bag = tmp_path / 'arm2'
        record = subprocess.run([executable('reacher'), 'bag', 'record', str(bag),
                                 '--namespace', '/arm2', '--duration', '8'],
                                capture_output=True, text=True, timeout=60)
        assert record.returncode == 0, record.stdout + record.stderr
        output, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, output
    summary = json.loads(output.strip().splitlines()[-1])
    assert [robot['namespace'] for robot in summary['robots']] == ['/arm1', '/arm2']
    for robot in summary['robots']:
        assert robot['goals_reached'] >= 2 and robot['goals_timed_out'] == 0, robot
        assert robot['stale_stops'] == 0, robot
        # The demo's default: the sim, and perception and policy composed in one process.
        assert set(robot['nodes']) == {f'{robot["namespace"]}/{name}' for name in
                                       ('sim_node', 'perception_policy')}
        assert all(code == 0 for code in robot['nodes'].values()), robot
    assert summary['goals_reached'] == sum(r['goals_reached'] for r in summary['robots'])

    # No cross-talk: every loop topic lives in one namespace, published by that loop's node
    # only and read only there (and by this test's collector in the root namespace).
    for topic in LOOP_TOPICS:
        assert f'/{topic}' not in topics
        for namespace in ('/arm1', '/arm2'):
            publishers, subscribers = graph[f'{namespace}/{topic}']
            assert publishers and all(ns == namespace for ns, _ in publishers), (topic, graph)
            assert all(ns in (namespace, '/') for ns, _ in subscribers), (topic, graph)
    for namespace in ('/arm1', '/arm2'):
        [sender] = graph[f'{namespace}/joint_commands'][0]
        assert sender == (namespace, 'policy_node')

    rosbag2 = pytest.importorskip('rosbags.rosbag2', reason='the bag part needs rosbags')
    with rosbag2.Reader(bag) as reader:
        recorded = set(reader.topics)
    assert recorded and all(topic.startswith('/arm2/') for topic in recorded), recorded
    evaluation = subprocess.run([executable('reacher'), 'bag', 'eval', str(bag),
                                 '--namespace', '/arm2', '--out', str(tmp_path / 'eval')],
                                capture_output=True, text=True, timeout=120)
    assert evaluation.returncode == 0, evaluation.stdout + evaluation.stderr
    metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())['metrics']
    # /arm2's live estimates (recorded) match /arm2's ground truth by stamp.
    assert metrics['recorded']['frames'] > 50 and metrics['recorded']['joint_mae_deg'] < 3.0
