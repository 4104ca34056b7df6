"""Training-time corruption of the encoder's frames (domain randomisation).

:func:`augment` draws, per sequence, the corruptions that an :class:`AugmentConfig`
allows: a colour gain and offset, grey occluding patches, gaussian pixel noise and runs
of blank frames. The schedule that ramps them up is in :mod:`.train`.
"""

from __future__ import annotations

import numpy as np
import torch

from reacher_perception.background import BackgroundNormalizer
from reacher_perception.training.config import AugmentConfig


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


def repaint(images: torch.Tensor, normalize: BackgroundNormalizer) -> torch.Tensor:
    """Each frame's table repainted, as the estimator reads it (``normalize_background``).

    The frames are first rounded to uint8, as a camera's are, and then repainted one by one
    exactly as the estimator repaints them (at the default 64 px a clean frame comes back
    bit for bit; below that the median window meets the arm and need not).

    :param images: (B, L, 3, H, W) float32 in [0, 1]; not modified.
    :param normalize: the estimator's normaliser.
    :return: (B, L, 3, H, W) float32 in [0, 1].
    """
    pixels = images.mul(255.0).round_().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()
    repainted = np.stack([[normalize(frame) for frame in sequence] for sequence in pixels])
    return torch.from_numpy(repainted).permute(0, 1, 4, 2, 3).float().div_(255.0)
