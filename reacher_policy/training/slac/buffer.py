"""The SLAC agent's replay: whole episodes of frames, sampled as fixed-length sequences.

Frames are stored once, as uint8 (C, H, W), in a ring of ``capacity`` env steps; a
sequence is cut from them when sampled. Step ``i`` of the ring holds frame ``x_i``, the
action ``a_i`` taken after it, the reward ``r_i`` and the ``terminated`` flag of that
transition, and (privileged variant only) the true state of frame ``i``.

Episode starts are padded the way the arm itself would move: a sequence that would begin
before its episode's first frame repeats that frame with zero actions (the action is a
joint velocity, so a zero action leaves the frame unchanged; the dynamics stay true). So
the actor sees, at an episode's first step, exactly what it was trained on: the first
frame S times and S - 1 zero actions. Padded transitions carry no reward (masked out of
the reward term by ``real``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch


class SlacReplayBuffer:
    """A ring of env steps that samples (S + 1)-frame sequences within one episode.

    :param capacity: env steps kept (the oldest are overwritten).
    :param frame_shape: (C, H, W) of a frame.
    :param action_dim: size of an action.
    :param sequence_length: S, transitions per sampled sequence.
    :param state_dim: size of the true state kept per frame (0: none, the faithful agent).
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, int, int], action_dim: int,
                 sequence_length: int, state_dim: int = 0) -> None:
        self.capacity = int(capacity)
        self.sequence_length = int(sequence_length)
        self.frames = np.zeros((self.capacity, *frame_shape), dtype=np.uint8)
        self.actions = np.zeros((self.capacity, action_dim), dtype=np.float32)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.states = np.zeros((self.capacity, state_dim), dtype=np.float32)
        # absolute step number of each slot's episode start, and whether the slot's
        # transition is complete (its next frame is stored)
        self.episode_start = np.zeros(self.capacity, dtype=np.int64)
        self.has_next = np.zeros(self.capacity, dtype=bool)
        self.written = 0  # absolute steps written so far
        self.transitions = 0  # transitions added so far (calls of add)
        self._start = 0  # absolute step of the current episode's first frame
        self._open = False  # whether the last written frame awaits its action

    def __len__(self) -> int:
        return min(self.written, self.capacity)

    def start_episode(self, frame: npt.NDArray[np.uint8],
                      state: npt.NDArray[np.float32] | None = None) -> None:
        """Store an episode's first frame (after ``env.reset``).

        :param frame: (C, H, W) uint8.
        :param state: (state_dim,) float32, the privileged variant's true state.
        """
        self._start = self.written
        self._write_frame(frame, state)

    def add(self, action: npt.NDArray[np.float32], reward: float, terminated: bool,
            next_frame: npt.NDArray[np.uint8],
            next_state: npt.NDArray[np.float32] | None = None) -> None:
        """Store a transition from the last frame: its action, reward, flag, next frame.

        :param action: (action_dim,) float32 in [-1, 1], as executed (clipped).
        :param reward: r_t.
        :param terminated: whether the episode ended in a terminal state (success); a
            truncation is not terminal (the critic bootstraps through it).
        :param next_frame: (C, H, W) uint8, x_{t+1}.
        :param next_state: (state_dim,) float32, the privileged variant's true state.
        :raises RuntimeError: if no episode was started.
        """
        if not self._open:
            raise RuntimeError('call start_episode before add')
        slot = (self.written - 1) % self.capacity
        self.actions[slot] = action
        self.rewards[slot] = reward
        self.terminated[slot] = float(terminated)
        self.has_next[slot] = True
        self.transitions += 1
        self._write_frame(next_frame, next_state)

    def _write_frame(self, frame: npt.NDArray[np.uint8],
                     state: npt.NDArray[np.float32] | None) -> None:
        slot = self.written % self.capacity
        self.frames[slot] = frame
        if state is not None and self.states.shape[1]:
            self.states[slot] = state
        self.actions[slot] = 0.0
        self.rewards[slot] = 0.0
        self.terminated[slot] = 0.0
        self.has_next[slot] = False
        self.episode_start[slot] = self._start
        self.written += 1
        self._open = True

    def sequence_indices(self, ends: npt.NDArray[np.int64]
                         ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Absolute frame indices of the sequences whose last transition starts at ``ends``.

        :param ends: (B,) absolute steps t of complete transitions.
        :return: ``(frames, real)``: (B, S + 1) absolute indices of frames t - S + 1 ..
            t + 1, clamped to each episode's start, and (B, S) whether each transition
            is a real one (False where the padding repeats the first frame).
        """
        steps = self.sequence_length
        offsets = np.arange(-steps + 1, 2)
        raw = ends[:, None] + offsets[None, :]
        start = self.episode_start[ends % self.capacity][:, None]
        frames = np.maximum(raw, start)
        real = raw[:, 1:] > start
        return frames, real

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Sample sequences uniformly over complete transitions still in the ring.

        :param batch_size: B.
        :param rng: the random source.
        :return: ``images`` (B, S+1, C, H, W) float32 in [0, 1]; ``actions`` (B, S, A)
            (zero on padded steps); ``rewards``, ``terminated`` and ``real`` (B, S)
            float32; ``states`` (B, S+1, state_dim) float32.
        :raises ValueError: when the ring holds no sequence yet.
        """
        oldest = max(0, self.written - self.capacity)
        candidates = np.arange(oldest, self.written)
        complete = self.has_next[candidates % self.capacity]
        # the episode's start must still be in the ring, so that padding is right
        complete &= self.episode_start[candidates % self.capacity] >= oldest
        ends = candidates[complete]
        if ends.size == 0:
            raise ValueError('the replay buffer holds no complete transition yet')
        ends = rng.choice(ends, size=batch_size)
        frames, real = self.sequence_indices(ends)
        slots = frames % self.capacity
        transitions = slots[:, :-1]
        mask = real.astype(np.float32)
        batch: dict[str, Any] = {
            'images': torch.from_numpy(self.frames[slots]).float().div_(255.0),
            'actions': torch.from_numpy(self.actions[transitions] * mask[..., None]),
            'rewards': torch.from_numpy(self.rewards[transitions] * mask),
            'terminated': torch.from_numpy(self.terminated[transitions] * mask),
            'real': torch.from_numpy(mask),
            'states': torch.from_numpy(self.states[slots]),
        }
        return batch

    _ARRAYS = ('frames', 'actions', 'rewards', 'terminated', 'states', 'episode_start',
               'has_next')

    def save(self, path: str | Path) -> Path:
        """Write the ring's filled part and counters to an uncompressed ``.npz``, atomically.

        12 kB per stored 64x64 frame; :meth:`load` reads it back without pickle.

        :param path: the .npz file.
        :return: the path.
        """
        path = Path(path)
        filled = len(self)
        arrays = {name: getattr(self, name)[:filled] for name in self._ARRAYS}
        counters = np.array([self.capacity, self.written, self.transitions, self._start,
                             int(self._open)], dtype=np.int64)
        partial = path.with_name(path.name + '.partial')
        with partial.open('wb') as stream:
            np.savez(stream, counters=counters, **arrays)
        partial.replace(path)
        return path

    def load(self, path: str | Path) -> None:
        """Fill this (empty) ring from :meth:`save`'s file.

        :raises ValueError: naming the file, if its capacity or array shapes differ.
        """
        with np.load(path, allow_pickle=False) as saved:
            capacity, written, transitions, start, opened = (
                int(v) for v in saved['counters'])
            filled = min(written, capacity)
            for name in self._ARRAYS:
                mine, theirs = getattr(self, name), saved[name]
                if capacity != self.capacity or theirs.shape != (filled, *mine.shape[1:]):
                    raise ValueError(f'replay {path} does not fit this buffer ({name}: '
                                     f'{theirs.shape} of capacity {capacity}, expected '
                                     f'{mine.shape})')
                mine[:filled] = theirs
        self.written, self.transitions, self._start = written, transitions, start
        self._open = bool(opened)
