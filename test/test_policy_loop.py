"""The policy loop: staleness, recovery, controllers, configs and closed-loop reaching."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from reacher_common.config_tools import config_from_dict, field_docs
from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.kinematics import forward_kinematics
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.controllers import CONTROLLERS, IkController, make_controller
from reacher_policy.loop import ControlOutput, PerceivedState, PolicyLoop
from reacher_sim.arm import ArmSim
from reacher_sim.config import SimConfig

FloatArray = npt.NDArray[np.float64]

GOAL = np.array([0.0, 0.15])


def state(stamp_s: float, joints: npt.ArrayLike = (0.0, 0.0),
          goal: npt.ArrayLike = GOAL) -> PerceivedState:
    return PerceivedState(stamp_s, np.asarray(joints, dtype=np.float64),
                          np.asarray(goal, dtype=np.float64))


def test_no_estimate_commands_zero_without_reporting_stale_transition() -> None:
    loop = PolicyLoop(PolicyConfig(), PidConfig())
    for tick in range(5):
        output = loop.step(0.05 * tick)
        np.testing.assert_array_equal(output.command, np.zeros(2))
        assert output.stale and not output.became_stale and output.estimate_age_s is None


def test_stale_estimate_gives_zeros_and_became_stale_exactly_once() -> None:
    config = PolicyConfig(control_rate_hz=20.0, estimate_timeout_s=0.5)
    loop = PolicyLoop(config, PidConfig())
    loop.update_estimate(state(0.0))
    outputs = [loop.step(0.05 * tick) for tick in range(40)]  # 0 .. 1.95 s
    fresh = [output for output in outputs if not output.stale]
    stale = [output for output in outputs if output.stale]
    assert len(fresh) == 11  # ages 0 .. 0.5 s
    assert all(np.any(output.command != 0.0) for output in fresh)
    assert all(np.all(output.command == 0.0) for output in stale)
    assert [output.became_stale for output in outputs].count(True) == 1
    assert stale[0].became_stale
    assert stale[0].estimate_age_s == pytest.approx(0.55)


def test_recovers_cleanly_when_fresh_estimates_return() -> None:
    pid_config = PidConfig()
    loop = PolicyLoop(PolicyConfig(control_rate_hz=20.0, estimate_timeout_s=0.5), pid_config)
    loop.update_estimate(state(0.0))
    for tick in range(5):
        loop.step(0.05 * tick)
    assert loop.step(1.0).became_stale
    assert not loop.step(1.05).became_stale
    loop.update_estimate(state(1.1))
    output = loop.step(1.1)
    assert not output.stale and not output.became_stale
    assert output.estimate_age_s == pytest.approx(0.0)
    # The PID restarted from rest: the first command is rate-limited from zero over 1/rate.
    step = pid_config.rate_limit / 20.0
    assert 0.0 < np.abs(output.command).max() <= step + 1e-12
    # Going stale again is reported again, once.
    flags = [loop.step(1.1 + 0.05 * tick).became_stale for tick in range(1, 30)]
    assert flags.count(True) == 1


def test_future_stamp_beyond_timeout_is_stale() -> None:
    loop = PolicyLoop(PolicyConfig(estimate_timeout_s=0.5), PidConfig())
    loop.update_estimate(state(10.0))
    output = loop.step(9.0)
    assert output.stale and output.estimate_age_s == pytest.approx(-1.0)
    assert not loop.step(9.6).stale


def test_step_dt_comes_from_the_clock() -> None:
    pid_config = PidConfig(kp=1.0, rate_limit=0.0)
    loop = PolicyLoop(PolicyConfig(control_rate_hz=20.0, estimate_timeout_s=0.5), pid_config)
    loop.update_estimate(state(0.0))
    first = loop.step(0.0)
    repeat = loop.step(0.0)
    np.testing.assert_array_equal(first.command, repeat.command)
    assert first.command is not repeat.command
    # Time going backwards restarts control as on a first tick.
    loop.step(0.2)
    np.testing.assert_array_equal(loop.step(0.1).command, first.command)


def test_update_estimate_copies_and_validates() -> None:
    loop = PolicyLoop(PolicyConfig(), PidConfig())
    joints = np.array([0.1, 0.2])
    loop.update_estimate(PerceivedState(1.0, joints, GOAL))
    joints[0] = 5.0
    assert loop.estimate is not None and loop.estimate.joint_positions[0] == 0.1
    with pytest.raises(ValueError, match='joint_positions'):
        loop.update_estimate(state(0.0, joints=(math.nan, 0.0)))
    with pytest.raises(ValueError, match='goal'):
        loop.update_estimate(state(0.0, goal=(0.1, math.inf)))
    with pytest.raises(ValueError, match='goal'):
        loop.update_estimate(state(0.0, goal=(0.1, 0.1, 0.0)))
    with pytest.raises(ValueError, match='stamp_s'):
        loop.update_estimate(state(math.nan))
    with pytest.raises(ValueError, match='now_s'):
        loop.step(math.inf)


def test_the_default_timeout_is_three_camera_periods() -> None:
    # A dead or frozen perception stops the arm within 3 frames of 50 ms (issue 12).
    assert PolicyConfig().estimate_timeout_s == pytest.approx(3 * Timing().dt)
    loop = PolicyLoop(PolicyConfig(), PidConfig())
    loop.update_estimate(state(0.0))
    assert not loop.step(0.15).stale
    assert loop.step(0.2).became_stale


def test_goals_outside_the_arena_are_refused() -> None:
    loop = PolicyLoop(PolicyConfig(), PidConfig())
    np.testing.assert_array_equal(loop.check_goal([0.2, -0.2]), [0.2, -0.2])
    for goal in ([1e300, 1e300], [0.21, 0.0], [0.0, -0.3], [math.nan, 0.0]):
        with pytest.raises(ValueError, match='outside the arena'):
            loop.update_estimate(state(0.0, goal=goal))
    assert loop.estimate is None


def test_the_pid_does_not_rebuild_the_controller() -> None:
    loop = PolicyLoop(PolicyConfig(), PidConfig())
    controller = loop.controller
    loop.set_pid_config(PidConfig(kp=0.0))
    assert loop.controller is controller and loop.pid.config.kp == 0.0


def test_only_the_timing_changes_at_run_time() -> None:
    loop = PolicyLoop(PolicyConfig(), PidConfig())
    loop.set_config(PolicyConfig(estimate_timeout_s=0.3, warn_throttle_s=1.0))
    assert loop.config.estimate_timeout_s == 0.3
    with pytest.raises(ValueError, match='controller'):
        loop.set_config(PolicyConfig(controller='learned'))


class Faulty:
    """A velocity controller that fails, as an unforeseen bug would."""

    def __init__(self, config: PolicyConfig, pid: PidConfig) -> None:
        pass

    def reset(self) -> None:
        pass

    def velocity(self, joint_positions: FloatArray, goal: FloatArray) -> FloatArray:
        return np.array([math.nan, 0.0])


def test_a_failed_step_raises_and_stop_restarts_from_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CONTROLLERS, 'faulty', Faulty)
    loop = PolicyLoop(PolicyConfig(controller='faulty'), PidConfig())
    loop.update_estimate(state(0.0))
    with pytest.raises(ValueError, match='velocity'):
        loop.step(0.0)
    output = loop.stop()
    np.testing.assert_array_equal(output.command, np.zeros(2))
    np.testing.assert_array_equal(loop.pid.command, np.zeros(2))


def test_stale_property_and_live_pid_update() -> None:
    loop = PolicyLoop(PolicyConfig(), PidConfig(rate_limit=0.0))
    assert loop.stale
    loop.update_estimate(state(0.0))
    first = loop.step(0.0).command
    assert not loop.stale
    loop.set_pid_config(PidConfig(kp=0.5, rate_limit=0.0))
    assert loop.pid.config.kp == 0.5
    second = loop.step(0.05).command
    assert np.abs(second).max() < np.abs(first).max()
    loop.step(1.0)
    assert loop.stale


def test_reset_forgets_the_estimate() -> None:
    loop = PolicyLoop(PolicyConfig(), PidConfig())
    loop.update_estimate(state(0.0))
    assert not loop.step(0.0).stale
    loop.reset()
    output = loop.step(0.05)
    assert output.stale and not output.became_stale and loop.estimate is None


def run_episode(loop: PolicyLoop, sim: ArmSim, delay: int, max_steps: int) -> int | None:
    """Step ``sim`` under ``loop``, feeding joint angles ``delay`` ticks old.

    :return: steps until success, or None.
    """
    dt = sim.config.timing.dt
    history = [(0.0, sim.joint_positions.copy())]
    for step in range(max_steps):
        stamp_s, joints = history[max(0, len(history) - 1 - delay)]
        loop.update_estimate(PerceivedState(stamp_s, joints, sim.goal.copy()))
        output = loop.step(step * dt)
        assert not output.stale
        result = sim.step(output.command)
        history.append(((step + 1) * dt, sim.joint_positions.copy()))
        if result.success:
            return step + 1
    return None


@pytest.mark.parametrize(('dt', 'max_steps'), [(0.1, 60), (0.05, 100)])
def test_closed_loop_reaches_and_holds_goals(dt: float, max_steps: int) -> None:
    sim_config = SimConfig(timing=Timing(dt=dt))
    sim = ArmSim(sim_config)
    # Estimates two ticks old: within the timeout of three camera periods.
    loop = PolicyLoop(PolicyConfig(control_rate_hz=1.0 / dt, estimate_timeout_s=3 * dt),
                      PidConfig())
    rng = np.random.default_rng(7)
    steps = []
    for _ in range(20):
        sim.reset(rng)
        loop.reset()
        steps.append(run_episode(loop, sim, delay=2, max_steps=max_steps))
    assert None not in steps, steps
    # The slew at 1 rad/s dominates; the hold adds success_hold_steps.
    assert all(count is not None and count >= sim_config.success_hold_steps
               for count in steps)


def test_closed_loop_with_stale_gap_stops_then_resumes() -> None:
    sim = ArmSim(SimConfig())
    loop = PolicyLoop(PolicyConfig(control_rate_hz=10.0, estimate_timeout_s=0.5), PidConfig())
    sim.reset(np.random.default_rng(3))
    loop.update_estimate(PerceivedState(0.0, sim.joint_positions.copy(), sim.goal.copy()))
    for step in range(10):
        sim.step(loop.step(0.1 * step).command)
    frozen = sim.joint_positions.copy()
    sim.step(loop.step(0.1 * 10).command)  # age 1.0 s > 0.5 s: stopped
    np.testing.assert_array_equal(sim.joint_positions, frozen)
    # A fresh estimate restarts control, and the arm then reaches the goal.
    assert run_episode(loop, sim, delay=0, max_steps=60) is not None


def test_ik_controller_puts_fingertip_on_goal_nearest_elbow() -> None:
    config = PolicyConfig(geometry=ArmGeometry(upper_arm_length_m=0.12, forearm_length_m=0.08))
    controller = make_controller(config, PidConfig())
    assert isinstance(controller, IkController)
    goal = np.array([-0.05, 0.13])
    for current in (np.array([1.0, 1.0]), np.array([2.5, -1.0])):
        setpoint = controller.setpoint(current, goal)
        np.testing.assert_allclose(forward_kinematics(setpoint, 0.12, 0.08)[1], goal,
                                   atol=1e-9)
        assert np.sign(setpoint[1]) == np.sign(current[1])
    controller.reset()


class HoldStill:
    """A controller that asks the joints to stay where they are."""

    def __init__(self, config: PolicyConfig, pid: PidConfig) -> None:
        self.config = config

    def reset(self) -> None:
        pass

    def setpoint(self, joint_positions: FloatArray, goal: FloatArray) -> FloatArray:
        return joint_positions.copy()


def test_registered_controller_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CONTROLLERS, 'hold', HoldStill)
    loop = PolicyLoop(PolicyConfig(controller='hold'), PidConfig())
    assert isinstance(loop.controller, HoldStill)
    loop.update_estimate(state(0.0, joints=(0.4, -0.3)))
    np.testing.assert_array_equal(loop.step(0.0).command, np.zeros(2))


def test_unknown_controller_lists_known_ones() -> None:
    with pytest.raises(ValueError,
                       match=r"controller='mpc' is unknown.*\['ik', 'learned', 'slac'\]"):
        PolicyLoop(PolicyConfig(controller='mpc'), PidConfig())


@pytest.mark.parametrize(('cls', 'field', 'value'), [
    (PidConfig, 'kp', -0.1),
    (PidConfig, 'ki', -1.0),
    (PidConfig, 'kd', 11.0),
    (PidConfig, 'integral_limit', -0.1),
    (PidConfig, 'derivative_time_constant_s', -0.01),
    (PidConfig, 'output_limit', 0.0),
    (PidConfig, 'rate_limit', -1.0),
    (PidConfig, 'kp', math.nan),
    (PolicyConfig, 'control_rate_hz', 0.0),
    (PolicyConfig, 'controller', ''),
    (PolicyConfig, 'estimate_timeout_s', 0.0),
    (ArmGeometry, 'upper_arm_length_m', 0.0),
    (ArmGeometry, 'forearm_length_m', 2.0),
    (PolicyConfig, 'warn_throttle_s', -1.0),
    (PolicyConfig, 'estimate_timeout_s', math.inf),
    (PolicyConfig, 'min_confidence', -0.1),
    (PolicyConfig, 'min_confidence', 1.5),
    (PolicyConfig, 'min_confidence', math.nan),
    (PolicyConfig, 'unsure_motion_budget_rad', -0.1),
    (PolicyConfig, 'min_corroborated_confidence', 1.5),
])
def test_configs_reject_out_of_range_values(cls: type[Any], field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf'{cls.__name__}\.{field}='):
        cls(**{field: value})


@pytest.mark.parametrize('cls', [PidConfig, PolicyConfig])
def test_config_fields_are_documented_and_frozen(cls: type) -> None:
    config = cls()
    docs = field_docs(cls)
    assert set(docs) == {field.name for field in dataclasses.fields(cls)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.checkpoint = 'x'
    assert config_from_dict(cls, dataclasses.asdict(config)) == config


def test_low_confidence_stops_once_and_resumes_and_nan_never_stops() -> None:
    loop = PolicyLoop(PolicyConfig(control_rate_hz=20.0, min_confidence=0.5), PidConfig())
    outputs = []
    for tick, confidence in enumerate([0.9] * 5 + [0.2] * 5 + [0.8] * 5 + [math.nan] * 5):
        now = 0.05 * tick
        loop.update_estimate(dataclasses.replace(state(now), confidence=confidence))
        outputs.append(loop.step(now))
    moving = [bool(np.any(output.command != 0.0)) for output in outputs]
    assert moving == [True] * 5 + [False] * 5 + [True] * 10
    assert [output.unsure for output in outputs] == [False] * 5 + [True] * 5 + [False] * 10
    assert [output.became_unsure for output in outputs].count(True) == 1
    assert outputs[5].became_unsure and not any(output.stale for output in outputs)
    # Control restarted from rest: the first command after the stop is rate-limited from 0.
    assert np.abs(outputs[10].command).max() <= PidConfig().rate_limit * 0.05 + 1e-9


def test_the_confidence_threshold_changes_at_run_time_and_bad_ones_are_refused() -> None:
    loop = PolicyLoop(PolicyConfig(unsure_motion_budget_rad=0.0), PidConfig())
    loop.update_estimate(dataclasses.replace(state(1.0), confidence=0.6))
    assert not loop.step(1.0).unsure
    loop.set_config(PolicyConfig(min_confidence=0.7, unsure_motion_budget_rad=0.0))
    assert loop.step(1.05).unsure
    loop.set_config(PolicyConfig(min_confidence=0.0))
    assert not loop.step(1.1).unsure
    for confidence in (-0.1, 1.1, math.inf):
        with pytest.raises(ValueError, match='confidence'):
            loop.update_estimate(dataclasses.replace(state(1.2), confidence=confidence))
    with pytest.raises(ValueError, match='phase_lock'):
        loop.set_config(PolicyConfig(phase_lock=False))


def test_control_output_is_a_value() -> None:
    output = ControlOutput(np.zeros(2), True, False, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        output.stale = False  # type: ignore[misc]


def run_arm(loop: PolicyLoop, confidences: list[float], joints_offset: npt.ArrayLike = (0.0, 0.0),
            goal: npt.ArrayLike = GOAL) -> list[ControlOutput]:
    """Tick a kinematic arm (q += command * dt) whose estimates are exact while confident;
    from the first unsure tick on they are off by ``joints_offset`` and show ``goal``."""
    q, outputs, dt = np.zeros(2), [], 0.05
    for tick, confidence in enumerate(confidences):
        unsure = confidence < loop.config.min_confidence
        estimate = state(dt * tick, q + (np.asarray(joints_offset) if unsure else 0.0),
                         goal if unsure else GOAL)
        loop.update_estimate(dataclasses.replace(estimate, confidence=confidence))
        outputs.append(loop.step(dt * tick))
        q = q + outputs[-1].command * dt
    return outputs


def test_an_unsure_estimate_that_dead_reckoning_corroborates_moves_the_arm_within_the_budget(
) -> None:
    loop = PolicyLoop(PolicyConfig(unsure_motion_budget_rad=0.3), PidConfig())
    outputs = run_arm(loop, [0.9] * 3 + [0.45] * 60)
    corroborated = [output.corroborated for output in outputs]
    assert not any(corroborated[:3]) and all(corroborated[3:5])
    assert not any(output.unsure for output in outputs[:5])
    # The arm went on until the commands since the last confident estimate spent the budget.
    moved = sum(np.abs(output.command).sum() * 0.05 for output in outputs[2:])
    assert 0.3 <= moved <= 0.3 + 2 * 0.05 * PidConfig().output_limit, moved
    assert outputs[-1].unsure and not outputs[-1].corroborated
    assert not np.any(outputs[-1].command)
    assert [output.became_unsure for output in outputs].count(True) == 1


@pytest.mark.parametrize('config, offset, goal', [
    (PolicyConfig(), (0.0, math.radians(15.0)), GOAL),  # the joints disagree
    (PolicyConfig(), (0.0, 0.0), GOAL + np.array([0.03, 0.0])),  # another goal
    (PolicyConfig(unsure_motion_budget_rad=0.0), (0.0, 0.0), GOAL),  # no budget
    (PolicyConfig(min_corroborated_confidence=0.5), (0.0, 0.0), GOAL),  # too doubtful
], ids=['joints', 'goal', 'budget', 'floor'])
def test_an_unsure_estimate_dead_reckoning_does_not_corroborate_stops_the_arm(
        config: PolicyConfig, offset: tuple[float, float], goal: npt.ArrayLike) -> None:
    outputs = run_arm(PolicyLoop(config, PidConfig()), [0.9] * 3 + [0.45] * 3, offset, goal)
    assert all(output.unsure and not np.any(output.command) for output in outputs[3:])
    assert not any(output.corroborated for output in outputs)


def test_corroboration_needs_a_confident_estimate_since_the_last_stale_tick() -> None:
    loop = PolicyLoop(PolicyConfig(), PidConfig())
    loop.update_estimate(dataclasses.replace(state(0.0), confidence=0.9))
    assert not loop.step(0.0).unsure
    assert loop.step(1.0).stale  # the estimate aged out: the world may have changed
    loop.update_estimate(dataclasses.replace(state(1.05), confidence=0.45))
    assert loop.step(1.05).unsure
    loop.update_estimate(dataclasses.replace(state(1.1), confidence=0.9))
    assert not loop.step(1.1).unsure
    loop.update_estimate(dataclasses.replace(state(1.15), confidence=0.45))
    assert loop.step(1.15).corroborated
    loop.set_config(PolicyConfig(unsure_motion_budget_rad=0.0))  # applied at run time
    assert loop.step(1.2).unsure
