"""perception_policy: perception and policy composed in one process, the bundle in-process."""

import json
import subprocess

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from sensor_msgs.msg import JointState

from ros_support import executable, latest_diagnostics, NodeProcess, running

pytestmark = pytest.mark.ros

FILES = ['perception.yaml', 'policy.yaml']


def test_the_composed_loop_reaches_goals_with_the_bundle_in_process(tmp_path, collector):
    collector.listen('/diagnostics', DiagnosticArray, depth=200)
    collector.listen('/perception/joint_states', JointState, depth=200)
    sim = NodeProcess('sim_node', tmp_path, 'sim.yaml')
    composed = NodeProcess('perception_policy', tmp_path, FILES)
    with running(sim, composed):
        def reached() -> int:
            return int((latest_diagnostics(collector, 'sim_node') or {}).get('goals_reached', 0))
        assert collector.spin_until(lambda: reached() >= 3, timeout=90), \
            composed.output()[-3000:]
        assert composed.alive(), composed.output()[-3000:]
        policy = latest_diagnostics(collector, 'policy_node')
        perception = latest_diagnostics(collector, 'perception_node')
    assert policy is not None and perception is not None  # both nodes, their own names
    # Every frame came in-process: paired, none dropped for a part read twice (DDS too).
    assert int(policy['frames.paired']) > 20, policy
    assert int(policy['frames.late_parts']) == 0 and int(policy['frames.incomplete']) <= 1, policy
    assert int(policy['stale_stops']) == 0
    # The parts still go out on DDS for everyone else.
    assert len(collector.messages['/perception/joint_states']) > 20


def test_a_bad_parameter_of_either_node_stops_the_start_by_name(tmp_path):
    for name, value in (('runtime', 'tensorrt'), ('test_time_symmetries', 3),
                        ('controller', 'nonexistent')):
        process = NodeProcess('perception_policy', tmp_path, FILES, {name: value})
        with running(process):
            assert process.wait(timeout=60) == 2, process.output()
        lines = [line for line in process.output().splitlines() if line.strip()]
        fatal = [line for line in lines if '[FATAL]' in line]
        # One line says why (the perception node may have said it started, before).
        assert len(fatal) == 1 and name in fatal[0] and lines[-1] == fatal[0], lines


def test_the_demo_runs_composed(tmp_path):
    result = subprocess.run(
        [executable('reacher'), 'demo', '--headless', '--duration', '15', '--json',
         '--composed', '--log-dir', str(tmp_path)],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary['nodes']) == {'sim_node', 'perception_policy'}, summary['nodes']
    assert all(code == 0 for code in summary['nodes'].values()), summary['nodes']
    assert summary['goals_reached'] >= 2 and summary['control_mode'] == 'phase-locked'
    assert summary['estimator'] == 'slac' and summary['controller'] == 'ik'


def test_the_nodes_of_one_process_must_agree_on_its_scheduling(tmp_path, tmp_path_factory):
    # thread_priority is the process's: a value for one node only is refused by name.
    override = tmp_path_factory.mktemp('params') / 'policy_priority.yaml'
    override.write_text('/**/policy_node:\n  ros__parameters:\n    thread_priority: 10\n')
    process = NodeProcess('perception_policy', tmp_path, [*FILES, override])
    with running(process):
        assert process.wait(timeout=60) == 2, process.output()
    fatal = [line for line in process.output().splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1 and 'thread_priority' in fatal[0], process.output()
