"""Sizes of the SLAC latent model, and the state its heads read out.

Scaled down from the paper (arXiv 1907.00953, appendix B: feature 256, z1 32, z2 256,
hidden 256, conv depth 32 at 64x64) because our scene is five flat-coloured shapes and we
train on one CPU core: when the model was sized, an update took ~480 ms at depth 32 and
~157 ms at depth 16; at depth 8 with 64-d features an update of 32 sequences x 9 frames
takes tens of ms, so a few thousand updates fit in minutes. The shipped checkpoint uses
these defaults except ``keypoints=16`` and ``state_weight=1e5`` (the command that made
it: ``reacher_perception/training/train.py`` and docs/slac.md); the keypoint default
stays 0 so that checkpoints from before the option, whose configs lack it, still load.

The heads' targets (:data:`STATE_NAMES`, :func:`states_from_truth`) are defined here, in
the runtime, next to the estimator that decodes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from reacher_common.config_tools import check_fields

STATE_NAMES: tuple[str, ...] = (
    'sin_shoulder', 'cos_shoulder', 'sin_elbow', 'cos_elbow',
    'fingertip_x', 'fingertip_y', 'goal_x', 'goal_y')
"""What the state heads predict, in this order: sin/cos of the joint angles, then the
fingertip and the goal in ``world`` divided by the arm's reach (so all are O(1))."""

INPUT_NORMALIZATIONS: tuple[str, ...] = ('none', 'standardize')
"""What the encoder may do to a frame before its first conv
(``SlacModelConfig.input_normalization``, ``network.normalize_frames``)."""


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


@dataclass(frozen=True)
class SlacModelConfig:
    """Sizes and fixed variances of :class:`reacher_perception.slac.latent.LatentModel`.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    image_size: int = 64
    """Frame width = height, pixels; a power of two in [16, 128] (the encoder halves it
    down to 4x4)."""
    action_dim: int = 2
    """Action size: the joint velocity command divided by ``max_joint_velocity``."""
    base_depth: int = 8
    """Channels of the first conv layer; each later layer doubles it (paper: 32)."""
    feature_dim: int = 64
    """Size of the encoder's global feature of one frame (paper: 256)."""
    keypoints: int = 0
    """K spatial-softmax keypoints appended to the feature (Levine et al., JMLR 2016,
    sec. 4.2; see ``network.Encoder``): 2K more numbers, sub-pixel positions read at half
    the frame's resolution; 0 turns the branch off (the checkpoints made before it)."""
    input_normalization: str = 'none'
    """What the encoder does to each frame before its first conv: 'none' (the checkpoints
    made before the option) or 'standardize' (per-frame photometric normalisation: each
    channel's mean subtracted, divided by the frame's std; ``network.normalize_frames``),
    which takes a global light gain out of the input. Measured (docs/slac.md, "Second
    pass"): fine-tuned from the shipped latent it read `randomized`'s joints better but
    lost the goal (a frame's mean is mostly table, so subtracting it shifts the arm's and
    goal's colours with the table); no shipped checkpoint uses it."""
    z1_dim: int = 16
    """Size of the stochastic latent z1, the one the KL term shapes (paper: 32)."""
    z2_dim: int = 64
    """Size of the latent z2, whose posterior is its prior (paper: 256)."""
    hidden_units: int = 128
    """Width of the two hidden layers of every gaussian factor's MLP (paper: 256)."""
    decoder_std: float = 0.1
    """Fixed standard deviation of p(x_t | z1_t, z2_t) on [0, 1] pixels (paper: sqrt(0.1)
    on its scale); smaller weighs reconstruction more against the KL; in (0, 1]."""
    foreground_weight: float = 0.0
    """Extra weight of the frame's foreground pixels (``latent.foreground_mask``: the arm
    and the goal, told from the table by colour) in the reconstruction log-likelihood:
    they count ``1 + foreground_weight`` times, the table once; >= 0. 0 is the paper's
    likelihood. Without it an ELBO-only latent (``state_weight`` 0, the faithful SLAC
    agent) leaves the goal out: ~30 of 4096 pixels, which the decoder can afford to miss.
    Measured on 2000 updates of random-policy frames (docs/slac_agent.md, "What the
    faithful latent knows"): a linear probe reads the goal to 133.5 mm at 0 (chance: 135)
    and to 18.8 mm at 30."""
    state_weight: float = 10000.0
    """Weight of the state heads' squared error in the loss (joint training; see
    ``LatentModel``); 0 trains the latent on the ELBO alone, >= 0. Measured with 16
    keypoints, 2000 clean updates, seed 0: the goal's RMS error on the last training
    batches was 3.9 mm at 1e4, 2.7 mm at 1e5 and 8.0 mm at 1e6; the shipped checkpoint
    uses 1e5 (docs/slac.md, "State weight and the per-frame floor")."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'image_size': self.image_size in (16, 32, 64, 128),
            'action_dim': self.action_dim >= 1,
            'base_depth': self.base_depth >= 1,
            'feature_dim': self.feature_dim >= 1,
            'keypoints': self.keypoints >= 0,
            'input_normalization': self.input_normalization in INPUT_NORMALIZATIONS,
            'z1_dim': self.z1_dim >= 1,
            'z2_dim': self.z2_dim >= 1,
            'hidden_units': self.hidden_units >= 1,
            'decoder_std': 0.0 < self.decoder_std <= 1.0,
            'state_weight': self.state_weight >= 0.0,
            'foreground_weight': self.foreground_weight >= 0.0,
        })

    @property
    def encoded_dim(self) -> int:
        """Size of the encoder's output, what q(z1 | x, ...) reads (feature + keypoints)."""
        return self.feature_dim + 2 * self.keypoints

    @property
    def state_dim(self) -> int:
        """Number of state-head outputs (``len(STATE_NAMES)``)."""
        return len(STATE_NAMES)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (what checkpoints store)."""
        return asdict(self)
