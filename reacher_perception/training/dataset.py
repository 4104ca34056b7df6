"""Camera sequences for the latent model: the on-disk format, writing it and loading it.

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
    clean_images     uint8   (N, T, H, W, 3)  optional: the same frames in the clean scene
                                              (collected in a scene: the decoder's target)
    camera_k         float64 (N, 3, 3)        optional: each sequence's camera intrinsics K
    camera_r         float64 (N, 3, 3)        and rotation R (sensor_msgs/CameraInfo) when
                                              its camera was nudged; P is the geometry's
                                              camera (absent: that camera, unnudged)
    metadata         str     ()               JSON: geometry (the flat dict of
                                              ``reacher_common.geometry.geometry_to_dict``:
                                              ArmGeometry's fields and dt), seed, and
                                              scene_families: the scene families the
                                              collection could draw (absent: unknown,
                                              as in shards from before it or a bag)

Shards written before the one ``ArmGeometry`` lack ``link_width_m`` and
``camera_height_m`` in their geometry; they read as the defaults (``geometry_from_dict``).

:func:`write_shard` builds a shard from any such arrays (extra arrays ride along and are
ignored by the loader); ``reacher bag to-dataset BAG OUT.npz`` uses it to turn a rosbag2
recording of the loop into a dataset that ``reacher perception train --data OUT.npz``
reads. The format is numpy's; only :meth:`SequenceDataset.sample` loads torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
import json
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from reacher_common.camera_calibration import CameraCalibration
from reacher_common.geometry import (
    ArmGeometry,
    GEOMETRY_FIELDS,
    geometry_from_dict,
    geometry_to_dict,
    mismatches,
    Timing,
)
from reacher_perception.slac.config import states_from_truth
from reacher_sim.camera import CameraModel

if TYPE_CHECKING:
    import torch

POLICIES: tuple[str, ...] = ('random', 'ik', 'slac')
"""Policies of the collector: 'random' smooth random velocities, 'ik' the analytic IK +
PID controller of reacher_policy on the true state, with noise on its command."""


def write_shard(path: Path, images: npt.NDArray[np.uint8], actions: npt.NDArray[Any],
                joint_positions: npt.NDArray[Any], fingertip: npt.NDArray[Any],
                goal: npt.NDArray[Any], geometry: ArmGeometry, timing: Timing,
                policy: npt.NDArray[Any] | None = None, seed: int | None = None,
                extras: Mapping[str, npt.NDArray[Any]] | None = None,
                scene_families: Sequence[str] | None = None) -> Path:
    """Write one shard of the dataset format (the hook for datasets from recordings).

    :param path: the .npz file to write (parent folders are made).
    :param images: (N, T, H, W, 3) uint8 rgb8.
    :param actions: (N, T, 2) commands divided by ``geometry.max_joint_velocity``.
    :param joint_positions: (N, T, 2) rad.
    :param fingertip: (N, T, 2) metres.
    :param goal: (N, T, 2) metres.
    :param geometry: the camera and arm the frames come from.
    :param timing: the period between frames.
    :param policy: (N,) indices into ``POLICIES``, or None (-1: unknown).
    :param seed: the collection seed, if any, for the metadata.
    :param extras: further arrays to store under their names (the loader ignores them).
    :param scene_families: the ``reacher_sim.scene`` families the frames' scenes could
        show (empty: clean frames only), for the metadata; None: not known.
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
    metadata: dict[str, Any] = {'geometry': geometry_to_dict(geometry, timing), 'seed': seed}
    if scene_families is not None:
        metadata['scene_families'] = sorted(scene_families)
    np.savez_compressed(
        path, images=images, actions=np.asarray(actions, np.float32),
        joint_positions=np.asarray(joint_positions, np.float32),
        fingertip=np.asarray(fingertip, np.float32), goal=np.asarray(goal, np.float32),
        policy=(np.full(count, -1, np.int8) if policy is None
                else np.asarray(policy, np.int8)),
        metadata=np.array(json.dumps(metadata)),
        **(extras or {}))  # type: ignore[arg-type]
    return path


def read_geometry(shard: Mapping[str, Any]) -> tuple[ArmGeometry, Timing]:
    """The geometry and timing in an opened shard's metadata.

    :param shard: the ``np.load`` of a shard.
    :return: what :func:`write_shard` was given (older shards: see the module docstring).
    """
    return geometry_from_dict(json.loads(str(shard['metadata']))['geometry'])


class SequenceDataset:
    """All shards of a directory in memory, sampled as windows of consecutive steps.

    :param directory: a folder of ``shard_*.npz`` (or one .npz file), or several, whose
        sequences follow one another in the order given.
    :raises FileNotFoundError: naming the path when it holds no shard.
    :raises ValueError: when shards disagree on their geometry, naming the fields.
    """

    geometry: ArmGeometry
    """The arm and camera of the frames."""
    timing: Timing
    """The period between frames."""

    def __init__(self, directory: Path | Sequence[Path]) -> None:
        paths: list[Path] = []
        for folder in ([directory] if isinstance(directory, (str, Path)) else directory):
            folder = Path(folder)
            shards = ([folder] if folder.suffix == '.npz'
                      else sorted(folder.glob('shard_*.npz')))
            if not shards:
                raise FileNotFoundError(f'no dataset shards (shard_*.npz) at {folder}; '
                                        "make some with 'reacher perception collect'")
            paths += shards
        parts: dict[str, list[npt.NDArray[Any]]] = {}
        clean_parts: list[npt.NDArray[Any]] = []
        has_clean = False
        first: tuple[ArmGeometry, Timing] | None = None
        families: set[str] | None = set()
        for path in paths:
            with np.load(path) as shard:
                geometry, timing = read_geometry(shard)
                recorded = json.loads(str(shard['metadata'])).get('scene_families')
                families = (None if families is None or recorded is None
                            else families | set(recorded))
                if first is None:
                    first = (geometry, timing)
                differ = [f'{name} {getattr(first[0], name)!r} vs {getattr(geometry, name)!r}'
                          for name in GEOMETRY_FIELDS if mismatches(first[0], geometry, (name,))]
                if timing != first[1]:
                    differ.append(f'dt {first[1].dt!r} vs {timing.dt!r}')
                if differ:
                    raise ValueError(f'{path} has another geometry than {paths[0]}: '
                                     f'{"; ".join(differ)}')
                for name in ('images', 'actions', 'joint_positions', 'fingertip', 'goal'):
                    parts.setdefault(name, []).append(shard[name])
                count = len(shard['images'])
                nominal = CameraModel.from_geometry(geometry).calibration()
                for name, default in (('camera_k', nominal.k), ('camera_r', nominal.r)):
                    parts.setdefault(name, []).append(
                        shard[name] if name in shard.files
                        else np.broadcast_to(default, (count, 3, 3)))
                has_clean = has_clean or 'clean_images' in shard.files
                clean_parts.append(shard['clean_images'] if 'clean_images' in shard.files
                                   else parts['images'][-1])
        assert first is not None
        self.geometry, self.timing = first
        self.scene_families: tuple[str, ...] | None = (
            None if families is None else tuple(sorted(families)))
        """The scene families any of the shards could show (``reacher_sim.scene``; empty:
        clean frames only), or None when a shard does not record them."""
        self.images: npt.NDArray[np.uint8] = np.concatenate(parts['images'])
        """(N, T, H, W, 3) uint8."""
        self.clean_images: npt.NDArray[np.uint8] = (
            np.concatenate(clean_parts) if has_clean else self.images)
        """(N, T, H, W, 3) uint8, the frames in the clean scene (``images`` itself when no
        shard stores them)."""
        self.actions: npt.NDArray[np.float32] = np.concatenate(parts['actions'])
        self.joint_positions: npt.NDArray[np.float32] = np.concatenate(parts['joint_positions'])
        self.fingertip: npt.NDArray[np.float32] = np.concatenate(parts['fingertip'])
        self.goal: npt.NDArray[np.float32] = np.concatenate(parts['goal'])
        self.camera_k: npt.NDArray[np.float64] = np.concatenate(parts['camera_k'])
        """(N, 3, 3) float64, each sequence's camera intrinsics K."""
        self.camera_r: npt.NDArray[np.float64] = np.concatenate(parts['camera_r'])
        """(N, 3, 3) float64, each sequence's camera rotation R (raw to rectified)."""
        reach = self.geometry.upper_arm_length_m + self.geometry.forearm_length_m
        self.states = states_from_truth(self.joint_positions, self.fingertip, self.goal, reach)
        """(N, T, 8) float32, the state heads' targets."""

    def __len__(self) -> int:
        """Number of sequences."""
        return int(self.images.shape[0])

    def calibration(self, index: int) -> CameraCalibration:
        """The camera of one sequence, as its CameraInfo gave it.

        :param index: the sequence.
        :return: its K and R, no distortion, and P = the geometry's camera.
        """
        nominal = CameraModel.from_geometry(self.geometry).calibration()
        return replace(nominal, k=self.camera_k[index].astype(np.float64),
                       r=self.camera_r[index].astype(np.float64))

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
        images, _, actions, states = self.sample_with_clean(rng, batch_size, length)
        return images, actions, states

    def sample_with_clean(self, rng: np.random.Generator, batch_size: int, length: int
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of random windows with the same frames in the clean scene.

        :param rng: random generator (draws the same numbers as :meth:`sample`).
        :param batch_size: windows, >= 1.
        :param length: frames per window, in [2, steps].
        :return: ``(images, clean_images, actions, states)``, the frames (B, L, 3, H, W)
            float32 in [0, 1], then as :meth:`sample`.
        :raises ValueError: if ``length`` does not fit the sequences.
        """
        import torch

        if not 2 <= length <= self.steps:
            raise ValueError(f'window length {length} must be in [2, {self.steps}]')
        sequence = rng.integers(0, len(self), batch_size)[:, None]
        start = rng.integers(0, self.steps - length + 1, batch_size)[:, None]
        step = start + np.arange(length)[None, :]
        images = torch.from_numpy(self.images[sequence, step]).permute(0, 1, 4, 2, 3)
        clean = (images if self.clean_images is self.images else
                 torch.from_numpy(self.clean_images[sequence, step]).permute(0, 1, 4, 2, 3))
        actions = torch.from_numpy(self.actions[sequence, step[:, :-1]])
        states = torch.from_numpy(self.states[sequence, step])
        return (images.float().div_(255.0), clean.float().div_(255.0), actions, states)
