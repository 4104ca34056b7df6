"""Behaviour of the per-joint PID smoother on simulated integrator plants."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import pytest

from reacher_common.kinematics import wrap_angle
from reacher_policy.config import PidConfig
from reacher_policy.pid import PidSmoother

FloatArray = npt.NDArray[np.float64]

DT = 0.05


def run_integrator(pid: PidSmoother, start: npt.ArrayLike, setpoint: npt.ArrayLike,
                   steps: int, delay: int = 0, velocity_limit: float = 1.0,
                   blocked_steps: int = 0) -> tuple[FloatArray, FloatArray]:
    """Close the loop on a kinematic joint (q' = clip(u)), measuring q ``delay`` ticks late.

    :param blocked_steps: the joint cannot move during the first this many steps.
    :return: joint angles (steps + 1, n) and commands (steps, n).
    """
    positions = [np.asarray(start, dtype=np.float64)]
    commands = []
    for step in range(steps):
        measured = positions[max(0, len(positions) - 1 - delay)]
        command = pid.update(np.asarray(setpoint, dtype=np.float64), measured, DT)
        commands.append(command)
        velocity = np.clip(command, -velocity_limit, velocity_limit)
        if step < blocked_steps:
            velocity = np.zeros_like(velocity)
        positions.append(wrap_angle(positions[-1] + velocity * DT))
    return np.array(positions), np.array(commands)


@pytest.mark.parametrize('delay', [0, 1, 2])
def test_step_response_converges_without_overshoot(delay: int) -> None:
    start, target = np.array([0.0, 0.5]), np.array([1.5, -0.2])
    positions, _ = run_integrator(PidSmoother(PidConfig()), start, target, steps=100,
                                  delay=delay)
    np.testing.assert_allclose(positions[-1], target, atol=1e-3)
    # Progress towards the target is never undone by more than a small bound.
    direction = np.sign(target - start)
    overshoot = np.max((positions - target) * direction)
    assert overshoot < 0.01
    # Fast: within 5 mrad after 3.5 s (1.5 rad at the 1 rad/s limit takes 1.5 s).
    assert np.abs(positions[70:] - target).max() < 5e-3


def test_output_is_clamped() -> None:
    config = PidConfig(kp=10.0, output_limit=0.7, rate_limit=0.0)
    pid = PidSmoother(config)
    command = pid.update(np.array([2.0, -2.0]), np.zeros(2), DT)
    np.testing.assert_allclose(command, [0.7, -0.7])
    _, commands = run_integrator(pid, np.zeros(2), [3.0, -3.0], steps=100)
    assert np.all(np.abs(commands) <= 0.7 + 1e-12)


def test_rate_limit_bounds_change_per_update() -> None:
    config = PidConfig(kp=10.0, output_limit=1.0, rate_limit=4.0)
    pid = PidSmoother(config)
    # From rest (command 0) the first command may rise by rate_limit * dt only.
    first = pid.update(np.array([1.0, -1.0]), np.zeros(2), DT)
    np.testing.assert_allclose(first, [0.2, -0.2])
    _, commands = run_integrator(pid, np.zeros(2), [1.0, -1.0], steps=60)
    changes = np.abs(np.diff(np.vstack([first, commands]), axis=0))
    assert changes.max() <= 4.0 * DT + 1e-12
    assert np.abs(commands).max() == pytest.approx(1.0)


def test_rate_limit_zero_disables() -> None:
    pid = PidSmoother(PidConfig(kp=10.0, rate_limit=0.0))
    np.testing.assert_allclose(pid.update(np.array([1.0, -1.0]), np.zeros(2), DT),
                               [1.0, -1.0])


def naive_pid(kp: float, ki: float, output_limit: float, start: float, setpoint: float,
              steps: int, blocked_steps: int) -> FloatArray:
    """Reference PI loop with no anti-windup at all, on the same blocked integrator plant."""
    position, integral, positions = start, 0.0, [start]
    for step in range(steps):
        error = setpoint - position
        integral += error * DT
        command = min(max(kp * error + ki * integral, -output_limit), output_limit)
        if step >= blocked_steps:
            position += command * DT
        positions.append(position)
    return np.array(positions)


def test_anti_windup_recovers_quickly_after_long_saturation() -> None:
    # The joint is blocked for 5 s with a 1 rad error: the command saturates throughout.
    config = PidConfig(kp=2.0, ki=2.0, kd=0.0, integral_limit=100.0, rate_limit=0.0)
    blocked, steps, target = 100, 300, 1.0
    positions, _ = run_integrator(PidSmoother(config, num_joints=1), [0.0], [target],
                                  steps=steps, blocked_steps=blocked)
    reference = naive_pid(2.0, 2.0, 1.0, 0.0, target, steps, blocked)

    def settle_step(trajectory: FloatArray) -> int:
        far = np.nonzero(np.abs(trajectory - target) > 0.02)[0]
        return int(far[-1]) + 1

    overshoot = positions[:, 0].max() - target
    reference_overshoot = reference.max() - target
    assert overshoot < 0.15
    assert reference_overshoot > 1.0
    assert settle_step(positions[:, 0]) - blocked < 0.5 * (settle_step(reference) - blocked)
    np.testing.assert_allclose(positions[-1], [target], atol=0.02)


def test_integral_is_clamped_to_its_limit() -> None:
    # Small error, output unsaturated: only the integral clamp bounds the windup.
    config = PidConfig(kp=0.1, ki=0.5, integral_limit=0.3, rate_limit=0.0)
    pid = PidSmoother(config, num_joints=1)
    for _ in range(400):
        pid.update(np.array([0.2]), np.array([0.0]), DT)
    np.testing.assert_allclose(pid.integral, [0.3])
    np.testing.assert_allclose(pid.command, [0.1 * 0.2 + 0.5 * 0.3])


def test_derivative_filter_attenuates_measurement_noise() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.01, size=(400, 2))
    base = PidConfig(kp=0.0, ki=0.0, kd=0.5, rate_limit=0.0, output_limit=100.0)

    def command_std(time_constant_s: float) -> float:
        pid = PidSmoother(dataclasses.replace(base, derivative_time_constant_s=time_constant_s))
        commands = [pid.update(np.zeros(2), sample, DT) for sample in noise]
        return float(np.std(commands[20:]))

    raw, filtered = command_std(0.0), command_std(0.2)
    assert filtered < 0.4 * raw


def test_no_derivative_kick_on_setpoint_jump() -> None:
    pid = PidSmoother(PidConfig(kp=0.0, ki=0.0, kd=1.0, rate_limit=0.0))
    pid.update(np.zeros(2), np.zeros(2), DT)
    command = pid.update(np.array([1.5, -1.5]), np.zeros(2), DT)
    np.testing.assert_allclose(command, [0.0, 0.0])


def test_derivative_opposes_measured_motion() -> None:
    pid = PidSmoother(PidConfig(kp=0.0, ki=0.0, kd=1.0, derivative_time_constant_s=0.0,
                                rate_limit=0.0))
    pid.update(np.zeros(2), np.array([0.0, -math.pi + 0.01]), DT)
    # Joint 0 moves at +0.5 rad/s, joint 1 at -0.5 rad/s across the wrap.
    command = pid.update(np.zeros(2), np.array([0.025, math.pi - 0.015]), DT)
    np.testing.assert_allclose(command, [-0.5, 0.5], atol=1e-9)


def test_wraps_the_short_way_round() -> None:
    start, target = np.array([-math.pi + 0.1]), np.array([math.pi - 0.1])
    pid = PidSmoother(PidConfig(rate_limit=0.0), num_joints=1)
    first = pid.update(target, start, DT)
    assert first[0] < 0.0  # through -pi, not 6.08 rad the long way
    pid.reset()
    positions, commands = run_integrator(pid, start, target, steps=40)
    # The distance travelled is about 0.2 rad, and the joint ends at the target.
    assert np.abs(commands).sum() * DT < 0.25
    assert abs(float(wrap_angle(positions[-1] - target)[0])) < 1e-3


def test_reset_forgets_state() -> None:
    pid = PidSmoother(PidConfig(ki=1.0))
    for _ in range(10):
        pid.update(np.array([0.3, 0.3]), np.zeros(2), DT)
    pid.reset()
    np.testing.assert_array_equal(pid.integral, np.zeros(2))
    np.testing.assert_array_equal(pid.command, np.zeros(2))
    np.testing.assert_array_equal(pid.velocity_estimate, np.zeros(2))
    fresh = PidSmoother(PidConfig(ki=1.0))
    np.testing.assert_array_equal(pid.update(np.array([0.3, 0.1]), np.zeros(2), DT),
                                  fresh.update(np.array([0.3, 0.1]), np.zeros(2), DT))


@pytest.mark.parametrize('dt', [0.0, -0.05, math.nan, math.inf])
def test_bad_dt_raises(dt: float) -> None:
    with pytest.raises(ValueError, match='dt must be a positive finite number'):
        PidSmoother(PidConfig()).update(np.zeros(2), np.zeros(2), dt)


@pytest.mark.parametrize(('setpoint', 'measurement', 'name'), [
    ([math.nan, 0.0], [0.0, 0.0], 'setpoint'),
    ([0.0, 0.0], [0.0, math.inf], 'measurement'),
    ([0.0, 0.0, 0.0], [0.0, 0.0], 'setpoint'),
    ([0.0, 0.0], [0.0], 'measurement'),
])
def test_bad_inputs_raise(setpoint: list[float], measurement: list[float], name: str) -> None:
    with pytest.raises(ValueError, match=f'{name} must be 2 finite numbers'):
        PidSmoother(PidConfig()).update(setpoint, measurement, DT)


def test_num_joints_must_be_positive() -> None:
    with pytest.raises(ValueError, match='num_joints'):
        PidSmoother(PidConfig(), num_joints=0)


def test_set_config_keeps_state_and_clips_integral() -> None:
    pid = PidSmoother(PidConfig(kp=1.0, ki=1.0, integral_limit=1.0, rate_limit=0.0))
    for _ in range(20):
        pid.update(np.array([0.5, -0.5]), np.zeros(2), DT)
    before = pid.command.copy()
    pid.set_config(PidConfig(kp=1.0, ki=1.0, integral_limit=0.1, rate_limit=1.0))
    np.testing.assert_allclose(pid.integral, [0.1, -0.1])
    command = pid.update(np.array([0.5, -0.5]), np.zeros(2), DT)
    # The rate limit now applies from the last command, not from rest.
    assert np.all(np.abs(command - before) <= 1.0 * DT + 1e-12)
    assert np.all(np.abs(command) > 0.5)


def test_velocity_path_bypasses_the_gains_and_keeps_clamp_and_rate_limit() -> None:
    wanted = np.array([0.8, -0.3])
    for kp in (0.0, 2.5, 100.0):
        pid = PidSmoother(PidConfig(kp=kp, rate_limit=0.0))
        np.testing.assert_allclose(pid.update_velocity(wanted, np.zeros(2), DT), wanted)
    clamped = PidSmoother(PidConfig(output_limit=0.5, rate_limit=0.0))
    np.testing.assert_allclose(clamped.update_velocity([2.0, -2.0], np.zeros(2), DT),
                               [0.5, -0.5])
    limited = PidSmoother(PidConfig(rate_limit=2.0))
    first = limited.update_velocity(wanted, np.zeros(2), DT)
    np.testing.assert_allclose(first, [0.1, -0.1])  # 2 rad/s^2 * 0.05 s from rest
    second = limited.update_velocity(wanted, np.zeros(2), DT)
    np.testing.assert_allclose(second, [0.2, -0.2])


def test_velocity_path_holds_the_integral_and_tracks_the_measurement() -> None:
    pid = PidSmoother(PidConfig(ki=1.0, rate_limit=0.0, derivative_time_constant_s=0.0))
    pid.update([1.0, 1.0], np.zeros(2), DT)
    integral = pid.integral.copy()
    pid.update_velocity([0.5, 0.5], np.zeros(2), DT)
    pid.update_velocity([0.5, 0.5], np.full(2, 0.025), DT)
    np.testing.assert_array_equal(pid.integral, integral)
    np.testing.assert_allclose(pid.velocity_estimate, [0.5, 0.5])


@pytest.mark.parametrize('velocity', [[math.nan, 0.0], [1.0], [math.inf, 1.0]])
def test_velocity_path_refuses_bad_input(velocity: list[float]) -> None:
    with pytest.raises(ValueError, match='velocity'):
        PidSmoother(PidConfig()).update_velocity(velocity, np.zeros(2), DT)
