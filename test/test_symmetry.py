"""The reacher task's D4 symmetry and the augmenting replay buffer (issue 3)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from reacher_policy.training.config import PRESETS
from reacher_policy.training.sb3 import build_model, make_train_env
from reacher_policy.training.symmetry import (
    GROUP_ORDER,
    inverse,
    matrices,
    SymmetryNStepReplayBuffer,
    SymmetryReplayBuffer,
    transform_action,
    transform_joints,
    transform_observation,
    transform_point,
)
from reacher_policy.training.train import train
from reacher_sim.config import SimConfig
from reacher_sim.env import ReacherEnv, state_vector

ELEMENTS = range(GROUP_ORDER)


def test_matrices_are_the_eight_distinct_orthogonal_maps_of_the_square():
    mats = matrices(np.arange(GROUP_ORDER))
    assert len({m.tobytes() for m in mats}) == GROUP_ORDER
    for m in mats:
        np.testing.assert_array_equal(m @ m.T, np.eye(2))
        # The square [-1, 1]^2's corners map onto its corners.
        corners = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=float)
        assert {tuple(c) for c in corners @ m.T} == {tuple(c) for c in corners}
    with pytest.raises(ValueError):
        matrices(8)


@pytest.mark.parametrize('element', ELEMENTS)
def test_state_vector_is_equivariant(element):
    config = SimConfig()
    rng = np.random.default_rng(element)
    for _ in range(200):
        q = rng.uniform(-np.pi, np.pi, 2)
        goal = rng.uniform(-0.2, 0.2, 2)
        if rng.uniform() < 0.3:  # goals around the fingertip exercise the inside flag
            tip = state_vector(q, goal, config.geometry)[4:6] * config.geometry.reach_m
            goal = tip + rng.uniform(-0.03, 0.03, 2)
        mapped = transform_observation(state_vector(q, goal, config.geometry), element)
        direct = state_vector(transform_joints(q, element), transform_point(goal, element),
                              config.geometry)
        np.testing.assert_allclose(mapped, direct, atol=1e-6)


def test_group_composes_and_inverts():
    rng = np.random.default_rng(0)
    obs = np.stack([state_vector(rng.uniform(-3, 3, 2), rng.uniform(-0.2, 0.2, 2),
                                 SimConfig().geometry)
                    for _ in range(64)])
    action = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
    elements = rng.integers(0, GROUP_ORDER, 64)
    back = transform_observation(transform_observation(obs, elements), inverse(elements))
    np.testing.assert_array_equal(back, obs)
    back_action = transform_action(transform_action(action, elements), inverse(elements))
    np.testing.assert_array_equal(back_action, action)
    # Matrices multiply as the group does: g h acts as matrix(g) @ matrix(h).
    mats = matrices(np.arange(GROUP_ORDER))
    for g in ELEMENTS:
        for h in ELEMENTS:
            product = mats[g] @ mats[h]
            assert any(np.array_equal(product, m) for m in mats)
    # The rotation by 90 degrees has order 4; each reflection has order 2.
    assert np.array_equal(np.linalg.matrix_power(mats[1], 4), np.eye(2))
    assert not np.array_equal(np.linalg.matrix_power(mats[1], 2), np.eye(2))
    for reflection in range(4, 8):
        assert np.array_equal(mats[reflection] @ mats[reflection], np.eye(2))
    # Observation maps compose like the matrices.
    for g in ELEMENTS:
        for h in ELEMENTS:
            product = next(e for e in ELEMENTS if np.array_equal(mats[g] @ mats[h], mats[e]))
            np.testing.assert_array_equal(
                transform_observation(transform_observation(obs, h), g),
                transform_observation(obs, product))


@pytest.mark.parametrize('element', ELEMENTS)
def test_env_is_equivariant(element):
    """Stepping from a mapped state with the mapped action gives the mapped outcome."""
    # Every reward term on: distance, goal, shaping, success, P/I/D, precision.
    weights = replace(PRESETS['sac'].reward, action_weight=0.3, integral_weight=0.2,
                      action_change_weight=0.5, precision_weight=1.0)
    rng = np.random.default_rng(element)
    for episode in range(3):
        envs = [ReacherEnv(SimConfig(), reward=weights) for _ in range(2)]
        for env in envs:
            env.reset(seed=episode)
        original, mapped = envs
        mapped.arm.joint_positions = transform_joints(original.arm.joint_positions, element)
        mapped.arm.goal = transform_point(original.arm.goal, element)
        if episode == 0:  # a goal at the fingertip: the hold completes and terminates
            original.arm.goal = original.arm.fingertip.copy()
            mapped.arm.goal = transform_point(original.arm.goal, element)
        for _ in range(40):
            action = (rng.uniform(-1, 1, 2) * (0.05 if episode == 0 else 1.0)).astype(np.float32)
            obs, reward, terminated, truncated, info = original.step(action)
            obs_m, reward_m, terminated_m, truncated_m, info_m = mapped.step(
                transform_action(action, element))
            np.testing.assert_allclose(transform_observation(obs, element), obs_m, atol=1e-6)
            assert reward_m == pytest.approx(reward, abs=1e-9)
            assert (terminated_m, truncated_m) == (terminated, truncated)
            if terminated:
                assert info['is_success'] and info_m['is_success']
                break
        assert terminated == (episode == 0)


def _filled_buffer(cls, **kwargs):
    env = ReacherEnv()
    buffer = cls(100, env.observation_space, env.action_space, device='cpu', **kwargs)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs[None], next_obs[None], action[None], np.array([reward]),
                   np.array([terminated]), [{'TimeLimit.truncated': truncated}])
        obs = next_obs
    return buffer


@pytest.mark.parametrize('cls, kwargs', [(SymmetryReplayBuffer, {}),
                                         (SymmetryNStepReplayBuffer, dict(n_steps=3,
                                                                          gamma=0.9))])
def test_buffer_samples_are_mapped_transitions(cls, kwargs):
    buffer = _filled_buffer(cls, **kwargs)
    np.random.seed(1)
    inds = np.arange(50)
    samples = buffer._get_samples(inds)
    plain = super(cls, buffer)._get_samples(inds)
    obs, next_obs = samples.observations.numpy(), samples.next_observations.numpy()
    # Each transition was mapped by some element, the same for obs, next obs and action.
    found = []
    for i in range(len(inds)):
        ok = [g for g in ELEMENTS if np.allclose(
            transform_observation(plain.observations[i].numpy(), g), obs[i])
            and np.allclose(transform_observation(plain.next_observations[i].numpy(), g),
                            next_obs[i])
            and np.allclose(transform_action(plain.actions[i].numpy(), g),
                            samples.actions[i].numpy())]
        assert ok
        found.append(ok[0])
    assert len(set(found)) >= 4  # drawn independently, not one element per batch
    torch.testing.assert_close(samples.rewards, plain.rewards)
    torch.testing.assert_close(samples.dones, plain.dones)


def test_buffer_refuses_pixels():
    env = ReacherEnv(observation_mode='pixels')
    with pytest.raises(ValueError, match='11'):
        SymmetryReplayBuffer(10, env.observation_space, env.action_space)


def test_training_with_augmentation_runs(tmp_path):
    config = replace(PRESETS['sac'], symmetry_augmentation=True, total_steps=400,
                     learning_starts=100, net_arch=(16,), batch_size=32, eval_freq=0,
                     final_eval_episodes=0, progress=False, tensorboard=False,
                     out_dir=str(tmp_path / 'run'))
    assert isinstance(build_model(config, make_train_env(config)).replay_buffer,
                      SymmetryReplayBuffer)
    nstep = build_model(replace(config, n_steps=3), make_train_env(config))
    assert isinstance(nstep.replay_buffer, SymmetryNStepReplayBuffer)
    assert nstep.replay_buffer.n_steps == 3
    result = train(config)
    assert result.env_steps == 400
    assert (tmp_path / 'run' / 'policy.pt').stat().st_size > 0
