"""The SLAC agent's D4 augmentation: frames, actions and true states mapped together.

The renderer is the reference: the frame of a mapped state must be the mapped frame, so
the augmentation adds true sequences of the task, never made-up ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reacher_common.geometry import ArmGeometry
from reacher_common.kinematics import forward_kinematics
from reacher_common.symmetry import transform_frame
from reacher_perception.slac.config import SlacModelConfig, states_from_truth
from reacher_policy.training.slac.agent import SlacAgent
from reacher_policy.training.slac.config import SlacAgentConfig
from reacher_policy.training.symmetry import (
    augment_sequences,
    GROUP_ORDER,
    transform_images,
    transform_joints,
    transform_point,
)
from reacher_sim.render import ArmRenderer

GEOMETRY = ArmGeometry()
REACH = GEOMETRY.reach_m


def tip(joints: np.ndarray) -> np.ndarray:
    return forward_kinematics(joints, *GEOMETRY.link_lengths)[1]


def frame(renderer: ArmRenderer, joints: np.ndarray, goal: np.ndarray) -> torch.Tensor:
    """(3, H, W) float in [0, 1] of a state, as the replay stores it."""
    return torch.from_numpy(renderer.render(joints, goal).transpose(2, 0, 1).copy()) / 255.0


@pytest.mark.parametrize('element', range(GROUP_ORDER))
def test_the_frame_of_a_mapped_state_is_the_mapped_frame(element: int) -> None:
    renderer = ArmRenderer(GEOMETRY)
    rng = np.random.default_rng(element)
    for _ in range(5):
        joints, goal = rng.uniform(-np.pi, np.pi, 2), rng.uniform(-0.15, 0.15, 2)
        mapped = transform_images(frame(renderer, joints, goal)[None],
                                  np.array([element]))[0]
        expected = frame(renderer, transform_joints(joints, element),
                         transform_point(goal, element))
        error = (mapped - expected).abs()
        # the anti-aliasing rounds differently; anything else is a whole stroke off
        assert float(error.mean()) < 1.0 / 255.0
        assert float(error.max()) < 40.0 / 255.0
        if element:  # and the map does change the frame, so the test can fail
            assert float((mapped - frame(renderer, joints, goal)).abs().max()) > 0.2
        # the estimator's map of an (H, W, 3) frame is the same map, pixel for pixel
        raw = renderer.render(joints, goal)
        channels_first = torch.from_numpy(raw).permute(2, 0, 1).contiguous()[None]
        np.testing.assert_array_equal(
            transform_frame(raw, element),
            transform_images(channels_first, np.array([element]))[0].permute(1, 2, 0).numpy())


def test_sequences_map_actions_and_true_states_with_their_frames() -> None:
    rng = np.random.default_rng(0)
    batch_size, steps = GROUP_ORDER, 3
    joints = rng.uniform(-np.pi, np.pi, (batch_size, steps + 1, 2))
    goal = rng.uniform(-0.15, 0.15, (batch_size, 1, 2)).repeat(steps + 1, axis=1)
    tips = tip(joints)
    batch = {
        'images': torch.rand(batch_size, steps + 1, 3, 16, 16),
        'actions': torch.rand(batch_size, steps, 2) * 2.0 - 1.0,
        'rewards': torch.randn(batch_size, steps),
        'terminated': torch.zeros(batch_size, steps),
        'real': torch.ones(batch_size, steps),
        'states': torch.from_numpy(states_from_truth(joints, tips, goal, REACH)),
    }
    elements = np.arange(GROUP_ORDER)
    out = augment_sequences(batch, elements)
    for b, element in enumerate(elements):
        sign = -1.0 if element >= 4 else 1.0
        assert torch.equal(out['actions'][b], batch['actions'][b] * sign)
        mapped_joints = np.stack([transform_joints(q, element) for q in joints[b]])
        mapped_goal = np.stack([transform_point(g, element) for g in goal[b]])
        expected = states_from_truth(mapped_joints,
                                     tip(mapped_joints),
                                     mapped_goal, REACH)
        np.testing.assert_allclose(out['states'][b].numpy(), expected, atol=1e-5)
    for key in ('rewards', 'terminated', 'real'):
        assert torch.equal(out[key], batch[key])
    assert torch.equal(out['images'][0], batch['images'][0])  # the identity
    assert not torch.equal(out['images'][1], batch['images'][1])
    assert torch.equal(out['images'][1], torch.rot90(batch['images'][1], 1, dims=(-2, -1)))


def test_the_agent_samples_mapped_sequences_and_refuses_other_envs() -> None:
    model = SlacModelConfig(image_size=16, base_depth=2, feature_dim=8, z1_dim=4, z2_dim=8,
                            hidden_units=16, state_weight=0.0)
    config = SlacAgentConfig(model=model, sequence_length=2, hidden_units=16, buffer_size=50)
    agent = SlacAgent(config, geometry=ArmGeometry(image_size=16), symmetry_augmentation=True)
    rng = np.random.default_rng(0)
    agent.buffer.start_episode(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8))
    for _ in range(4):
        agent.buffer.add(np.array([0.5, -0.25], np.float32), 1.0, False,
                         rng.integers(0, 256, (3, 16, 16), dtype=np.uint8))
    stored = torch.from_numpy(agent.buffer.frames[:5]).float() / 255.0
    batch = agent.sample(64)
    # every sampled frame is a D4 image of a stored one, and some are not the identity
    images = batch['images'].reshape(-1, 3, 16, 16)
    variants = torch.stack([transform_images(stored, np.full(5, e)) for e in range(8)])
    matches = (images[:, None, None] - variants[None]).abs().amax(dim=(-3, -2, -1)) < 1e-6
    assert bool(matches.flatten(1).any(dim=1).all())
    assert not bool(matches[:, 0].any(dim=1).all())
    assert set(batch['actions'][..., 0].unique().tolist()) <= {0.5, -0.5, 0.0}
    with pytest.raises(ValueError, match='symmetry_augmentation'):
        SlacAgent(config, env_description={'name': 'dmc-reacher-easy'},
                  symmetry_augmentation=True)
