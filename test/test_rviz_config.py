"""config/reacher.rviz: valid, and every topic it shows is published by the bringup."""

from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
import pytest
import yaml

from ros_support import NodeProcess, running

RVIZ = Path(__file__).resolve().parent.parent / 'config' / 'reacher.rviz'
# rviz_default_plugins display class -> the message type its topic must carry.
DISPLAY_TYPES = {
    'rviz_default_plugins/Image': 'sensor_msgs/msg/Image',
    'rviz_default_plugins/MarkerArray': 'visualization_msgs/msg/MarkerArray',
    'rviz_default_plugins/Marker': 'visualization_msgs/msg/Marker',
    'rviz_default_plugins/PointStamped': 'geometry_msgs/msg/PointStamped',
    'rviz_default_plugins/JointState': 'sensor_msgs/msg/JointState',
}
NO_TOPIC = {'rviz_default_plugins/Grid', 'rviz_default_plugins/TF'}


def displays():
    config = yaml.safe_load(RVIZ.read_text())
    return config['Visualization Manager']['Displays']


def test_rviz_config_is_valid():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'world'
    assert manager['Views']['Current']['Class'].startswith('rviz_default_plugins/')
    names = [display['Name'] for display in manager['Displays']]
    assert len(names) == len(set(names)), 'display names must be unique'
    for display in manager['Displays']:
        assert display['Class'] in DISPLAY_TYPES or display['Class'] in NO_TOPIC, display
        if display['Class'] in DISPLAY_TYPES:
            assert display['Topic']['Value'].startswith('/'), display['Name']
    shown = {display['Class'] for display in manager['Displays'] if display['Enabled']}
    assert {'rviz_default_plugins/Image', 'rviz_default_plugins/MarkerArray'} <= shown


def test_setup_installs_the_rviz_config():
    setup = (RVIZ.parent.parent / 'setup.py').read_text()
    assert "glob('config/*.rviz')" in setup


@pytest.mark.ros
@pytest.mark.slow
def test_every_displayed_topic_is_published_with_the_right_type(tmp_path, collector):
    wanted = {d['Topic']['Value']: DISPLAY_TYPES[d['Class']] for d in displays()
              if d['Class'] in DISPLAY_TYPES}
    collector.listen('/diagnostics', DiagnosticArray)
    nodes = [NodeProcess(name, tmp_path, f'{file}.yaml') for name, file in
             [('sim_node', 'sim'), ('perception_node', 'perception'), ('policy_node', 'policy')]]

    def published():
        found = {}
        for topic, types in collector.node.get_topic_names_and_types():
            publishers = collector.node.get_publishers_info_by_topic(topic)
            found[topic] = (set(types), {info.node_name for info in publishers})
        return found

    def complete():
        found = published()
        # Endpoint discovery can name a publisher's node a moment after the topic appears.
        return all(found.get(topic, (set(), set()))[1] for topic in wanted) and not any(
            '_NODE_NAME_UNKNOWN_' in nodes for _, nodes in found.values()) and len(
            found['/visualization/markers'][1]) == 2

    with running(*nodes):
        assert collector.spin_until(complete, 30), f'{wanted} vs {published()}'
        found = published()
    for topic, msg_type in wanted.items():
        types, publishers = found[topic]
        assert types == {msg_type}, f'{topic}: {types}'
        assert publishers <= {'sim_node', 'perception_node', 'policy_node'}, publishers
    markers = found['/visualization/markers'][1]
    assert markers == {'sim_node', 'perception_node'}
