"""``reacher bag to-dataset``: a bag's frames, commands and ground truth as sequences (.npz).

Dataset format (a NumPy ``.npz``; N sequences of T frames)
----------------------------------------------------------

================  ====================  =====================================================
key               shape, dtype          meaning
================  ====================  =====================================================
images            (N, T, H, W, 3) uint8 rgb8 camera frames /camera/image_raw
actions           (N, T, 2) float32     joint velocity command a_t divided by
                                        --max-joint-velocity (so in [-1, 1]; shoulder, elbow):
                                        the last /joint_commands received before frame t+1,
                                        i.e. the command in force from frame t to frame t+1
                                        (0 before the first command)
joint_positions   (N, T, 2) float32     ground-truth joint angles of frame t, rad, wrapped to
                                        [-pi, pi) (/joint_states with the frame's stamp)
joint_velocities  (N, T, 2) float32     the simulator's applied (clipped) joint velocities of
                                        the step that led to frame t, rad/s (/joint_states)
fingertip         (N, T, 2) float32     ground-truth fingertip, metres in ``world``, forward
                                        kinematics of ``joint_positions``
goal              (N, T, 2) float32     ground-truth goal centre, metres in ``world`` (/goal)
stamps            (N, T) float64        header.stamp of frame t, seconds
dt                () float32            median period between frames, seconds
link_lengths      (2,) float32          upper arm and forearm length used for ``fingertip``, m
policy            (N,) int8             -1 (a recording: no collector policy)
metadata          () str                JSON: geometry (ArmGeometry's fields and dt), as
                                        SLAC's shards
================  ====================  =====================================================

This is the SLAC dataset format (``reacher_perception.training.dataset``, written with its
``write_shard``), so ``reacher perception train --data OUT.npz`` trains on a recording.

Frames are the bag's images in stamp order that have ground truth of the same stamp. A
sequence never spans a gap (a dropped frame: a stamp step over 1.5 ``dt``) nor, by default,
a goal change (the continuous task samples a new goal after each success), so within a
sequence x_{t+1} follows from x_t and a_t. Sequences are cut every ``--stride`` frames
(default T: no overlap). This is SLAC's layout (arXiv 1907.00953, sec. 6: sequences of
8 steps + 1 frame) with one action per frame; a loader that wants S actions for S + 1
frames drops ``actions[:, -1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math
from pathlib import Path
import sys
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import tyro

from reacher.bag.io import (
    BagError,
    BagStreams,
    COMMAND_TOPIC,
    FloatArray,
    IMAGE_TOPIC,
    load_perception_config,
    read_streams,
    TRUTH_GOAL_TOPIC,
    TRUTH_JOINTS_TOPIC,
)


@dataclass
class DatasetArgs:
    """Write a bag's frames, commands and ground truth as training sequences (.npz)."""

    bag: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='BAG')]
    """Bag with /camera/image_raw, /joint_states, /goal and /joint_commands."""
    out: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='OUT')]
    """Output .npz file (format in the module docstring of reacher/bag/dataset.py)."""
    sequence_length: int = 9
    """Frames per sequence, T (SLAC: 8 steps + 1); >= 2."""
    stride: int = 0
    """Frames between the starts of two sequences; 0 means sequence_length (no overlap)."""
    split_on_goal_change: bool = True
    """Never let a sequence span a goal change (a new goal is a jump no action explains)."""
    params_file: Path | None = None
    """YAML with the arm's link lengths, for the fingertip (default: config/perception.yaml)."""
    namespace: str = ''
    """Namespace of the recorded loop (e.g. /arm1): the topics are read under it."""
    max_joint_velocity: float = 1.0
    """rad/s that an action of 1 stands for (config/sim.yaml); actions are stored divided
    by it, as in the SLAC dataset format."""


def build_dataset(streams: BagStreams, link_lengths: tuple[float, float],
                  sequence_length: int = 9, stride: int = 0,
                  split_on_goal_change: bool = True) -> dict[str, npt.NDArray[Any]]:
    """Cut a bag's streams into the sequences of the format in the module docstring.

    :param streams: from :func:`read_streams`.
    :param link_lengths: upper arm and forearm, metres (for the fingertip).
    :param sequence_length: T, frames per sequence, >= 2.
    :param stride: frames between sequence starts; 0 means ``sequence_length``.
    :param split_on_goal_change: whether a sequence may not span a goal change.
    :return: the arrays of the .npz, keyed as documented.
    :raises BagError: when the bag has too few matched frames for one sequence.
    """
    from reacher_common.kinematics import forward_kinematics

    if sequence_length < 2:
        raise BagError(f'--sequence-length {sequence_length} must be >= 2')
    if stride < 0:
        raise BagError(f'--stride {stride} must be >= 0')
    stride = stride or sequence_length
    order = np.argsort(np.asarray(streams.image_stamps, dtype=np.int64), kind='stable')
    frames = [int(i) for i in order
              if streams.image_stamps[i] in streams.truth_joints
              and streams.image_stamps[i] in streams.truth_goal]
    stamps = np.asarray([streams.image_stamps[i] for i in frames], dtype=np.int64)
    if len(frames) < sequence_length:
        raise BagError(f'only {len(frames)} frames with ground truth, fewer than one '
                       f'sequence of {sequence_length}')
    steps = np.diff(stamps)
    dt_ns = float(np.median(steps)) if steps.size else math.nan
    goals = np.stack([streams.truth_goal[streams.image_stamps[i]] for i in frames])
    # A segment is a run of frames with no dropped frame (and the same goal) in between.
    breaks = steps > 1.5 * dt_ns
    if split_on_goal_change:
        breaks |= np.any(goals[1:] != goals[:-1], axis=1)
    bounds = [0, *(np.flatnonzero(breaks) + 1).tolist(), len(frames)]
    starts = [start for begin, end in zip(bounds[:-1], bounds[1:], strict=True)
              for start in range(begin, end - sequence_length + 1, stride)]
    if not starts:
        raise BagError(f'no run of {sequence_length} consecutive frames without a dropped '
                       'frame or a goal change; try a smaller --sequence-length')

    # Bag time of the frame after each (the command in force until then is a_t).
    image_times = np.asarray(streams.image_times, dtype=np.int64)
    all_order = np.argsort(np.asarray(streams.image_stamps, dtype=np.int64), kind='stable')
    position = {int(index): rank for rank, index in enumerate(all_order)}
    end_time = int(max(image_times.max(), max(streams.command_times, default=0))) + 1

    def action(index: int) -> FloatArray:
        rank = position[index]
        until = (int(image_times[all_order[rank + 1]]) if rank + 1 < len(all_order)
                 else end_time)
        command = streams.command_before(until)
        return np.zeros(2) if command is None else command

    nan2 = np.full(2, np.nan)
    windows = [frames[start:start + sequence_length] for start in starts]
    joint_positions = np.stack([[streams.truth_joints[streams.image_stamps[i]] for i in window]
                                for window in windows])
    _, fingertip = forward_kinematics(joint_positions, *link_lengths)
    return {
        'images': np.stack([[streams.images[i] for i in window] for window in windows]),
        'actions': np.stack([[action(i) for i in window] for window in windows]
                            ).astype(np.float32),
        'joint_positions': joint_positions.astype(np.float32),
        'joint_velocities': np.stack(
            [[streams.truth_velocities.get(streams.image_stamps[i], nan2) for i in window]
             for window in windows]).astype(np.float32),
        'fingertip': fingertip.astype(np.float32),
        'goal': np.stack([[streams.truth_goal[streams.image_stamps[i]] for i in window]
                          for window in windows]).astype(np.float32),
        'stamps': np.stack([[streams.image_stamps[i] * 1e-9 for i in window]
                            for window in windows]),
        'dt': np.asarray(dt_ns * 1e-9, dtype=np.float32),
        'link_lengths': np.asarray(link_lengths, dtype=np.float32),
    }


def run_to_dataset(args: DatasetArgs) -> int:
    """``bag to-dataset``: write the .npz and print its shapes."""
    if args.out.suffix != '.npz':
        raise BagError(f'output {str(args.out)!r} must end in .npz')
    config = load_perception_config(args.params_file)
    streams = read_streams(args.bag, need=(IMAGE_TOPIC, TRUTH_JOINTS_TOPIC, TRUTH_GOAL_TOPIC),
                           namespace=args.namespace)
    if not streams.commands:
        print(f'warning: no {COMMAND_TOPIC} in the bag: actions are zero', file=sys.stderr)
    arrays = build_dataset(streams, config.geometry.link_lengths,
                           args.sequence_length, args.stride, args.split_on_goal_change)
    if not args.max_joint_velocity > 0:
        raise BagError(f'--max-joint-velocity {args.max_joint_velocity} must be > 0')
    # The SLAC dataset format (reacher_perception/training/dataset.py), so that
    # `reacher perception train --data OUT.npz` trains on the recording.
    from reacher_common.geometry import Timing
    from reacher_perception.training.dataset import write_shard

    geometry = replace(config.geometry, image_size=int(arrays['images'].shape[2]),
                       max_joint_velocity=args.max_joint_velocity)
    timing = Timing(dt=round(float(arrays['dt']), 6))
    arrays['actions'] = (arrays['actions'] / args.max_joint_velocity).astype(np.float32)
    core = ('images', 'actions', 'joint_positions', 'fingertip', 'goal')
    write_shard(args.out, images=arrays['images'], actions=arrays['actions'],
                joint_positions=arrays['joint_positions'], fingertip=arrays['fingertip'],
                goal=arrays['goal'], geometry=geometry, timing=timing,
                extras={key: value for key, value in arrays.items() if key not in core})
    print(f'wrote {args.out}: ' + ', '.join(
        f'{key} {tuple(value.shape)} {value.dtype}' for key, value in arrays.items()))
    return 0
