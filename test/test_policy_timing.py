"""Pairing a frame's parts by stamp, and the phase lock's decisions (plain Python)."""

from __future__ import annotations

import math

import pytest

from reacher_policy.bundle import FrameBundler, RESTART_NS
from reacher_policy.timing import PhaseLock, STAGES, StageTimes

PARTS = ('joints', 'goal', 'status')
MS = 1_000_000


def test_a_frame_is_handed_over_with_its_own_parts_in_any_order() -> None:
    bundler = FrameBundler(PARTS)
    # Frame 2's goal arrives between frame 1's parts: frame 1 keeps its own goal.
    assert bundler.add('joints', 1 * MS, 'j1') is None
    assert bundler.add('goal', 2 * MS, 'g2') is None
    assert bundler.add('status', 1 * MS, 's1') is None
    assert bundler.add('goal', 1 * MS, 'g1') == {'joints': 'j1', 'goal': 'g1', 'status': 's1'}
    assert bundler.add('status', 2 * MS, 's2') is None
    assert bundler.add('joints', 2 * MS, 'j2') == {'goal': 'g2', 'status': 's2', 'joints': 'j2'}
    assert (bundler.complete, bundler.incomplete, bundler.late) == (2, 0, 0)


def test_older_incomplete_frames_are_dropped_and_late_parts_refused() -> None:
    bundler = FrameBundler(PARTS)
    bundler.add('joints', 1 * MS, 'j1')  # frame 1 never completes
    for part in PARTS:
        frame = bundler.add(part, 2 * MS, part)
    assert frame is not None and bundler.incomplete == 1
    assert bundler.add('goal', 1 * MS, 'g1') is None  # older than the frame handed over
    assert bundler.add('goal', 2 * MS, 'again') is None  # that frame is done
    assert bundler.late == 2


def test_pending_frames_are_bounded_and_a_restarted_clock_starts_over() -> None:
    bundler = FrameBundler(PARTS, max_pending=4)
    for stamp in range(10):
        bundler.add('joints', (10 + stamp) * MS, 'j')
    assert bundler.incomplete == 6
    for part in PARTS:
        frame = bundler.add(part, 30 * MS, part)
    assert frame is not None
    # A bag replayed from its start: stamps jump back by more than RESTART_NS.
    restart = 30 * MS - RESTART_NS - 1
    for part in PARTS:
        frame = bundler.add(part, restart, part)
    assert frame is not None and bundler.complete == 2
    with pytest.raises(ValueError, match='unknown part'):
        bundler.add('latent', 1, None)
    with pytest.raises(ValueError):
        FrameBundler(('a', 'a'))


def lock_after_frames(control_hz: float, camera_hz: float, frames: int = 5,
                      locked: bool = True) -> PhaseLock:
    lock = PhaseLock(1.0 / control_hz, locked=locked)
    for k in range(frames):
        lock.on_bundle(100.0 + k / camera_hz)
    return lock


@pytest.mark.parametrize('control_hz, camera_hz, m', [
    (20.0, 20.0, 1), (40.0, 20.0, 2), (60.0, 20.0, 3), (90.0, 30.0, 3),
    (20.0, 30.0, None), (30.0, 20.0, None), (10.0, 20.0, None)])
def test_the_lock_takes_whole_multiples_of_the_camera_rate(control_hz: float,
                                                           camera_hz: float,
                                                           m: int | None) -> None:
    lock = lock_after_frames(control_hz, camera_hz)
    assert lock.ticks_per_frame == m
    assert lock.mode == ('phase-locked' if m else 'free (camera period no multiple)')
    # Free-running when it cannot lock: bundles do not command, every tick does.
    assert lock.on_bundle(200.0) == (m is not None)
    if m is None:
        assert all(lock.on_tick() for _ in range(5))


def test_locked_at_twice_the_camera_rate_ticks_between_frames_and_waits_for_them() -> None:
    lock = lock_after_frames(40.0, 20.0)
    assert lock.on_bundle(200.0)
    lock.commanded(bundle=True)
    assert lock.on_tick()  # half-way to the next frame: command on the freshest estimate
    lock.commanded(bundle=False)
    assert not lock.on_tick()  # the next frame is due: wait for it
    assert lock.on_bundle(200.05)
    lock.commanded(bundle=True)
    # A lost frame: the tick at its place waits once, then the timer commands (watchdog).
    decisions = [lock.on_tick() for _ in range(5)]
    assert decisions == [True, False, True, True, True]
    assert (lock.waits, lock.watchdog_commands) == (2, 1)


def test_free_running_never_commands_on_a_bundle() -> None:
    lock = lock_after_frames(20.0, 20.0, locked=False)
    assert lock.mode == 'free' and lock.ticks_per_frame is None
    assert not lock.on_bundle(101.0)
    assert all(lock.on_tick() for _ in range(3))


def test_the_first_frames_command_while_the_camera_period_is_unknown() -> None:
    lock = PhaseLock(0.05)
    assert lock.mode == 'locking' and lock.on_bundle(1.0) and lock.on_tick()
    with pytest.raises(ValueError):
        PhaseLock(0.0)


def test_stage_times_report_p50_and_p99_of_every_stage() -> None:
    times = StageTimes(window=100)
    for value in range(1, 201):
        times.add(**{stage: float(value) for stage in STAGES})
    times.add(inference=math.nan)  # a frame without perception's timing: left out
    summary = times.summary()
    assert set(summary) == {f'latency.{stage}_ms.{q}' for stage in STAGES
                            for q in ('p50', 'p99')}
    assert summary['latency.total_ms.p50'] == pytest.approx(150.5)  # the last 100: 101..200
    assert summary['latency.inference_ms.p99'] == pytest.approx(199.01)
    assert times.count() == 100
    assert math.isnan(StageTimes().percentile('total', 50))
    with pytest.raises(ValueError, match='unknown stage'):
        times.add(render=1.0)
