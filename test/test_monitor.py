"""The demo's monitor: per-stage latencies and control-period jitter for the JSON summary."""

import math
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import pytest
from rclpy.executors import SingleThreadedExecutor

from reacher.monitor import period_jitter_ms, RobotMonitor, stage_latencies
from reacher.summary import combine, Summary

pytestmark = pytest.mark.ros


def test_stage_latencies_read_every_latency_key_and_nothing_else():
    stages = stage_latencies({
        'perception_node': {'latency.receive_ms.p50': '0.8', 'latency.receive_ms.p99': '1.4',
                            'latency.inference_ms.p50': '0.5', 'inference_ms_p50': '0.5',
                            'latency.broken_ms.p50': 'n/a'},
        'policy_node': {'latency.total_ms.p50': '3.1', 'latency.total_ms.p99': '4.2',
                        'latency.inference_ms.p50': '0.1', 'latency_ms_p50': '25.0'},
    })
    assert stages['receive'] == {'node': 'perception_node', 'p50': 0.8, 'p99': 1.4}
    assert stages['total'] == {'node': 'policy_node', 'p50': 3.1, 'p99': 4.2}
    assert stages['inference'] == {'node': 'perception_node', 'p50': 0.5}
    assert stages['policy_node/inference'] == {'node': 'policy_node', 'p50': 0.1}
    assert math.isnan(stages['broken']['p50'])
    assert stage_latencies({'policy_node': {'latency_ms_p50': '25'}}) == {}


def test_period_jitter_is_the_deviation_from_the_configured_period():
    times = [0.0, 0.05, 0.10, 0.152, 0.202]
    assert period_jitter_ms(times, 20.0, 100.0) == pytest.approx(2.0)
    assert period_jitter_ms(times, 20.0, 50.0) == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(period_jitter_ms([0.0], 20.0))
    assert math.isnan(period_jitter_ms(times, math.nan))


def test_combined_summary_keeps_the_worst_stage_of_the_loops():
    one = Summary('classical', 'ik', 1.0, latency_stages_ms={'total': {'node': 'policy_node',
                                                                       'p50': 3.0, 'p99': 4.0}})
    two = Summary('classical', 'ik', 1.0, latency_stages_ms={'total': {'node': 'policy_node',
                                                                       'p50': 2.0, 'p99': 5.0}})
    one.corroborated_commands, two.corroborated_commands = 3, 4
    total = combine([one, two], '/')
    assert total.latency_stages_ms['total'] == {'node': 'policy_node', 'p50': 3.0, 'p99': 5.0}
    assert total.corroborated_commands == 7


def test_the_monitor_fills_stages_and_jitter_from_real_diagnostics(collector):
    publisher = collector.node.create_publisher(DiagnosticArray, '/test_monitor/diagnostics', 10)
    monitor = RobotMonitor('/test_monitor')
    executor = SingleThreadedExecutor()
    executor.add_node(monitor.node)
    executor.add_node(collector.node)
    values = {'configured_rate_hz': '20.0', 'latency.total_ms.p50': '2.5',
              'latency.total_ms.p99': '4.5', 'timing.mode': 'phase-locked',
              'timing.period_jitter_ms.p99': '0.4', 'confidence_stops': '2',
              'corroborated_commands': '7'}
    message = DiagnosticArray(status=[DiagnosticStatus(
        name='policy_node: control',
        values=[KeyValue(key=k, value=v) for k, v in values.items()])])
    deadline = time.monotonic() + 20
    while not monitor.status('policy_node') and time.monotonic() < deadline:
        publisher.publish(message)
        executor.spin_once(timeout_sec=0.05)
    executor.shutdown()
    monitor.node.destroy_node()
    assert monitor.status('policy_node'), 'no diagnostics came through DDS'
    monitor.command_times = [0.0, 0.05, 0.1, 0.151]
    monitor.command_values = [(0.0, 0.0), (0.05, 0.0), (0.1, 0.0), (0.15, 0.0)]
    monitor.start, monitor.end = 0.0, 1.0
    summary = Summary('classical', 'ik', 1.0)
    monitor.fill(summary)
    assert summary.latency_stages_ms == {'total': {'node': 'policy_node', 'p50': 2.5,
                                                   'p99': 4.5}}
    assert summary.control_mode == 'phase-locked'
    assert summary.policy_period_jitter_ms_p99 == 0.4
    assert (summary.confidence_stops, summary.corroborated_commands) == (2, 7)
    assert summary.command_accel_rms == pytest.approx(math.sqrt(0.5))  # 1 rad/s^2, one joint
    assert summary.control_period_jitter_ms_p99 == pytest.approx(0.98, abs=0.03)


def test_smoothness_in_time_units_whatever_the_rate():
    from reacher.monitor import smoothness

    # A ramp of 1 rad/s^2: the same acceleration at 20 and at 60 Hz, and no jerk.
    for rate in (20.0, 60.0):
        ramp = [(t / rate, -t / rate) for t in range(30)]
        accel, jerk = smoothness(ramp, rate)
        assert accel == pytest.approx(1.0) and jerk == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(smoothness([(0.0, 0.0)], 20.0)[0])
