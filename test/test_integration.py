"""The closed loop: the three node executables as separate processes over real DDS."""

import json
import math
import os
import subprocess

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray

from ros_support import executable, NodeProcess, running

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TOPICS = {
    '/camera/image_raw': Image, '/camera/camera_info': CameraInfo,
    '/joint_states': JointState, '/goal': PointStamped,
    '/perception/joint_states': JointState, '/perception/fingertip': PointStamped,
    '/perception/goal': PointStamped, '/joint_commands': Float64MultiArray,
    '/diagnostics': DiagnosticArray,
}


def goals_reached(collector):
    for array in reversed(collector.messages['/diagnostics']):
        for status in array.status:
            if status.name.startswith('sim_node'):
                values = {kv.key: kv.value for kv in status.values}
                return int(values['goals_reached']), int(values['goals_timed_out'])
    return 0, 0


def test_arm_reaches_goals_from_pixels(tmp_path, collector):
    for topic, msg_type in TOPICS.items():
        collector.listen(topic, msg_type, depth=200)
    nodes = [NodeProcess(name, tmp_path, f'{file}.yaml') for name, file in
             [('sim_node', 'sim'), ('perception_node', 'perception'), ('policy_node', 'policy')]]
    with running(*nodes):
        reached = collector.spin_until(lambda: goals_reached(collector)[0] >= 4, timeout=90)
        logs = '\n'.join(node.output()[-2000:] for node in nodes)
        assert reached, f'goals (reached, timed out) = {goals_reached(collector)}\n{logs}'
        assert all(node.alive() for node in nodes), logs
    assert goals_reached(collector)[1] == 0

    messages = collector.messages
    for topic in TOPICS:
        assert len(messages[topic]) > 5, f'too few messages on {topic}'
    for command in messages['/joint_commands']:
        assert len(command.data) == 2 and all(math.isfinite(v) for v in command.data)
        assert max(abs(v) for v in command.data) <= 1.0 + 1e-9
    for image in messages['/camera/image_raw'][-5:]:
        assert image.encoding == 'rgb8' and len(image.data) == image.height * image.step
    for topic in ('/perception/fingertip', '/perception/goal', '/goal'):
        assert all(m.header.frame_id == 'world' for m in messages[topic])
    reporters = {status.name.split(':')[0] for array in messages['/diagnostics']
                 for status in array.status}
    assert {'sim_node', 'perception_node', 'policy_node'} <= reporters
    latest = {status.name.split(':')[0]: {kv.key: kv.value for kv in status.values}
              for array in messages['/diagnostics'] for status in array.status}
    assert {'goals_reached', 'rate_hz', 'dropped_commands'} <= set(latest['sim_node'])
    assert {'rate_hz', 'inference_ms_p50', 'inference_ms_p99', 'frames_without_arm',
            'dropped_images'} <= set(latest['perception_node'])
    policy = latest['policy_node']
    assert {'rate_hz', 'deadline_misses', 'latency_ms_p50', 'latency_ms_p99',
            'stale_stops'} <= set(policy)
    assert float(policy['latency_ms_p50']) > 0 and int(policy['stale_stops']) == 0

    # Each estimate carries its image's stamp, and matches the ground truth of that instant.
    truth = {(m.header.stamp.sec, m.header.stamp.nanosec): np.array(m.position)
             for m in messages['/joint_states']}
    errors = [np.angle(np.exp(1j * (np.array(m.position) - truth[key])))
              for m in messages['/perception/joint_states']
              if (key := (m.header.stamp.sec, m.header.stamp.nanosec)) in truth]
    assert len(errors) > 20
    assert np.degrees(np.abs(errors)).mean() < 3.0


@pytest.mark.parametrize('estimator', [None, 'classical'])
def test_demo_command_prints_a_json_summary(tmp_path, estimator):
    flags = ['--estimator', estimator] if estimator else []
    result = subprocess.run(
        [executable('reacher'), 'demo', '--headless', '--duration', '20', '--json',
         '--log-dir', str(tmp_path), *flags],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # SLAC is the default estimator; the summary says which one ran.
    assert summary['estimator'] == (estimator or 'slac') and summary['controller'] == 'ik'
    assert summary['scene'] == 'clean'
    assert summary['goals_reached'] >= 2
    assert summary['success_rate'] >= 0.9
    assert summary['achieved_control_rate_hz'] > 0.5 * summary['configured_control_rate_hz']
    assert 0.0 < summary['latency_ms_p50'] <= summary['latency_ms_p99']
    assert summary['confidence_stops'] >= 0 and summary['corroborated_commands'] >= 0
    if estimator == 'classical':
        # The classical estimator is sure of every clean frame: no confidence stop and
        # nothing acted on while unsure, and the policy's counts reach the summary.
        assert summary['confidence_stops'] == 0
        assert summary['corroborated_commands'] == 0
    assert all(code == 0 for code in summary['nodes'].values()), summary['nodes']


def test_demo_refuses_bad_arguments(tmp_path):
    result = subprocess.run([executable('reacher'), 'demo', '--headless', '--duration', '-1'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and '--duration' in result.stderr


@pytest.mark.parametrize('arguments, named', [
    (['--camera-rate', '30'], '--camera-rate 30 must divide the physics rate 20 Hz'),
    (['--physics-rate', '-60'], '--physics-rate'),
    (['--camera-rate', '30', '--physics-rate', '60', '--estimator', 'slac'],
     'SLAC model was trained on frames 0.05 s apart (20 Hz)'),
    (['--estimator', 'classical', '--controller', 'slac'],
     '--controller slac acts on the SLAC latent'),
])
def test_demo_refuses_rates_that_cannot_work_before_any_node_starts(tmp_path, arguments, named):
    result = subprocess.run([executable('reacher'), 'demo', '--headless', *arguments,
                             '--log-dir', str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and named in result.stderr, result.stderr
    assert not list(tmp_path.glob('*_node.log'))


def test_loop_runs_on_simulation_time(tmp_path, collector):
    """sim_node publishes /clock; perception and policy run with use_sim_time:=true."""
    collector.listen('/diagnostics', DiagnosticArray, depth=200)
    collector.listen('/perception/joint_states', JointState, depth=200)
    nodes = [NodeProcess('sim_node', tmp_path, 'sim.yaml', {'publish_clock': True}),
             NodeProcess('perception_node', tmp_path, 'perception.yaml',
                         {'use_sim_time': True}),
             NodeProcess('policy_node', tmp_path, 'policy.yaml', {'use_sim_time': True})]
    with running(*nodes):
        reached = collector.spin_until(lambda: goals_reached(collector)[0] >= 2, timeout=60)
        logs = '\n'.join(node.output()[-2000:] for node in nodes)
        assert reached, logs
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
              for m in collector.messages['/perception/joint_states']]
    # Estimates carry simulation time (seconds since the sim started), not the wall clock.
    assert 0.0 < min(stamps) and max(stamps) < 120.0
    policy = [{kv.key: kv.value for kv in status.values}
              for array in collector.messages['/diagnostics'] for status in array.status
              if status.name.startswith('policy_node')]
    assert policy and int(policy[-1]['stale_stops']) == 0


def test_demo_without_a_display_says_what_to_do_and_leaves_no_node_running(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ('DISPLAY', 'WAYLAND_DISPLAY')}
    result = subprocess.run([executable('reacher'), 'demo', '--duration', '5',
                             '--log-dir', str(tmp_path)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and '--headless' in result.stderr, result.stderr
    # The window is checked before any node starts: no node log was even opened.
    assert not list(tmp_path.glob('*_node.log'))
