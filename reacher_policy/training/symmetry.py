"""The reacher task's D4 symmetry and a replay buffer that augments samples with it.

The task is invariant under the 8 symmetries of the square (the dihedral group D4) about
the shoulder (:mod:`reacher_common.symmetry`: the group, and how an element maps joint
angles, points, actions and camera frames): the start pose is uniform over the torus of
joint angles, goals are drawn from a disk ('reachable') or a square centred on the
shoulder ('seed'), and every reward term depends only on the fingertip-to-goal distance,
the inside flag, the hold and squared actions. An element maps every xy vector of the
observation (fingertip, goal, their difference) by its matrix, and leaves rewards, the
inside flag, ``terminated`` and ``truncated`` unchanged. The observation noise of
:class:`reacher_sim.options.RobustnessConfig` (isotropic Gaussian on joint angles and
goal, :class:`reacher_sim.wrappers.ObservationNoise`) and its delay keep the symmetry in
distribution.

Training on transitions mapped by random group elements is the "invariant transform
experience replay" of Lin et al., "Invariant Transform Experience Replay: Data
Augmentation for Deep Reinforcement Learning", IEEE RA-L 5(4), 2020 (arXiv:1909.10707),
there with reflections of a robot's workspace, here with all of D4. It is training-only:
the actor still takes the 11-d :func:`reacher_sim.observation.state_vector`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
import torch

from reacher_common.symmetry import (  # noqa: F401 - the group, re-exported for its users
    action_signs,
    check_elements,
    GROUP_ORDER,
    inverse,
    matrices,
    transform_joints,
    transform_point,
)

# Observation slices of reacher_sim.observation.state_vector that are xy vectors in ``world``
# (the shoulder angle's (cos, sin) is the direction of the upper arm).
_WORLD_VECTORS = (slice(0, 2), slice(4, 6), slice(6, 8), slice(8, 10))
_ELBOW = slice(2, 4)


def transform_observation(observation: npt.ArrayLike,
                          elements: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Map state observations (:func:`reacher_sim.observation.state_vector`) by group elements.

    :param observation: (N, 11) or (11,) float observations.
    :param elements: (N,) or scalar ints in [0, 8), one per observation.
    :return: (N, 11) float32 (or (11,) for one observation), the mapped observations.
    :raises ValueError: on a wrong shape or an element out of range.
    """
    obs = np.asarray(observation, dtype=np.float32)
    single = obs.ndim == 1
    batch = np.atleast_2d(obs)
    if batch.ndim != 2 or batch.shape[1] != 11:
        raise ValueError(f'observation must be (N, 11) or (11,), got {obs.shape}')
    mats = matrices(check_elements(elements, batch.shape[0])).astype(np.float32)
    out = batch.copy()
    for part in _WORLD_VECTORS:
        out[:, part] = np.einsum('nij,nj->ni', mats, batch[:, part])
    # The elbow angle is relative to the upper arm: a reflection negates it.
    out[:, _ELBOW] = batch[:, _ELBOW]
    out[:, 3] *= action_signs(check_elements(elements, batch.shape[0])).astype(np.float32)
    return out[0] if single else out


def transform_action(action: npt.ArrayLike, elements: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Map actions by group elements: reflections negate both joint velocities.

    :param action: (N, 2) or (2,) actions in [-1, 1].
    :param elements: (N,) or scalar ints in [0, 8).
    :return: float32 of the action's shape.
    :raises ValueError: on a wrong shape or an element out of range.
    """
    act = np.asarray(action, dtype=np.float32)
    batch = np.atleast_2d(act)
    if batch.ndim != 2 or batch.shape[1] != 2:
        raise ValueError(f'action must be (N, 2) or (2,), got {act.shape}')
    signs = action_signs(check_elements(elements, batch.shape[0])).astype(np.float32)
    out = batch * signs[:, None]
    return out[0] if act.ndim == 1 else out


def transform_images(images: torch.Tensor, elements: npt.ArrayLike) -> torch.Tensor:
    """Map top-down camera frames by group elements: ``F`` flips rows, ``R`` is ``rot90``.

    The reacher's camera looks straight down at the shoulder, which is drawn at the image
    centre, so a frame of the mapped state is the mapped frame, exact up to the
    renderer's anti-aliasing (``test/test_slac_symmetry.py`` checks every element against
    :class:`reacher_sim.render.ArmRenderer`).

    :param images: (B, ..., H, W) tensor with H == W, e.g. (B, S+1, C, H, W) sequences;
        every image of row ``b`` gets ``elements[b]``.
    :param elements: (B,) ints in [0, 8).
    :return: a new tensor of the same shape, dtype and device.
    :raises ValueError: on an element out of range or non-square images.
    """
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f'images must be square, got {tuple(images.shape[-2:])}')
    elems = check_elements(elements, images.shape[0])
    out = torch.empty_like(images)  # every row is written below
    for element in np.unique(elems):
        rows = torch.from_numpy(np.flatnonzero(elems == element))
        part = images[rows]
        if element // 4:
            part = part.flip(-2)  # F: y -> -y, world y is image up
        out[rows] = torch.rot90(part, int(element % 4), dims=(-2, -1))
    return out


def augment_sequences(batch: dict[str, torch.Tensor],
                      elements: npt.ArrayLike) -> dict[str, torch.Tensor]:
    """Map a batch of SLAC replay sequences, each by its own group element.

    Every frame and action of a sequence gets the same element; rewards, ``terminated``
    and the padding mask are invariant. The privileged variant's true states
    (``reacher_perception.slac.config.STATE_NAMES``: sin q1, cos q1, sin q2, cos q2,
    fingertip xy / reach, goal xy / reach) are mapped as the joint angles and points.

    :param batch: :meth:`reacher_policy.training.slac.buffer.SlacReplayBuffer.sample`'s
        dict: ``images`` (B, S+1, C, H, W), ``actions`` (B, S, 2), ``states`` (B, S+1, 8
        or 0), the rest (B, S).
    :param elements: (B,) ints in [0, 8).
    :return: a new dict; the input is not changed.
    :raises ValueError: on an element out of range.
    """
    elems = check_elements(elements, batch['images'].shape[0])
    out = dict(batch)
    out['images'] = transform_images(batch['images'], elems)
    signs = torch.from_numpy(action_signs(elems)).float()
    out['actions'] = batch['actions'] * signs[:, None, None]
    states = batch['states']
    if states.shape[-1]:
        rotation = torch.from_numpy(matrices(elems)).float()[:, None]  # (B, 1, 2, 2)

        def mapped(xy: torch.Tensor) -> torch.Tensor:
            return (rotation @ xy[..., None])[..., 0]

        upper_arm = mapped(states[..., [1, 0]])  # (cos q1, sin q1), a world direction
        out['states'] = torch.cat([
            upper_arm[..., 1:], upper_arm[..., :1],
            states[..., 2:3] * signs[:, None, None], states[..., 3:4],
            mapped(states[..., 4:6]), mapped(states[..., 6:8]), states[..., 8:]], dim=-1)
    return out


def augment_samples(samples: ReplayBufferSamples,
                    elements: npt.NDArray[np.int64]) -> ReplayBufferSamples:
    """Map a batch of transitions, each by its own group element.

    ``observations`` and ``next_observations`` of a transition get the same element;
    ``actions`` are mapped; rewards, dones and n-step discounts are invariant.

    :param samples: SB3 samples with (B, 11) observations and (B, 2) actions.
    :param elements: (B,) ints in [0, 8).
    :return: new samples (tensors on the same device and dtype).
    """
    obs, next_obs, act = samples.observations, samples.next_observations, samples.actions
    assert isinstance(obs, torch.Tensor) and isinstance(next_obs, torch.Tensor)

    def mapped(array: npt.NDArray[Any], like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(array, dtype=like.dtype, device=like.device)

    return samples._replace(
        observations=mapped(transform_observation(obs.cpu().numpy(), elements), obs),
        next_observations=mapped(transform_observation(next_obs.cpu().numpy(), elements),
                                 next_obs),
        actions=mapped(transform_action(act.cpu().numpy(), elements), act))


class SymmetryReplayBuffer(ReplayBuffer):
    """SB3 replay buffer whose samples are mapped by independent uniform D4 elements.

    Elements are drawn from NumPy's global generator, as SB3 draws the sample indices,
    so a seeded run is reproducible. Same arguments as :class:`ReplayBuffer`; the
    observation space must be the env's 11-d state box.

    :raises ValueError: if the observation space is not (11,).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.obs_shape != (11,):
            raise ValueError(f'symmetry augmentation needs the (11,) state observation, got '
                             f'{self.obs_shape}')

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> ReplayBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        elements = np.random.randint(0, GROUP_ORDER, size=len(batch_inds))
        return augment_samples(samples, elements)


class SymmetryNStepReplayBuffer(SymmetryReplayBuffer, NStepReplayBuffer):
    """:class:`NStepReplayBuffer` with the augmentation of :class:`SymmetryReplayBuffer`.

    The first observation and the bootstrap observation n steps later get the same
    element; the n-step return is invariant. (The method resolution order puts
    :class:`SymmetryReplayBuffer` first, so its ``_get_samples`` maps what
    ``NStepReplayBuffer._get_samples`` returns.)

    :raises ValueError: if the observation space is not (11,).
    """
