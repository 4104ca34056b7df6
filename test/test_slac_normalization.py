"""The SLAC encoder's photometric input normalisation and the warm start into it."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.weights import latent_model_fingerprint
from reacher_perception.slac.checkpoint import (
    default_slac_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from reacher_perception.slac.config import SlacModelConfig
from reacher_perception.slac.latent import LatentModel
from reacher_perception.slac.network import normalize_frames, STANDARDIZE_EPS
from reacher_perception.training.collect import collect
from reacher_perception.training.config import CollectConfig, SlacTrainConfig
from reacher_perception.training.train import train
from reacher_perception.training.warm_start import absorb_normalization, load_warm_start

TINY = SlacModelConfig(image_size=16, base_depth=4, feature_dim=8, z1_dim=3, z2_dim=5,
                       hidden_units=16)
GEOMETRY_16 = ArmGeometry(image_size=16)


def tiny_frame() -> torch.Tensor:
    """(1, 3, 4, 4): a flat background with a bright 2x2 'arm' in one corner."""
    frame = torch.empty(1, 3, 4, 4)
    frame[0, 0], frame[0, 1], frame[0, 2] = 0.2, 0.5, 0.3
    frame[0, :, :2, :2] = torch.tensor([0.9, 0.1, 0.6])[:, None, None]
    return frame


def test_standardize_on_a_tiny_frame() -> None:
    frame = tiny_frame()
    out = normalize_frames(frame, 'standardize')
    # each channel's mean is removed
    torch.testing.assert_close(out.mean(dim=(2, 3)), torch.zeros(1, 3), atol=1e-6, rtol=0)
    # and the frame is divided by its std (+ eps): by hand, the 2x2 patch is a quarter of
    # the pixels, so channel c's offsets are 3/4 d_c on it and -1/4 d_c elsewhere
    d = torch.tensor([0.7, -0.4, 0.3])
    std = float(torch.sqrt((d.square() * (0.25 * 0.75**2 + 0.75 * 0.25**2)).mean()))
    expected = torch.full((4, 4), -0.25)
    expected[:2, :2] = 0.75
    torch.testing.assert_close(out[0], d[:, None, None] * expected / (std + STANDARDIZE_EPS))


def test_standardize_removes_background_colour_and_light_gain() -> None:
    frame = tiny_frame()
    reference = normalize_frames(frame, 'standardize')
    # another table: a per-channel offset vanishes exactly
    shifted = frame + torch.tensor([0.1, -0.2, 0.05])[None, :, None, None]
    torch.testing.assert_close(normalize_frames(shifted, 'standardize'), reference)
    # brighter light: a global gain cancels up to the eps in the std
    for gain in (0.65, 1.35):
        torch.testing.assert_close(normalize_frames(gain * frame, 'standardize'), reference,
                                   atol=0.1, rtol=0)
    # a blank frame stays zero instead of blowing up
    assert torch.equal(normalize_frames(torch.zeros(1, 3, 4, 4), 'standardize'),
                       torch.zeros(1, 3, 4, 4))
    assert torch.equal(normalize_frames(frame, 'none'), frame)
    with pytest.raises(ValueError, match='unknown input normalisation'):
        normalize_frames(frame, 'whiten')


def test_bad_normalization_is_named() -> None:
    with pytest.raises(ValueError, match='input_normalization'):
        SlacModelConfig(input_normalization='whiten')


def test_the_shipped_checkpoint_loads_unchanged(tmp_path: Path) -> None:
    # A checkpoint written before the option (no input_normalization in its config, as
    # the shipped one was until its confidence was refitted) reads as 'none'.
    payload = torch.load(default_slac_checkpoint(), weights_only=True)
    assert payload['metadata']['model_config'].get('input_normalization', 'none') == 'none'
    payload['metadata']['model_config'].pop('input_normalization', None)
    path = tmp_path / 'before_the_option.pt'
    torch.save(payload, path)
    model = load_checkpoint(path).model
    assert model.config.input_normalization == 'none'
    for key, value in payload['model'].items():
        assert torch.equal(value, model.state_dict()[key]), key
    # the encoder reads the raw frame: bit for bit what its layers give without the option
    frame = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    encoder = model.encoder
    inputs = torch.cat([frame, encoder.coordinates.expand(2, -1, -1, -1)], dim=1)
    first = encoder.net[:2](inputs)
    assert encoder.keypoint_net is not None and encoder.spatial_softmax is not None
    expected = torch.cat([encoder.net[2:](first).flatten(1),
                          encoder.spatial_softmax(encoder.keypoint_net(first))], dim=-1)
    with torch.no_grad():
        assert torch.equal(encoder(frame), expected.detach())


def test_normalization_adds_no_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = LatentModel(TINY)
    normalized = LatentModel(replace(TINY, input_normalization='standardize'))
    assert plain.state_dict().keys() == normalized.state_dict().keys()
    path = save_checkpoint(tmp_path / 'n.pt', normalized, GEOMETRY_16, Timing())
    assert load_checkpoint(path).model.config.input_normalization == 'standardize'
    # the fingerprint is of the weights alone (the controller's check)
    assert latent_model_fingerprint(path)


def test_warm_start_keeps_what_the_first_conv_sees(tmp_path: Path) -> None:
    torch.manual_seed(0)
    old = LatentModel(TINY)
    path = save_checkpoint(tmp_path / 'old.pt', old, GEOMETRY_16, Timing())
    clean = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    config = replace(TINY, input_normalization='standardize')
    new = load_warm_start(path, config, GEOMETRY_16, Timing(), clean)
    assert new.config == config and new.training
    frame = torch.from_numpy(clean).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        inputs_old = torch.cat([frame, old.encoder.coordinates[None]], dim=1)
        normed = normalize_frames(frame, 'standardize')
        inputs_new = torch.cat([normed, new.encoder.coordinates[None]], dim=1)
        before = old.encoder.net[0](inputs_old)
        after = new.encoder.net[0](inputs_new)
    # exact away from the zero-padded border (a 5x5 conv pads 2 px)
    torch.testing.assert_close(after[..., 2:-2, 2:-2], before[..., 2:-2, 2:-2],
                               atol=1e-5, rtol=1e-4)
    # the other weights are the old ones
    for key, value in old.state_dict().items():
        if not key.startswith('encoder.net.0.'):
            assert torch.equal(value, new.state_dict()[key]), key
    # any other difference is still refused by name
    with pytest.raises(ValueError, match='z2_dim'):
        load_warm_start(path, replace(config, z2_dim=6), GEOMETRY_16, Timing(), clean)
    with pytest.raises(ValueError, match='standardize'):
        absorb_normalization(old, clean)


def test_fine_tuning_starts_a_standardizing_model_from_a_plain_one(tmp_path: Path) -> None:
    # reacher perception train --init-from OLD --model.input-normalization standardize
    data = tmp_path / 'data'
    collect(CollectConfig(sequences=2, steps=4, shard_size=2, seed=3), GEOMETRY_16,
            Timing(), data, progress=False)
    torch.manual_seed(0)
    old = save_checkpoint(tmp_path / 'old.pt', LatentModel(TINY), GEOMETRY_16, Timing())
    config = SlacTrainConfig(data=data, out=tmp_path / 'run', updates=2, batch_size=2,
                             sequence_length=2, log_every=1, checkpoint_every=2,
                             warmup_updates=1, init_from=old,
                             model=replace(TINY, input_normalization='standardize'))
    train(config, progress=False)
    tuned = load_checkpoint(tmp_path / 'run' / 'final.pt').model
    assert tuned.config.input_normalization == 'standardize'
    # the same config fine-tunes as before; another size is still refused by name
    train(replace(config, out=tmp_path / 'again', model=TINY), progress=False)
    with pytest.raises(ValueError, match='z1_dim'):
        train(replace(config, out=tmp_path / 'bad', model=replace(TINY, z1_dim=4)),
              progress=False)
