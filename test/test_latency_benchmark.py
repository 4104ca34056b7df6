"""benchmarks/latency.py's own logic: which runs it makes and which it counts for a mode."""

import importlib.util
import sys

from ros_support import ROOT

spec = importlib.util.spec_from_file_location('latency_benchmark',
                                              ROOT / 'benchmarks' / 'latency.py')
latency = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = latency  # dataclasses look their module up while it loads
spec.loader.exec_module(latency)


def test_the_default_run_is_short_and_the_full_sweep_has_every_combination():
    default = latency.cases(latency.Args())
    assert len(default) == 6 and {c.mode for c in default} == {'free', 'phase-locked'}
    assert {(c.camera_hz, c.window) for c in default} == {(20.0, False), (20.0, True),
                                                          (30.0, False)}
    full = latency.cases(latency.Args(full=True))
    assert len(full) == 2 * 2 * 3 * 2
    assert {c.control_hz for c in full} == {20.0, 40.0, 60.0, 30.0, 90.0}


def test_a_run_counts_for_a_mode_only_when_the_policy_names_it():
    assert latency.mode_confirmed({'control_mode': 'phase-locked'}, 'phase-locked')
    assert not latency.mode_confirmed({'control_mode': 'free'}, 'phase-locked')
    # A policy from before phase locking names no mode: it runs free.
    assert latency.mode_confirmed({'control_mode': ''}, 'free')
    assert not latency.mode_confirmed({'control_mode': ''}, 'phase-locked')


def test_the_table_has_the_stage_columns_only_when_a_node_reports_them():
    summary = {'case': {'camera_hz': 20.0, 'control_hz': 20.0, 'control_multiple': 1,
                        'mode': 'free', 'window': True},
               'success_rate': 1.0, 'goals_reached': 14, 'goals_timed_out': 0,
               'achieved_control_rate_hz': 19.9, 'configured_control_rate_hz': 20.0,
               'latency_ms_p50': 30.0, 'latency_ms_p99': None, 'load_average_before': [3.0]}
    text = latency.table([latency.row(summary)])
    assert '| 20 | 20 | free | Xvfb | 1.00 (14) | 19.90 (-0.50%) |' in text
    assert 'no per-stage latency' in text
    summary['latency_stages_ms'] = {'total': {'node': 'policy_node', 'p50': 8.0, 'p99': 14.0}}
    assert 'total p50 / p99 ms' in latency.table([latency.row(summary)])


def test_done_when_checks_every_estimator_on_the_bars():
    runs = latency.cases(latency.Args(done_when=True, estimators=('classical', 'slac'),
                                      repeats=2))
    checked = [c for c in runs if c.checked]
    assert [c.estimator for c in checked] == ['classical'] * 2 + ['slac'] * 2
    assert all(c.mode == 'phase-locked' and not c.window for c in checked)
    # the per-stage comparison: both modes, with the window under Xvfb, each estimator
    assert {(c.estimator, c.mode, c.window) for c in runs if not c.checked} == {
        (e, m, w) for e in ('classical', 'slac')
        for m, w in (('free', False), ('free', True), ('phase-locked', True))}


def test_bar_failures_name_each_missed_bar():
    good = {'latency_ms_p50': 2.9, 'latency_ms_p99': 4.8, 'control_period_jitter_ms_p99': 0.9,
            'rate_error_pct': -0.9, 'success_rate': 0.95}
    assert latency.bar_failures(good) == []
    bad = {**good, 'latency_ms_p99': 5.1, 'rate_error_pct': -1.5, 'success_rate': None}
    failures = latency.bar_failures(bad)
    assert [f.split('=')[0] for f in failures] == ['latency_ms_p99', 'rate_error_pct',
                                                   'success_rate']
