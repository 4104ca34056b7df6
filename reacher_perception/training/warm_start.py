"""Fine-tuning a checkpoint into a model with another input normalisation (warm start).

``SlacTrainConfig.init_from`` normally needs the checkpoint's model config exactly. A
change of ``SlacModelConfig.input_normalization`` alone adds no weights
(``network.normalize_frames`` has none), so the old weights load into the new model; what
changes is the scale and offset of what the first conv sees. :func:`absorb_normalization`
folds the clean frames' typical statistics into that conv, so that on clean frames the
warm-started model reads (nearly) as the old one did and fine-tuning starts from its
accuracy instead of from a broken first layer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.slac.checkpoint import load_checkpoint
from reacher_perception.slac.config import SlacModelConfig
from reacher_perception.slac.latent import LatentModel
from reacher_perception.slac.network import normalize_frames, STANDARDIZE_EPS


def absorb_normalization(model: LatentModel, clean_frames: npt.NDArray[np.uint8]) -> None:
    """Fold the clean frames' mean and std into the first conv of a 'standardize' encoder.

    For a frame x with the clean frames' average channel means m_c and std s, the
    normalised input is x' = (x - m) / (s + eps), so ``W x + b = (s + eps) W x' + (b +
    sum W m)``: the RGB weights are scaled by ``s + eps`` and the bias takes ``sum W m``
    (the two coordinate channels are untouched; exact away from the zero padding of the
    border pixels, and for frames whose own statistics equal the average).

    :param model: a model with ``input_normalization='standardize'`` holding weights
        trained without it; changed in place.
    :param clean_frames: (N, H, W, 3) uint8 clean frames, N >= 1.
    :raises ValueError: if the model does not standardise its input.
    """
    if model.config.input_normalization != 'standardize':
        raise ValueError('absorb_normalization needs input_normalization=standardize, '
                         f'not {model.config.input_normalization!r}')
    frames = torch.from_numpy(np.ascontiguousarray(clean_frames)).permute(0, 3, 1, 2)
    frames = frames.float().div(255.0)
    mean = frames.mean(dim=(0, 2, 3))
    centred = frames - frames.mean(dim=(2, 3), keepdim=True)
    std = float(centred.square().mean(dim=(1, 2, 3)).sqrt().mean())
    conv = model.encoder.net[0]
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None
    with torch.no_grad():
        conv.bias += (conv.weight[:, :3] * mean[None, :, None, None]).sum(dim=(1, 2, 3))
        conv.weight[:, :3] *= std + STANDARDIZE_EPS
    assert normalize_frames(frames[:1], 'standardize').isfinite().all()


def load_warm_start(path: Path, expected_model: SlacModelConfig,
                    expected_geometry: ArmGeometry, expected_timing: Timing,
                    clean_frames: npt.NDArray[np.uint8]) -> LatentModel:
    """The model a fine-tuning run (``init_from``) starts from.

    The checkpoint must have ``expected_model`` except, possibly, an
    ``input_normalization`` of 'none' where 'standardize' is expected: its weights are then
    loaded into the new model and :func:`absorb_normalization` adapts the first conv.

    :param path: the .pt file.
    :param expected_model: the run's model config.
    :param expected_geometry: the data's geometry (must match the checkpoint's).
    :param expected_timing: the data's timing (its ``dt`` must match).
    :param clean_frames: (N, H, W, 3) uint8 clean frames of the run's data.
    :return: the model in train mode, carrying ``expected_model``.
    :raises ValueError: as ``load_checkpoint`` does, for any other difference.
    """
    old = expected_model
    if expected_model.input_normalization == 'standardize':
        loaded = load_checkpoint(path).model
        if loaded.config.input_normalization == 'none':
            old = replace(expected_model, input_normalization='none')
    loaded = load_checkpoint(path, old, expected_geometry, expected_timing).model
    if old == expected_model:
        loaded.train()
        return loaded
    model = LatentModel(expected_model)
    model.load_state_dict(loaded.state_dict())
    absorb_normalization(model, clean_frames)
    model.train()
    return model
