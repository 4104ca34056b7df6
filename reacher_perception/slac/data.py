"""Camera sequences for the latent model: collection, on-disk format, loading, augmentation.

On-disk format: a directory of shards ``shard_XXXX.npz`` (``np.savez_compressed``), each
holding N sequences of T steps::

    images           uint8   (N, T, H, W, 3)  rgb8 frames, H = W = image_size
    actions          float32 (N, T, 2)        command applied from frame t to t+1, divided
                                              by max_joint_velocity (so in [-1, 1]); the
                                              last step's leads out of the sequence
    joint_positions  float32 (N, T, 2)        true (shoulder, elbow) at frame t, rad
    fingertip        float32 (N, T, 2)        true fingertip at frame t, metres, ``world``
    goal             float32 (N, T, 2)        true goal centre at frame t, metres, ``world``
    policy           int8    (N,)             index into POLICIES of the acting policy
    metadata         str     ()               JSON: geometry (``SequenceGeometry``), seed

:func:`write_shard` builds a shard from any such arrays (extra arrays ride along and are
ignored by the loader); ``reacher bag to-dataset BAG OUT.npz`` uses it to turn a rosbag2
recording of the loop into a dataset that ``reacher perception train --data OUT.npz``
reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from reacher_common.config_tools import check_fields
from reacher_common.geometry import ArmGeometry, mismatches, Timing
from reacher_common.kinematics import inverse_kinematics
from reacher_perception.config import PerceptionConfig
from reacher_perception.slac.config import STATE_NAMES
from reacher_policy.config import PidConfig
from reacher_policy.pid import PidSmoother
from reacher_sim.config import SimConfig
from reacher_sim.render import ArmRenderer
from reacher_sim.task import ReachingTask

POLICIES: tuple[str, ...] = ('random', 'ik')
"""Policies of the collector: 'random' smooth random velocities, 'ik' the analytic IK +
PID controller of reacher_policy on the true state, with noise on its command."""


@dataclass(frozen=True)
class SequenceGeometry:
    """What a dataset and a checkpoint must agree on with the camera stream they read.

    :param image_size: frame width = height, pixels.
    :param arena_size_m: side of the arena the frame covers, metres.
    :param upper_arm_length_m: metres.
    :param forearm_length_m: metres.
    :param goal_size_m: metres.
    :param dt: seconds between frames (the latent dynamics are learned at this rate).
    :param max_joint_velocity: rad/s that an action of 1 stands for.
    """

    image_size: int = 64
    arena_size_m: float = 0.4
    upper_arm_length_m: float = 0.1
    forearm_length_m: float = 0.1
    goal_size_m: float = 0.04
    dt: float = 0.05
    max_joint_velocity: float = 1.0

    @classmethod
    def from_sim(cls, config: SimConfig) -> SequenceGeometry:
        """The geometry of a simulator config."""
        geometry = config.geometry
        return cls(geometry.image_size, geometry.arena_size_m, geometry.upper_arm_length_m,
                   geometry.forearm_length_m, geometry.goal_size_m, config.timing.dt,
                   geometry.max_joint_velocity)

    def sim_config(self) -> SimConfig:
        """A simulator config with this geometry (the rest at its defaults)."""
        return SimConfig(
            geometry=ArmGeometry(image_size=self.image_size, arena_size_m=self.arena_size_m,
                                 upper_arm_length_m=self.upper_arm_length_m,
                                 forearm_length_m=self.forearm_length_m,
                                 goal_size_m=self.goal_size_m,
                                 max_joint_velocity=self.max_joint_velocity),
            timing=Timing(dt=self.dt))

    def mismatches(self, config: PerceptionConfig) -> list[str]:
        """Fields of a perception config that differ from this geometry, as sentences."""
        return mismatches(self.sim_config().geometry, config.geometry,
                          ('image_size', 'arena_size_m', 'upper_arm_length_m',
                           'forearm_length_m', 'goal_size_m'))


def states_from_truth(joint_positions: npt.NDArray[Any], fingertip: npt.NDArray[Any],
                      goal: npt.NDArray[Any], reach_m: float) -> npt.NDArray[np.float32]:
    """The state heads' targets (``STATE_NAMES``) from ground truth.

    :param joint_positions: (..., 2) rad.
    :param fingertip: (..., 2) metres.
    :param goal: (..., 2) metres.
    :param reach_m: the arm's reach, metres; positions are divided by it.
    :return: (..., 8) float32.
    """
    states = np.concatenate([
        np.sin(joint_positions[..., :1]), np.cos(joint_positions[..., :1]),
        np.sin(joint_positions[..., 1:]), np.cos(joint_positions[..., 1:]),
        fingertip / reach_m, goal / reach_m], axis=-1).astype(np.float32)
    assert states.shape[-1] == len(STATE_NAMES)
    return states


def write_shard(path: Path, images: npt.NDArray[np.uint8], actions: npt.NDArray[Any],
                joint_positions: npt.NDArray[Any], fingertip: npt.NDArray[Any],
                goal: npt.NDArray[Any], geometry: SequenceGeometry,
                policy: npt.NDArray[Any] | None = None, seed: int | None = None,
                extras: Mapping[str, npt.NDArray[Any]] | None = None) -> Path:
    """Write one shard of the dataset format (the hook for datasets from recordings).

    :param path: the .npz file to write (parent folders are made).
    :param images: (N, T, H, W, 3) uint8 rgb8.
    :param actions: (N, T, 2) commands divided by ``geometry.max_joint_velocity``.
    :param joint_positions: (N, T, 2) rad.
    :param fingertip: (N, T, 2) metres.
    :param goal: (N, T, 2) metres.
    :param geometry: the camera and arm the frames come from.
    :param policy: (N,) indices into ``POLICIES``, or None (-1: unknown).
    :param seed: the collection seed, if any, for the metadata.
    :param extras: further arrays to store under their names (the loader ignores them).
    :return: ``path``.
    :raises ValueError: naming the array whose shape or dtype is wrong.
    """
    count, steps = images.shape[:2]
    size = geometry.image_size
    if images.dtype != np.uint8 or images.shape != (count, steps, size, size, 3):
        raise ValueError(f'images must be (N, T, {size}, {size}, 3) uint8, got '
                         f'{images.shape} {images.dtype}')
    for name, array in (('actions', actions), ('joint_positions', joint_positions),
                        ('fingertip', fingertip), ('goal', goal)):
        if np.shape(array) != (count, steps, 2):
            raise ValueError(f'{name} must be ({count}, {steps}, 2), got {np.shape(array)}')
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, images=images, actions=np.asarray(actions, np.float32),
        joint_positions=np.asarray(joint_positions, np.float32),
        fingertip=np.asarray(fingertip, np.float32), goal=np.asarray(goal, np.float32),
        policy=(np.full(count, -1, np.int8) if policy is None
                else np.asarray(policy, np.int8)),
        metadata=np.array(json.dumps({'geometry': asdict(geometry), 'seed': seed})),
        **(extras or {}))  # type: ignore[arg-type]
    return path


@dataclass(frozen=True)
class CollectConfig:
    """How the collector drives the simulator.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    sequences: int = 400
    """Number of sequences, >= 1."""
    steps: int = 48
    """Frames per sequence, >= 2."""
    shard_size: int = 100
    """Sequences per .npz shard, >= 1."""
    ik_fraction: float = 0.6
    """Share of sequences driven by the noisy IK controller (the rest random), in [0, 1]."""
    command_noise: float = 0.2
    """Std of the gaussian noise added to the IK controller's command, rad/s, >= 0."""
    goal_switch_probability: float = 0.02
    """Chance per step of a new goal without success (goal jumps as in the demo), [0, 1]."""
    seed: int = 0
    """Seed of all sampling (use another for held-out data)."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'sequences': self.sequences >= 1,
            'steps': self.steps >= 2,
            'shard_size': self.shard_size >= 1,
            'ik_fraction': 0.0 <= self.ik_fraction <= 1.0,
            'command_noise': self.command_noise >= 0.0,
            'goal_switch_probability': 0.0 <= self.goal_switch_probability <= 1.0,
        })


class RandomSmoothPolicy:
    """Piecewise-constant random joint velocities, low-passed, sometimes at rest.

    :param rng: random generator.
    :param limit: rad/s, the joint limit.
    """

    def __init__(self, rng: np.random.Generator, limit: float) -> None:
        self.rng, self.limit = rng, limit
        self.target = np.zeros(2)
        self.command = np.zeros(2)
        self.hold = 0

    def __call__(self) -> npt.NDArray[np.float64]:
        """The next command, (2,) rad/s."""
        if self.hold <= 0:
            self.hold = int(self.rng.integers(2, 20))
            self.target = (np.zeros(2) if self.rng.random() < 0.15
                           else self.rng.uniform(-self.limit, self.limit, 2))
        self.hold -= 1
        self.command = self.command + 0.5 * (self.target - self.command)
        return self.command.copy()


def collect(config: CollectConfig, geometry: SequenceGeometry, out_dir: Path,
            progress: bool = True) -> list[Path]:
    """Run the simulator with a mix of policies and write the sequences as shards.

    Each sequence starts from a random pose and goal (``ReachingTask.reset``); a goal
    reached (held ``success_hold_steps``) is replaced, as in the sim node.

    :param config: how many sequences and which policies.
    :param geometry: arm, camera and rate; must match the camera stream to be read.
    :param out_dir: where the shards go.
    :param progress: show a tqdm bar.
    :return: the shard paths.
    """
    from tqdm import tqdm

    sim = geometry.sim_config()
    rng = np.random.default_rng(config.seed)
    task = ReachingTask(sim, goal_timeout_s=15.0, seed=config.seed)
    renderer = ArmRenderer(sim.geometry)
    limit = sim.geometry.max_joint_velocity
    paths: list[Path] = []
    bar = tqdm(total=config.sequences, desc='collect', disable=not progress)
    for shard, start in enumerate(range(0, config.sequences, config.shard_size)):
        count = min(config.shard_size, config.sequences - start)
        steps, size = config.steps, sim.geometry.image_size
        images = np.empty((count, steps, size, size, 3), np.uint8)
        arrays: dict[str, Any] = {name: np.empty((count, steps, 2), np.float32)
                  for name in ('actions', 'joint_positions', 'fingertip', 'goal')}
        policy = np.empty(count, np.int8)
        for index in range(count):
            task.reset()
            use_ik = rng.random() < config.ik_fraction
            policy[index] = POLICIES.index('ik' if use_ik else 'random')
            random_policy = RandomSmoothPolicy(rng, limit)
            pid = PidSmoother(PidConfig(output_limit=limit))
            for step in range(steps):
                arm = task.arm
                images[index, step] = renderer.render(arm.joint_positions, arm.goal)
                arrays['joint_positions'][index, step] = arm.joint_positions
                arrays['fingertip'][index, step] = arm.fingertip
                arrays['goal'][index, step] = arm.goal
                if use_ik:
                    setpoint = inverse_kinematics(arm.goal, sim.geometry.upper_arm_length_m,
                                                  sim.geometry.forearm_length_m,
                                                  current=arm.joint_positions)
                    command = pid.update(setpoint, arm.joint_positions, sim.timing.dt)
                    command = command + rng.normal(0.0, config.command_noise, 2)
                else:
                    command = random_policy()
                command = np.clip(command, -limit, limit)
                arrays['actions'][index, step] = command / limit
                task.step(command)
                if rng.random() < config.goal_switch_probability:
                    task.new_goal()
            bar.update()
        paths.append(write_shard(out_dir / f'shard_{shard:04d}.npz', images,
                                 geometry=geometry, policy=policy, seed=config.seed,
                                 **arrays))
    bar.close()
    return paths


class SequenceDataset:
    """All shards of a directory in memory, sampled as windows of consecutive steps.

    :param directory: a folder of ``shard_*.npz`` (or one .npz file).
    :raises FileNotFoundError: naming the path when it holds no shard.
    :raises ValueError: when shards disagree on their geometry.
    """

    def __init__(self, directory: Path) -> None:
        directory = Path(directory)
        paths = ([directory] if directory.suffix == '.npz'
                 else sorted(directory.glob('shard_*.npz')))
        if not paths:
            raise FileNotFoundError(f'no dataset shards (shard_*.npz) at {directory}; '
                                    "make some with 'reacher perception collect'")
        parts: dict[str, list[npt.NDArray[Any]]] = {}
        geometry: SequenceGeometry | None = None
        for path in paths:
            with np.load(path) as shard:
                shard_geometry = SequenceGeometry(
                    **json.loads(str(shard['metadata']))['geometry'])
                if geometry is not None and shard_geometry != geometry:
                    raise ValueError(f'{path} has geometry {shard_geometry}, the others '
                                     f'{geometry}')
                geometry = shard_geometry
                for name in ('images', 'actions', 'joint_positions', 'fingertip', 'goal'):
                    parts.setdefault(name, []).append(shard[name])
        assert geometry is not None
        self.geometry = geometry
        self.images: npt.NDArray[np.uint8] = np.concatenate(parts['images'])
        """(N, T, H, W, 3) uint8."""
        self.actions: npt.NDArray[np.float32] = np.concatenate(parts['actions'])
        self.joint_positions: npt.NDArray[np.float32] = np.concatenate(parts['joint_positions'])
        self.fingertip: npt.NDArray[np.float32] = np.concatenate(parts['fingertip'])
        self.goal: npt.NDArray[np.float32] = np.concatenate(parts['goal'])
        reach = geometry.upper_arm_length_m + geometry.forearm_length_m
        self.states = states_from_truth(self.joint_positions, self.fingertip, self.goal, reach)
        """(N, T, 8) float32, the state heads' targets."""

    def __len__(self) -> int:
        """Number of sequences."""
        return int(self.images.shape[0])

    @property
    def steps(self) -> int:
        """Frames per sequence."""
        return int(self.images.shape[1])

    def sample(self, rng: np.random.Generator, batch_size: int, length: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of random windows.

        :param rng: random generator.
        :param batch_size: windows, >= 1.
        :param length: frames per window, in [2, steps].
        :return: ``(images, actions, states)``: (B, L, 3, H, W) float32 in [0, 1],
            (B, L-1, 2) float32, (B, L, 8) float32.
        :raises ValueError: if ``length`` does not fit the sequences.
        """
        if not 2 <= length <= self.steps:
            raise ValueError(f'window length {length} must be in [2, {self.steps}]')
        sequence = rng.integers(0, len(self), batch_size)[:, None]
        start = rng.integers(0, self.steps - length + 1, batch_size)[:, None]
        step = start + np.arange(length)[None, :]
        images = torch.from_numpy(self.images[sequence, step]).permute(0, 1, 4, 2, 3)
        actions = torch.from_numpy(self.actions[sequence, step[:, :-1]])
        states = torch.from_numpy(self.states[sequence, step])
        return images.float().div_(255.0), actions, states


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time corruption of the encoder's frames (domain randomisation).

    Each kind hits a sequence with its probability; the decoder still reconstructs the
    clean frames and the heads predict the true state (``LatentModel.losses``).

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    noise_probability: float = 0.2
    """Chance that a sequence gets gaussian pixel noise, in [0, 1]."""
    noise_std_max: float = 0.12
    """Largest noise std (drawn uniformly per sequence), on the [0, 1] pixel scale."""
    colour_probability: float = 0.2
    """Chance of a per-channel gain in [0.7, 1.3] and offset in +-0.12, in [0, 1]."""
    occlusion_probability: float = 0.2
    """Chance of one to two opaque patches of random grey on the whole sequence, [0, 1]."""
    occlusion_size_max: int = 16
    """Largest patch side, pixels (smallest: a quarter of it)."""
    blank_probability: float = 0.2
    """Chance that a run of 1-5 frames (never the first) is replaced by one flat colour,
    as a dropped or blacked-out frame, in [0, 1]."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'noise_probability': 0.0 <= self.noise_probability <= 1.0,
            'noise_std_max': self.noise_std_max >= 0.0,
            'colour_probability': 0.0 <= self.colour_probability <= 1.0,
            'occlusion_probability': 0.0 <= self.occlusion_probability <= 1.0,
            'occlusion_size_max': self.occlusion_size_max >= 4,
            'blank_probability': 0.0 <= self.blank_probability <= 1.0,
        })


def augment(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator
            ) -> torch.Tensor:
    """Corrupt a batch of sequences of frames, per ``config``.

    :param images: (B, L, 3, H, W) float32 in [0, 1]; not modified.
    :param config: the corruption probabilities and sizes.
    :param generator: the source of randomness.
    :return: (B, L, 3, H, W) float32 in [0, 1], the corrupted frames.
    """
    batch, length, _, height, width = images.shape
    out = images.clone()

    def chance(probability: float) -> torch.Tensor:
        return torch.rand(batch, generator=generator) < probability

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    hit = chance(config.colour_probability).view(batch, 1, 1, 1, 1)
    gain = 0.7 + 0.6 * uniform(batch, 1, 3, 1, 1)
    offset = 0.24 * uniform(batch, 1, 3, 1, 1) - 0.12
    out = torch.where(hit, out * gain + offset, out)
    for index in torch.nonzero(chance(config.occlusion_probability)).flatten().tolist():
        for _ in range(1 + int(uniform(1).item() < 0.5)):
            side = int(config.occlusion_size_max * (0.25 + 0.75 * uniform(1).item()))
            top = int(uniform(1).item() * (height - side + 1))
            left = int(uniform(1).item() * (width - side + 1))
            # grey, not any colour: a random-coloured patch can be the goal's green, and
            # with it the goal head, learned on clean frames, unlearned (RMS 44 -> 90 mm)
            out[index, :, :, top:top + side, left:left + side] = uniform(1).item()
    hit = chance(config.noise_probability).view(batch, 1, 1, 1, 1)
    std = config.noise_std_max * uniform(batch, 1, 1, 1, 1)
    noise = torch.randn(out.shape, generator=generator) * std
    out = torch.where(hit, out + noise, out)
    if length > 1:
        for index in torch.nonzero(chance(config.blank_probability)).flatten().tolist():
            run = 1 + int(uniform(1).item() * 5)
            first = 1 + int(uniform(1).item() * (length - 1))
            out[index, first:first + run] = uniform(3, 1, 1)
    return out.clamp_(0.0, 1.0)
