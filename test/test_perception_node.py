"""perception_node as a real process: estimates from images, and bad input."""

import math
from pathlib import Path
import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped, PoseWithCovarianceStamped
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header

from reacher_common.estimate_msgs import read_estimate_status, STATUS_KEYS
from reacher_common.geometry import ArmGeometry
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import Scene

from ros_support import (
    damaged_copy,
    DAMAGES,
    latest_diagnostics,
    NodeProcess,
    ParameterClient,
    running,
)

pytestmark = pytest.mark.ros

HERE = Path(__file__).resolve().parent
SHIPPED_SLAC = HERE.parent / 'checkpoints' / 'slac_reacher.pt'


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
    # No throttling, so that each dropped image leaves its own line in the log. The node's
    # mechanics with the estimator that reads each frame alone, exactly (the default SLAC
    # node runs in test_integration.py and test_slac_loop.py).
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                          {'warn_throttle_s': 0.0, 'estimator': 'classical'})
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
    ({'estimator': 'nope'}, 'estimator'),
    ({'image_size': 0}, 'image_size'),
    ({'image_size': 2048}, 'image_size'),
    ({'arena_size_m': 0.3}, 'arena_size_m'),
])
def test_bad_parameters_stop_the_start(tmp_path, params, named):
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml', params)
    with running(process):
        assert process.wait(30) == 2
    output = process.output()
    assert 'cannot start' in output and f'parameter {named}' in output, output
    # The ROS parameter, not the Python class field behind it.
    assert 'PerceptionConfig' not in output and 'ArmGeometry' not in output, output
    assert len(output.strip().splitlines()) == 1, output


def test_parameters_are_read_only_or_applied(perception, collector):
    parameters = ParameterClient(collector, 'perception_node')
    assert parameters.wait(), perception.output()
    for name, value in (('image_size', 'abc'), ('image_size', 128), ('estimator', 'slac'),
                        ('arena_size_m', math.nan), ('warn_throttle_s', -1.0)):
        result = parameters.set(name, value)
        assert not result.successful, (name, value)
        assert result.reason.strip() and not result.reason.rstrip('.').endswith('()'), \
            result.reason
    assert parameters.get('image_size') == 64
    assert parameters.describe('image_size').read_only
    assert parameters.set('warn_throttle_s', 1.0).successful
    assert parameters.get('warn_throttle_s') == 1.0


@pytest.mark.slow
def test_oversize_images_are_counted_and_memory_stays_bounded(perception, collector):
    collector.listen('/diagnostics', DiagnosticArray)
    publisher = collector.node.create_publisher(Image, '/camera/image_raw', 1)
    assert collector.spin_until(lambda: publisher.get_subscription_count() > 0, 20)
    # 77 KB, six times the 12 KB frame the node accepts: the size check refuses it. The
    # camera subscription is best effort (REP-2003), which promises nothing for large
    # frames: a 3 MB one (this test's earlier size) never arrived in 3 of 5 full runs of
    # the suite here, though it always did with this module alone; a 12 MB one may never
    # arrive whole, and then there is nothing to read.
    oversized = image_msg(np.zeros((160, 160, 3), np.uint8))
    huge = image_msg(np.zeros((2000, 2000, 3), np.uint8))
    # What is published before perception has matched this publisher is lost, not
    # queued: one answered frame shows the match.
    collector.listen('/perception/joint_states', JointState)
    frame = image_msg(ArmRenderer(ArmGeometry()).render((0.4, 1.1), (0.05, 0.12)))
    for _ in range(50):
        publisher.publish(frame)
        if collector.spin_until(lambda: collector.messages['/perception/joint_states'], 0.2):
            break
    assert collector.messages['/perception/joint_states'], perception.output()

    def oversize():
        values = latest_diagnostics(collector, 'perception_node') or {}
        return int(values.get('oversize_images', -1))

    def send(message, count):
        for _ in range(count):
            before = oversize()
            # Best effort: a frame can be dropped on the way (a busy machine); send again.
            for _ in range(10):
                publisher.publish(message)
                if collector.spin_until(lambda before=before: oversize() > before, 1.5):
                    break

    assert collector.spin_until(lambda: oversize() >= 0, 10), perception.output()
    send(oversized, 1)
    assert oversize() >= 1, perception.output()[-2000:]
    settled = perception.rss_mb()
    send(oversized, 5)
    for _ in range(6):
        publisher.publish(huge)
        collector.spin_for(0.3)
    assert perception.alive()
    assert oversize() >= 5
    grown = perception.rss_mb() - settled
    assert grown < 15.0, f'memory grew by {grown:.0f} MB over 12 more frames'
    output = perception.output()
    assert 'oversize' in output and max(len(line) for line in output.splitlines()) < 300


def test_an_estimator_failure_drops_the_frame_and_the_node_keeps_running(tmp_path, collector):
    collector.listen('/perception/joint_states', JointState)
    collector.listen('/diagnostics', DiagnosticArray)
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                          {'estimator': 'faulty'},
                          program=[sys.executable, str(HERE / 'faulty_backends.py'),
                                   'perception_node'])
    publisher = collector.node.create_publisher(Image, '/camera/image_raw', 1)
    frame = ArmRenderer(ArmGeometry()).render(np.array([0.4, 1.1]), np.array([0.05, 0.12]))
    white = frame.copy()
    white[0, 0] = 255
    with running(process):
        assert collector.spin_until(lambda: publisher.get_subscription_count() > 0, 20), \
            process.output()
        for _ in range(10):
            publisher.publish(image_msg(white))
            collector.spin_for(0.1)
        assert process.alive(), process.output()[-3000:]
        assert collector.messages['/perception/joint_states'] == []

        def errors():
            for array in reversed(collector.messages['/diagnostics']):
                for status in array.status:
                    if status.name.startswith('perception_node'):
                        values = {kv.key: kv.value for kv in status.values}
                        return int(values.get('estimator_errors', 0)), status.level
            return 0, None

        assert collector.spin_until(lambda: errors()[0] >= 5, 3), errors()
        assert errors()[1] == DiagnosticStatus.ERROR
        for _ in range(20):
            publisher.publish(image_msg(frame))
            if collector.spin_until(lambda: collector.messages['/perception/joint_states'],
                                    0.2):
                break
        assert collector.messages['/perception/joint_states'], process.output()[-3000:]
        assert 1 <= process.output().count('faulty estimator') <= 2


@pytest.mark.parametrize('damage', DAMAGES)
def test_a_corrupt_slac_checkpoint_stops_the_start_in_one_line(tmp_path, damage):
    checkpoint = damaged_copy(SHIPPED_SLAC, tmp_path / 'slac.pt', damage)
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                          {'estimator': 'slac', 'checkpoint': str(checkpoint)})
    with running(process):
        assert process.wait(60) == 2, process.output()
    lines = process.output().strip().splitlines()
    assert len(lines) == 1 and str(checkpoint) in lines[0], lines


def test_each_frame_publishes_its_bundle_with_confidence_and_covariance(perception, collector):
    topics = {'/perception/joint_states': JointState, '/perception/goal': PointStamped,
              '/perception/estimate_status': DiagnosticArray,
              '/perception/goal_pose': PoseWithCovarianceStamped,
              '/perception/fingertip_pose': PoseWithCovarianceStamped,
              '/perception/fingertip': PointStamped, '/diagnostics': DiagnosticArray}
    for topic, msg_type in topics.items():
        collector.listen(topic, msg_type)
    publisher = collector.node.create_publisher(Image, '/camera/image_raw', 1)
    joints, goal = np.array([0.4, 1.1]), np.array([0.05, 0.12])
    frame = ArmRenderer(ArmGeometry()).render(joints, goal)
    covered = frame.copy()
    covered[20:44, 32:60] = (128, 128, 128)  # a grey card over the arm
    assert collector.spin_until(lambda: publisher.get_subscription_count() > 0, 20), \
        perception.output()

    def statuses(stamp_s):
        return [m for m in collector.messages['/perception/estimate_status']
                if m.header.stamp.sec == stamp_s]

    def send(pixels, stamp_s):  # best effort: publish until the node answers
        for _ in range(50):
            publisher.publish(image_msg(pixels, stamp_s=stamp_s))
            if collector.spin_until(lambda: statuses(stamp_s), 0.2):
                return
        raise AssertionError(perception.output())

    send(frame, 11)
    send(covered, 12)
    collector.spin_for(0.3)
    for topic in topics:
        if topic != '/diagnostics':
            stamps = {m.header.stamp.sec for m in collector.messages[topic]}
            assert {11, 12} <= stamps, topic  # every part of both frames, the frame's stamp
    clear, unsure = read_estimate_status(statuses(11)[-1]), read_estimate_status(statuses(12)[-1])
    assert clear.confidence > 0.9 and unsure.confidence < 0.5
    assert statuses(11)[-1].status[0].level == DiagnosticStatus.OK
    assert statuses(12)[-1].status[0].level == DiagnosticStatus.WARN
    assert [kv.key for kv in statuses(11)[-1].status[0].values] == list(STATUS_KEYS)
    assert clear.inference_ms > 0.0 and math.isfinite(clear.frame_to_perception_ms)
    # The classical estimator gives no standard deviation: the covariance is "unknown".
    pose = next(m for m in collector.messages['/perception/goal_pose']
                if m.header.stamp.sec == 11)
    assert pose.header.frame_id == 'world' and pose.pose.covariance[0] == -1.0
    assert np.hypot(pose.pose.pose.position.x - goal[0], pose.pose.pose.position.y - goal[1]) \
        < 0.01
    assert math.isnan(clear.goal_std_m)

    def confidence_counts():
        values = latest_diagnostics(collector, 'perception_node') or {}
        return values.get('confidence.unsure_frames'), values.get('confidence.unknown_frames')

    # One unsure frame per covered frame answered (best effort may have taken two tries).
    assert collector.spin_until(lambda: confidence_counts() == (str(len(statuses(12))), '0'),
                                3), \
        latest_diagnostics(collector, 'perception_node')
    values = latest_diagnostics(collector, 'perception_node')
    assert float(values['confidence.min']) == pytest.approx(unsure.confidence, abs=1e-5)
    every = [read_estimate_status(m).confidence
             for m in collector.messages['/perception/estimate_status']]
    assert float(values['confidence.mean']) == pytest.approx(np.mean(every), abs=1e-5)


def test_a_nudged_camera_is_read_through_its_camera_info(perception, collector):
    """Frames are rectified with the CameraInfo of their stamp; a bad one is dropped."""
    collector.listen('/perception/joint_states', JointState)
    collector.listen('/diagnostics', DiagnosticArray)
    images = collector.node.create_publisher(Image, '/camera/image_raw', 1)
    infos = collector.node.create_publisher(CameraInfo, '/camera/camera_info', 10)
    joints, goal = np.array([0.4, 1.1]), np.array([0.05, 0.12])
    renderer = ArmRenderer(ArmGeometry())
    renderer.set_scene(Scene(families=('camera',), shift_px=(2.0, -1.5), roll_deg=8.0,
                             scale=1.05))
    frame = renderer.render(joints, goal)
    assert collector.spin_until(lambda: images.get_subscription_count() > 0
                                and infos.get_subscription_count() > 0, 20), \
        perception.output()

    def joint_error_deg(stamp_s, info=None):  # best effort: publish until answered
        for _ in range(50):
            if info is not None:
                info.header.stamp.sec = stamp_s
                infos.publish(info)
            images.publish(image_msg(frame, stamp_s=stamp_s))
            if collector.spin_until(lambda: any(
                    m.header.stamp.sec == stamp_s
                    for m in collector.messages['/perception/joint_states']), 0.2):
                break
        estimate = next(m for m in collector.messages['/perception/joint_states']
                        if m.header.stamp.sec == stamp_s)
        error = np.angle(np.exp(1j * (np.array(estimate.position) - joints)))
        return np.degrees(np.abs(error)).max()

    # Before any CameraInfo the frame is read as it is: the roll reads as a turned arm.
    assert joint_error_deg(1) > 5.0
    singular = CameraInfo(**renderer.calibration.message_fields())
    singular.k = [0.0] * 9  # CameraInfo's "uncalibrated camera"
    for _ in range(3):
        infos.publish(singular)
    collector.spin_for(0.3)
    assert perception.alive() and 'dropped /camera/camera_info: K is singular' in \
        perception.output()
    assert joint_error_deg(2) > 5.0
    # With the calibration of its stamp, the same frame is read in the nominal camera.
    assert joint_error_deg(3, CameraInfo(**renderer.calibration.message_fields())) < 1.5

    # A calibration that rectifies to another camera than the geometry's is used, and said.
    foreign = CameraInfo(**renderer.calibration.message_fields())
    foreign.p = [2 * v for v in foreign.p[:8]] + list(foreign.p[8:])
    joint_error_deg(4, foreign)
    assert 'not the camera of the geometry the estimator reads' in perception.output()

    def counts():
        values = latest_diagnostics(collector, 'perception_node') or {}
        return tuple(int(values.get(key, 0)) for key in (
            'dropped_camera_infos', 'rectified_frames', 'foreign_camera_infos'))

    assert collector.spin_until(lambda: min(counts()) >= 1, 3), counts()


@pytest.mark.parametrize('normalize', [True, False])
def test_a_new_table_is_read_through_background_normalisation(tmp_path, collector, normalize):
    """normalize_background (the default) repaints the table; without it the fit is lost."""
    collector.listen('/perception/joint_states', JointState)
    images = collector.node.create_publisher(Image, '/camera/image_raw', 1)
    joints, goal = np.array([0.7, 1.2]), np.array([0.08, -0.05])
    renderer = ArmRenderer(ArmGeometry())
    renderer.set_scene(Scene(families=('background',), background=(206, 5, 206)))
    frame = renderer.render(joints, goal)
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                          {'estimator': 'classical', 'normalize_background': normalize})
    with running(process):
        assert collector.spin_until(lambda: images.get_subscription_count() > 0, 20), \
            process.output()
        for _ in range(50):  # best effort: publish until answered
            images.publish(image_msg(frame))
            if collector.spin_until(lambda: collector.messages['/perception/joint_states'],
                                    0.2):
                break
        estimate = collector.messages['/perception/joint_states'][0]
    error = np.degrees(np.abs(np.angle(np.exp(1j * (np.array(estimate.position) - joints)))))
    assert (error.max() < 1.0) if normalize else (error.max() > 10.0), error


def test_a_missing_runtime_package_stops_the_start_by_name(tmp_path):
    """The default SLAC node without onnxruntime: one line naming it and the way out."""
    shadow = tmp_path / 'shadow' / 'onnxruntime'
    shadow.mkdir(parents=True)
    (shadow / '__init__.py').write_text("raise ImportError(\"No module named 'onnxruntime'\")\n")
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                          env={'PYTHONPATH': str(shadow.parent)})
    with running(process):
        assert process.wait(timeout=60) == 2, process.output()
    lines = [line for line in process.output().splitlines() if line.strip()]
    fatal = [line for line in lines if '[FATAL]' in line]
    assert len(fatal) == 1 and lines[-1] == fatal[0], lines
    assert 'onnxruntime' in fatal[0] and 'runtime: torch' in fatal[0], fatal
    assert 'Traceback' not in process.output()
