"""reacher bag: record the live loop, replay it on bag time, evaluate and export it.

The ROS tests run the node executables and ``reacher bag`` as real processes over DDS on
loopback (conftest.py sets the discovery range and a per-run domain); the offline ones read
and write real bag files with the rosbags library.
"""

import json
import os
import signal
import subprocess
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from reacher.bag.cli import bag_main
from reacher.bag.dataset import build_dataset
from reacher.bag.evaluate import estimates_from_messages, match_errors
from reacher.bag.io import ESTIMATE_TOPICS, read_streams, resolve, typestore
from reacher_common.geometry import Timing
from reacher_common.kinematics import forward_kinematics, inverse_kinematics, wrap_angle
from reacher_sim.config import SimConfig
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import Scene
from reacher_sim.task import ReachingTask

from ros_support import executable, NodeProcess, running

REACHER = executable('reacher')
LINKS = (0.1, 0.1)
RECORD_SECONDS = 8.0
CLASSICAL = {'estimator': 'classical'}
"""The bag tools' exact checks need the estimator that reads each frame alone."""


def reacher_bag(*args, timeout=60.0, **kwargs):
    return subprocess.run([REACHER, 'bag', *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


@pytest.fixture(scope='module')
def live_bag(tmp_path_factory, rclpy_context):
    """~8 s of the running loop (three node processes) recorded by `reacher bag record`."""
    from ros_support import Collector

    directory = tmp_path_factory.mktemp('live')
    bag = directory / 'loop'
    collector = Collector('bag_fixture_watch')
    collector.listen('/perception/joint_states', JointState)
    collector.listen('/joint_commands', Float64MultiArray)
    # The classical estimator reads each frame on its own, so a replay reproduces its
    # estimates exactly (test_replay_on_bag_time_reproduces_the_live_estimates).
    nodes = [NodeProcess(name, directory, f'{file}.yaml', params) for name, file, params in
             [('sim_node', 'sim', None), ('perception_node', 'perception', CLASSICAL),
              ('policy_node', 'policy', None)]]
    try:
        with running(*nodes):
            closed = collector.spin_until(lambda: len(collector.messages['/joint_commands']) > 5
                                          and len(collector.messages['/perception/joint_states'])
                                          > 5, timeout=60)
            logs = '\n'.join(node.output()[-1500:] for node in nodes)
            assert closed, f'the loop did not close:\n{logs}'
            result = reacher_bag('record', bag, '--duration', RECORD_SECONDS, timeout=60)
            assert all(node.alive() for node in nodes), logs
    finally:
        collector.close()
    assert result.returncode == 0, result.stdout + result.stderr
    return bag, result.stdout


@pytest.mark.ros
@pytest.mark.slow
def test_record_writes_every_topic_of_the_loop(live_bag):
    bag, output = live_bag
    assert 'messages' in output and f'closed {bag}' in output
    with Reader(bag) as reader:
        topics = reader.topics
        # Startup and discovery eat into the recording: a lower bound, not the full length.
        assert reader.duration > 0.4 * RECORD_SECONDS * 1e9
        types = {topic: info.msgtype for topic, info in topics.items()}
        counts = {topic: info.msgcount for topic, info in topics.items()}
        assert types['/camera/image_raw'] == 'sensor_msgs/msg/Image'
        assert types['/joint_states'] == 'sensor_msgs/msg/JointState'
        assert types['/goal'] == 'geometry_msgs/msg/PointStamped'
        assert types['/joint_commands'] == 'std_msgs/msg/Float64MultiArray'
        assert types['/diagnostics'] == 'diagnostic_msgs/msg/DiagnosticArray'
        # The estimate bundle: confidence and covariance beside the points (docs/ros.md).
        assert types['/perception/estimate_status'] == 'diagnostic_msgs/msg/DiagnosticArray'
        assert types['/perception/goal_pose'] == 'geometry_msgs/msg/PoseWithCovarianceStamped'
        for topic in ('/camera/image_raw', '/camera/camera_info', '/joint_states', '/goal',
                      *(f'/{t}' for t in ESTIMATE_TOPICS), '/perception/estimate_status',
                      '/perception/goal_pose', '/perception/fingertip_pose',
                      '/joint_commands', '/diagnostics'):
            assert counts[topic] > 0, f'no messages on {topic}: {counts}'
        # The sim runs at 20 Hz: from the first frame recorded to the last, 20 frames a
        # second, none lost on loopback. (On a loaded machine the recorder may discover the
        # camera a few seconds into the recording, so the span, not the total, is the test.)
        connection = next(c for c in reader.connections if c.topic == '/camera/image_raw')
        times = [time_ns for _, time_ns, _ in reader.messages(connections=[connection])]
        span_s = (times[-1] - times[0]) / 1e9
        assert span_s > 0.4 * RECORD_SECONDS, span_s
        assert counts['/camera/image_raw'] >= 0.9 * 20 * span_s, (counts, span_s)
        # Raw CDR bytes, decodable with the Jazzy typestore; receive time as the bag time.
        store = typestore()
        _, time_ns, raw = next(reader.messages(connections=[connection]))
        image = store.deserialize_cdr(raw, connection.msgtype)
        assert (image.encoding, image.width, image.height) == ('rgb8', 64, 64)
        stamp = image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
        assert 0 <= time_ns - stamp < 10**9


@pytest.mark.ros
@pytest.mark.slow
def test_replay_on_bag_time_reproduces_the_live_estimates(live_bag, tmp_path, collector):
    """A fresh perception node fed by `bag play --clock` estimates as the live one did.

    The classical estimator reads each frame on its own (its only memory is the last
    estimate, used when the arm is hidden), so on the same frames the replayed estimates
    should equal the live ones up to floating point; the live ones being sub-0.1-degree,
    the tolerance (20 % of the live error + 0.01 deg, 0.01 mm) allows for a few frames
    the replay drops on a busy machine, and still fails any real regression.
    """
    bag, _ = live_bag
    streams = read_streams(bag)
    live = match_errors(estimates_from_messages(*(streams.recorded[t] for t in ESTIMATE_TOPICS)),
                        streams.truth_joints, streams.truth_goal, LINKS).summary()
    collector.listen('/perception/joint_states', JointState, depth=500)
    collector.listen('/perception/fingertip', PointStamped, depth=500)
    collector.listen('/perception/goal', PointStamped, depth=500)
    collector.listen('/diagnostics', DiagnosticArray, depth=100)
    perception = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                             {'use_sim_time': 'true', **CLASSICAL})
    with running(perception):
        # Up and matched to us, so that no estimate is missed; the player waits for it too.
        up = collector.spin_until(lambda: all(
            subscription.get_publisher_count() > 0
            for subscription in collector.node.subscriptions), timeout=30)
        assert up, perception.output()
        player = subprocess.Popen(
            [REACHER, 'bag', 'play', str(bag), '--clock', '--wait-for-subscribers', '20',
             '--topics', '/camera/image_raw', '/joint_commands'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            collector.spin_until(lambda: player.poll() is not None, timeout=40)
            collector.spin_for(1.0)
        finally:
            if player.poll() is None:
                player.kill()
            output = player.communicate()[0]
        assert player.returncode == 0, output
        assert perception.alive(), perception.output()
    received = collector.messages
    replayed_estimates = estimates_from_messages(*(received[f'/{t}'] for t in ESTIMATE_TOPICS))
    frames = len(streams.images)
    assert len(replayed_estimates) >= 0.9 * frames, (len(replayed_estimates), frames, output)
    # Estimates carry their (recorded) image's stamp...
    assert {e.stamp_ns for e in replayed_estimates} <= set(streams.image_stamps)
    replay = match_errors(replayed_estimates, streams.truth_joints, streams.truth_goal,
                          LINKS).summary()
    print('live', live, '\nreplayed', replay)
    for key, slack in (('joint_mae_deg', 0.01), ('fingertip_mean_mm', 0.01),
                       ('goal_mean_mm', 0.01)):
        assert abs(replay[key] - live[key]) <= 0.2 * live[key] + slack, (key, live, replay)
    assert replay['joint_mae_deg'] < 1.0 and replay['fingertip_mean_mm'] < 2.0
    # ...and, with use_sim_time, the node's own clock is the bag's (/clock from the player):
    # its /diagnostics are stamped inside the recording, not at the wall-clock time of the
    # replay, which is at least the recording's length later.
    with Reader(bag) as reader:
        start, end = reader.start_time, reader.end_time
    stamps = [s.sec * 10**9 + s.nanosec for s in
              (array.header.stamp for array in received['/diagnostics'])]
    assert stamps, 'the perception node published no /diagnostics on bag time'
    assert all(start <= stamp <= end + 10**8 for stamp in stamps), (start, end, stamps)


@pytest.mark.ros
@pytest.mark.slow
def test_eval_writes_table_json_and_plots(live_bag, tmp_path, capsys):
    bag, _ = live_bag
    out = tmp_path / 'eval'
    assert bag_main(['eval', str(bag), '--estimator', 'classical', '--out', str(out)]) == 0
    table = capsys.readouterr().out
    assert 'offline classical' in table and 'recorded /perception' in table
    assert 'joint MAE' in table and 'fingertip' in table
    metrics = json.loads((out / 'metrics.json').read_text())
    offline = metrics['metrics']['offline']
    assert metrics['estimator'] == 'classical' and offline['frames'] > 50
    # The classical estimator on our 64x64 frames (test_classical.py holds it to this too).
    assert offline['joint_mae_deg'] < 1.0
    assert offline['fingertip_mean_mm'] < 2.0 and offline['goal_mean_mm'] < 2.0
    assert abs(offline['joint_mae_deg'] - metrics['metrics']['recorded']['joint_mae_deg']) < 0.05
    for name in ('errors_over_time.png', 'estimate_vs_truth.png'):
        data = (out / name).read_bytes()
        assert data.startswith(b'\x89PNG') and 1_000 < len(data) < 200_000


@pytest.mark.ros
@pytest.mark.slow
def test_to_dataset_of_the_recorded_loop(live_bag, tmp_path):
    bag, _ = live_bag
    out = tmp_path / 'loop.npz'
    assert bag_main(['to-dataset', str(bag), str(out), '--sequence-length', '8']) == 0
    data = np.load(out)
    count = data['images'].shape[0]
    assert count >= 5
    assert data['images'].shape == (count, 8, 64, 64, 3) and data['images'].dtype == np.uint8
    for key in ('actions', 'joint_positions', 'joint_velocities', 'fingertip', 'goal'):
        assert data[key].shape == (count, 8, 2) and data[key].dtype == np.float32, key
    assert abs(float(data['dt']) - 0.05) < 0.005
    # The loop's commands are what the policy sent: bounded joint velocities, not all zero.
    assert np.all(np.abs(data['actions']) <= 1.0) and np.any(data['actions'] != 0)
    # SLAC's loader reads it as a training dataset, with the loop's geometry.
    from reacher_perception.training.dataset import SequenceDataset
    dataset = SequenceDataset(out)
    assert dataset.images.shape[0] == count and abs(dataset.timing.dt - 0.05) < 0.005


# Offline: a bag written without ROS -------------------------------------------------------


def synthetic_bag(path, steps=120, seed=3, namespace='', scene=None):
    """The loop simulated in-process (IK + P control on the true state), as a real bag.

    Each command of step t is received 10 ms after frame t; each frame at its stamp. The
    topics are under ``namespace`` ('/arm1/camera/image_raw'), as a namespaced loop's. With
    a ``scene``, the frames are drawn in it, and each frame's CameraInfo is recorded just
    before it, as the sim publishes them.
    """
    store = typestore()
    types = store.types
    config = SimConfig(timing=Timing(dt=0.05))
    task = ReachingTask(config, goal_timeout_s=15.0, seed=seed)
    renderer = ArmRenderer(config.geometry)
    if scene is not None:
        renderer.set_scene(scene)
    commands = []
    with Writer(path, version=9) as writer:
        info_c = (writer.add_connection(namespace + '/camera/camera_info',
                                        'sensor_msgs/msg/CameraInfo', typestore=store)
                  if scene is not None else None)
        image_c = writer.add_connection(namespace + '/camera/image_raw', 'sensor_msgs/msg/Image',
                                        typestore=store)
        joint_c = writer.add_connection(namespace + '/joint_states', 'sensor_msgs/msg/JointState',
                                        typestore=store)
        goal_c = writer.add_connection(namespace + '/goal', 'geometry_msgs/msg/PointStamped',
                                       typestore=store)
        command_c = writer.add_connection(namespace + '/joint_commands',
                                          'std_msgs/msg/Float64MultiArray', typestore=store)
        for step in range(steps):
            arm = task.arm
            stamp_ns = 10**18 + step * 50_000_000
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9,
                                                           nanosec=stamp_ns % 10**9),
                frame_id='world')
            pixels = renderer.render(arm.joint_positions, arm.goal)
            if info_c is not None:
                fields = renderer.calibration.message_fields()
                info = types['sensor_msgs/msg/CameraInfo'](
                    header=header, **{k: np.asarray(v) if k in 'dkrp' else v
                                      for k, v in fields.items()},
                    binning_x=0, binning_y=0, roi=types['sensor_msgs/msg/RegionOfInterest'](
                        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
                writer.write(info_c, stamp_ns + 500_000, store.serialize_cdr(info, info_c.msgtype))
            image = types['sensor_msgs/msg/Image'](
                header=header, height=64, width=64, encoding='rgb8', is_bigendian=0,
                step=192, data=pixels.reshape(-1))
            joints = types['sensor_msgs/msg/JointState'](
                header=header, name=['shoulder', 'elbow'],
                position=arm.joint_positions.copy(), velocity=arm.joint_velocities.copy(),
                effort=np.zeros(0))
            goal = types['geometry_msgs/msg/PointStamped'](
                header=header, point=types['geometry_msgs/msg/Point'](
                    x=float(arm.goal[0]), y=float(arm.goal[1]), z=0.0))
            for connection, msg in ((image_c, image), (joint_c, joints), (goal_c, goal)):
                writer.write(connection, stamp_ns + 1_000_000,
                             store.serialize_cdr(msg, connection.msgtype))
            target = inverse_kinematics(arm.goal, *LINKS, current=arm.joint_positions)
            command = np.clip(3.0 * wrap_angle(target - arm.joint_positions), -1.0, 1.0)
            layout = types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
            writer.write(command_c, stamp_ns + 10_000_000, store.serialize_cdr(
                types['std_msgs/msg/Float64MultiArray'](layout=layout, data=command),
                command_c.msgtype))
            commands.append(command)
            task.step(command)
    return np.asarray(commands)


def test_to_dataset_format(tmp_path):
    bag = tmp_path / 'synthetic'
    commands = synthetic_bag(bag)
    out = tmp_path / 'dataset.npz'
    assert bag_main(['to-dataset', str(bag), str(out), '--sequence-length', '9']) == 0
    data = np.load(out)
    count = data['images'].shape[0]
    assert count >= 5
    assert data['images'].shape == (count, 9, 64, 64, 3) and data['images'].dtype == np.uint8
    for key in ('actions', 'joint_positions', 'joint_velocities', 'fingertip', 'goal'):
        assert data[key].shape == (count, 9, 2) and data[key].dtype == np.float32, key
    assert data['stamps'].shape == (count, 9) and data['dt'].dtype == np.float32
    assert float(data['dt']) == pytest.approx(0.05)
    np.testing.assert_allclose(data['link_lengths'], LINKS)
    # a_t is the command sent after frame t; the arm then moves by it: x_{t+1} = x_t + a_t dt.
    steps = np.round((data['stamps'] - 1e9) / 0.05).astype(int)
    np.testing.assert_allclose(data['actions'], commands[steps], atol=1e-6)
    moved = wrap_angle(data['joint_positions'][:, 1:] - data['joint_positions'][:, :-1])
    np.testing.assert_allclose(moved, data['actions'][:, :-1] * 0.05, atol=1e-5)
    # Ground truth: fingertip = FK(joints), one goal per sequence, no gap inside one.
    _, fingertip = forward_kinematics(data['joint_positions'], *LINKS)
    np.testing.assert_allclose(data['fingertip'], fingertip, atol=1e-6)
    assert np.all(data['goal'] == data['goal'][:, :1])
    assert np.all(np.diff(steps, axis=1) == 1)


def test_dataset_never_spans_a_goal_change(tmp_path):
    bag = tmp_path / 'synthetic'
    synthetic_bag(bag, steps=200, seed=1)
    streams = read_streams(bag)
    goals = np.stack([streams.truth_goal[s] for s in streams.image_stamps])
    assert np.any(goals[1:] != goals[:-1]), 'the synthetic run should reach a goal'
    split = build_dataset(streams, LINKS, sequence_length=6)
    assert np.all(split['goal'] == split['goal'][:, :1])
    whole = build_dataset(streams, LINKS, sequence_length=6, split_on_goal_change=False)
    assert whole['images'].shape[0] == 200 // 6


def test_eval_on_a_bag_without_recorded_estimates(tmp_path, capsys):
    bag = tmp_path / 'synthetic'
    synthetic_bag(bag, steps=40)
    assert bag_main(['eval', str(bag), '--estimator', 'classical',
                     '--out', str(tmp_path / 'eval')]) == 0
    assert 'recorded /perception' not in capsys.readouterr().out
    metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert list(metrics['metrics']) == ['offline']
    assert metrics['metrics']['offline']['frames'] == 40
    assert metrics['metrics']['offline']['joint_mae_deg'] < 1.0


def test_eval_rectifies_a_nudged_camera_with_its_recorded_camera_info(tmp_path):
    bag = tmp_path / 'nudged'
    synthetic_bag(bag, steps=30, scene=Scene(families=('camera',), shift_px=(2.0, -1.0),
                                             roll_deg=6.0, scale=1.04))
    assert len(read_streams(bag).calibrations) == 30
    raw_params = tmp_path / 'raw.yaml'
    raw_params.write_text('perception_node:\n  ros__parameters:\n    rectify: false\n')
    mae = {}
    for name, params in (('rectified', []), ('raw', ['--params-file', raw_params])):
        assert bag_main(['eval', str(bag), '--estimator', 'classical', *map(str, params),
                         '--out', str(tmp_path / name)]) == 0
        metrics = json.loads((tmp_path / name / 'metrics.json').read_text())
        mae[name] = metrics['metrics']['offline']['joint_mae_deg']
    assert mae['rectified'] < 1.0 < 3.0 < mae['raw'], mae


def test_eval_and_to_dataset_read_a_namespaced_loop(tmp_path, capsys):
    bag = tmp_path / 'arm2'
    synthetic_bag(bag, steps=40, namespace='/arm2')
    # The topics are /arm2/...: without the namespace the tool says which one to give.
    assert bag_main(['eval', str(bag), '--out', str(tmp_path / 'eval')]) == 2
    assert '/camera/image_raw' in (error := capsys.readouterr().err)
    assert 'try --namespace /arm2' in error
    assert bag_main(['eval', str(bag), '--namespace', '/arm2', '--estimator', 'classical',
                     '--out', str(tmp_path / 'eval')]) == 0
    metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert metrics['metrics']['offline']['frames'] == 40
    assert bag_main(['to-dataset', str(bag), str(tmp_path / 'out.npz'), '--namespace', 'arm2',
                     '--sequence-length', '4']) == 0
    assert bag_main(['play', str(bag), '--namespace', '/arm2', '--topics', 'no/such']) == 2
    assert '/arm2/no/such' in capsys.readouterr().err


def test_topic_names_resolve_like_a_node_of_the_namespace():
    assert resolve('camera/image_raw') == '/camera/image_raw'
    assert resolve('camera/image_raw', '/arm1') == '/arm1/camera/image_raw'
    assert resolve('camera/image_raw', 'lab/arm1/') == '/lab/arm1/camera/image_raw'
    assert resolve('/clock', '/arm1') == '/clock'
    for bad in ('', 'camera/', 'a//b', 'a b', '~/x'):
        with pytest.raises(ValueError, match='invalid topic name'):
            resolve(bad, '/arm1')


# Bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize('command', ['eval', 'play', 'info', 'to-dataset'])
def test_a_missing_bag_is_named(tmp_path, capsys, command):
    missing = tmp_path / 'no_such_bag'
    argv = [command, str(missing)] + ([str(tmp_path / 'x.npz')] if command == 'to-dataset'
                                      else [])
    assert bag_main(argv) == 2
    error = capsys.readouterr().err
    assert str(missing) in error and 'does not exist' in error


def test_a_directory_that_is_not_a_bag_is_refused(tmp_path, capsys):
    assert bag_main(['eval', str(tmp_path)]) == 2
    assert 'not a readable rosbag2 bag' in capsys.readouterr().err


def test_an_unknown_topic_filter_is_reported(tmp_path, capsys):
    bag = tmp_path / 'synthetic'
    synthetic_bag(bag, steps=3)
    assert bag_main(['play', str(bag), '--topics', '/camera/image_raw', '/no/such']) == 2
    error = capsys.readouterr().err
    assert '/no/such' in error and 'not in the bag' in error and '/joint_states' in error


def test_bad_options_are_refused(tmp_path, capsys):
    bag = tmp_path / 'synthetic'
    synthetic_bag(bag, steps=3)
    assert bag_main(['play', str(bag), '--rate', '0']) == 2
    assert '--rate' in capsys.readouterr().err
    assert bag_main(['record', str(bag)]) == 2  # exists already: never overwritten
    assert 'exists' in capsys.readouterr().err
    assert bag_main(['record', str(tmp_path / 'new'), '--topics', 'camera/']) == 2
    assert 'invalid topic name' in capsys.readouterr().err
    assert bag_main(['record', str(tmp_path / 'new'), '--storage', 'rosbag1']) == 2
    assert bag_main(['to-dataset', str(bag), str(tmp_path / 'out.npz')]) == 2
    assert 'fewer than one sequence' in capsys.readouterr().err


def test_cli_lists_the_bag_command():
    result = subprocess.run([REACHER, '--help'], capture_output=True, text=True, timeout=30)
    assert 'bag' in result.stdout and 'rosbag2' in result.stdout
    result = reacher_bag('eval', '--help')
    assert result.returncode == 0 and '--estimator' in result.stdout


@pytest.mark.ros
def test_record_reports_unseen_topics_and_closes_on_ctrl_c(tmp_path):
    bag = tmp_path / 'empty'
    process = subprocess.Popen([REACHER, 'bag', 'record', str(bag), '--topics', '/no/such',
                                '--storage', 'sqlite3'], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED='1'))
    time.sleep(3.0)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert 'no messages on /no/such' in output
    with Reader(bag) as reader:  # closed properly: metadata written, storage readable
        assert reader.message_count == 0
