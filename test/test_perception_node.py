"""perception_node as a real process: estimates from images, and bad input."""

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header

from reacher_common.geometry import ArmGeometry
from reacher_sim.render import ArmRenderer

from ros_support import NodeProcess, running

pytestmark = pytest.mark.ros


def dropped_images(collector):
    for array in reversed(collector.messages['/diagnostics']):
        for status in array.status:
            if status.name.startswith('perception_node'):
                return int({kv.key: kv.value for kv in status.values}['dropped_images'])
    return None


def image_msg(pixels, encoding='rgb8', stamp_s=1):
    height, width = pixels.shape[:2]
    header = Header(frame_id='camera')
    header.stamp.sec = stamp_s
    return Image(header=header, height=height, width=width, encoding=encoding, step=3 * width,
                 data=pixels.tobytes())


@pytest.fixture
def perception(tmp_path):
    # No throttling, so that each dropped image leaves its own line in the log.
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                          {'warn_throttle_s': 0.0})
    with running(process):
        yield process


def test_estimates_carry_the_image_stamp_and_drop_bad_images(perception, collector):
    collector.listen('/perception/joint_states', JointState)
    collector.listen('/perception/goal', PointStamped)
    collector.listen('/perception/fingertip', PointStamped)
    collector.listen('/diagnostics', DiagnosticArray)
    publisher = collector.node.create_publisher(Image, '/camera/image_raw', 1)
    joints, goal = np.array([0.4, 1.1]), np.array([0.05, 0.12])
    frame = ArmRenderer(ArmGeometry()).render(joints, goal)
    assert collector.spin_until(lambda: publisher.get_subscription_count() > 0, 20), \
        perception.output()

    def received(stamp_s=None):
        return any(stamp_s in (None, m.header.stamp.sec)
                   for m in collector.messages['/perception/joint_states'])

    # The camera subscription is best effort: what is published before perception has
    # matched this publisher is lost, not queued. One answered frame shows the match.
    for _ in range(50):
        publisher.publish(image_msg(frame, stamp_s=1))
        if collector.spin_until(received, 0.2):
            break
    assert received(), perception.output()
    collector.spin_for(0.3)
    for topic in ('/perception/joint_states', '/perception/goal'):
        collector.messages[topic].clear()

    bad_images = [image_msg(frame, encoding='bgr8'), image_msg(frame[:32, :32]),
                  image_msg(frame[:, :, :1].copy(), encoding='rgb8')]
    bad_images[-1].width = 64  # data shorter than height * step
    for index, bad in enumerate(bad_images):
        bad.header.stamp.sec = 100 + index
        publisher.publish(bad)
        collector.spin_for(0.3)
    assert perception.alive()
    assert collector.messages['/perception/joint_states'] == []
    output = perception.output()
    assert "encoding 'bgr8'" in output and '32x32' in output and 'bytes' in output
    assert collector.spin_until(lambda: dropped_images(collector) == 3, 5)

    for _ in range(50):  # best effort: publish until the node answers
        publisher.publish(image_msg(frame, stamp_s=7))
        if collector.spin_until(lambda: received(7), 0.2):
            break
    assert received(7), perception.output()
    collector.spin_until(lambda: collector.messages['/perception/goal'], 2)
    estimate = collector.messages['/perception/joint_states'][-1]
    assert estimate.header.stamp.sec == 7 and list(estimate.name) == ['shoulder', 'elbow']
    error = np.angle(np.exp(1j * (np.array(estimate.position) - joints)))
    assert np.degrees(np.abs(error)).max() < 5.0
    goal_msg = collector.messages['/perception/goal'][-1]
    assert goal_msg.header.frame_id == 'world'
    assert np.hypot(goal_msg.point.x - goal[0], goal_msg.point.y - goal[1]) < 0.01


@pytest.mark.parametrize('params, named', [
    ({'estimator': 'nope'}, 'classical'),
    ({'image_size': 0}, 'image_size'),
])
def test_bad_parameters_stop_the_start(tmp_path, params, named):
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml', params)
    with running(process):
        assert process.wait(30) == 2
    assert 'cannot start' in process.output() and named in process.output()
