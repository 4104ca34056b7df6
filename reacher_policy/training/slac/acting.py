"""What the SLAC actor reads while acting: the last S frames and S - 1 actions per env.

:class:`FrameHistory` keeps them for a batch of envs, padded at an episode's start the
way :class:`reacher_policy.training.slac.buffer.SlacReplayBuffer` pads its sequences (the
first frame repeated, zero actions), so acting and training see the same inputs.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from reacher_policy.training.evaluate import EpisodicPolicy


def frame_of(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An env's (H, W, 3) rgb8 observation as the (3, H, W) frame the encoder reads."""
    return np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8).transpose(2, 0, 1))


class FrameHistory:
    """The last S frames (or their features) and S - 1 actions of ``envs`` envs.

    :param envs: number of envs (rows).
    :param sequence_length: S.
    :param frame_shape: (3, H, W) for frames, (encoded_dim,) for features.
    :param action_dim: size of an action.
    :param dtype: uint8 for frames, float32 for features.
    """

    def __init__(self, envs: int, sequence_length: int, frame_shape: tuple[int, ...],
                 action_dim: int, dtype: Any = np.uint8) -> None:
        self.frames = np.zeros((envs, sequence_length, *frame_shape), dtype=dtype)
        self.actions = np.zeros((envs, sequence_length - 1, action_dim), dtype=np.float32)
        self.last_action = np.zeros((envs, action_dim), dtype=np.float32)

    def reset(self, row: int, frame: npt.NDArray[Any]) -> None:
        """Start an episode in ``row``: its first frame S times, zero actions."""
        self.frames[row] = frame
        self.actions[row] = 0.0
        self.last_action[row] = 0.0

    def push(self, row: int, action: npt.NDArray[np.float32],
             frame: npt.NDArray[Any]) -> None:
        """Append the action just executed in ``row`` and the frame it led to."""
        self.frames[row, :-1] = self.frames[row, 1:]
        self.frames[row, -1] = frame
        self.actions[row, :-1] = self.actions[row, 1:]
        self.actions[row, -1] = action


class _Acts(Protocol):
    def encode(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]: ...

    def act_on_features(self, features: npt.NDArray[np.float32],
                        actions: npt.NDArray[np.float32],
                        deterministic: bool = True) -> npt.NDArray[np.float32]: ...


class SlacEvalPolicy(EpisodicPolicy):
    """The agent's deterministic policy for :func:`evaluate_policy` on pixel envs.

    The encoder does not change during an evaluation, so each frame is encoded once and
    its feature kept (the training loop re-encodes, since its encoder keeps learning).

    :param agent: a :class:`reacher_policy.training.slac.agent.SlacAgent` (anything with
        its ``act``).
    :param sequence_length: S.
    :param action_dim: size of an action.
    """

    def __init__(self, agent: _Acts, sequence_length: int, action_dim: int = 2) -> None:
        self.agent = agent
        self.sequence_length = sequence_length
        self.action_dim = action_dim
        self.history: FrameHistory | None = None
        self.started: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)

    def start(self, episodes: int) -> None:
        """Forget every episode; ``episodes`` run in lockstep from now on."""
        self.history = None
        self.started = np.zeros(episodes, dtype=bool)

    def act(self, observations: npt.NDArray[Any],
            episodes: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Actions of the given episodes from their (B, H, W, 3) uint8 observations."""
        features = self.agent.encode(np.stack([frame_of(pixels) for pixels in observations]))
        if self.history is None:
            self.history = FrameHistory(len(self.started), self.sequence_length,
                                        features.shape[1:], self.action_dim, np.float32)
        history = self.history
        for row, episode in enumerate(episodes):
            if not self.started[episode]:
                history.reset(episode, features[row])
                self.started[episode] = True
            else:
                history.push(episode, history.last_action[episode], features[row])
        actions = self.agent.act_on_features(history.frames[episodes],
                                             history.actions[episodes])
        history.last_action[episodes] = np.clip(actions, -1.0, 1.0)
        return actions
