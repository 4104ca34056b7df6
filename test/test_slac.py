"""Tests of the SLAC latent model, its data, checkpoints, training and the slac backend."""

import dataclasses
from dataclasses import replace
import json
from pathlib import Path
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

from reacher.cli import main as reacher_main
from reacher_common.config_tools import field_docs
from reacher_common.geometry import ArmGeometry, geometry_to_dict, Timing
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import Estimate, ESTIMATORS, make_estimator
from reacher_perception.slac.checkpoint import load_checkpoint, save_checkpoint
from reacher_perception.slac.config import SlacModelConfig, STATE_NAMES, states_from_truth
from reacher_perception.slac.latent import foreground_mask, LatentLosses, LatentModel
from reacher_perception.slac.network import SpatialSoftmax
from reacher_perception.training.augment import augment
from reacher_perception.training.collect import collect, collect_dataset
from reacher_perception.training.commands import COMMANDS
from reacher_perception.training.config import AugmentConfig, CollectConfig, SlacTrainConfig
from reacher_perception.training.dataset import SequenceDataset, write_shard
from reacher_perception.training.train import augment_schedule, load_probe_base, train
from reacher_sim.render import ArmRenderer

TINY = SlacModelConfig(image_size=16, base_depth=4, feature_dim=8, z1_dim=3, z2_dim=5,
                       hidden_units=16)
GEOMETRY_16 = ArmGeometry(image_size=16)
TIMING = Timing()


def tiny_batch(batch: int = 2, steps: int = 3, size: int = 16):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, steps, 3, size, size, generator=generator)
    actions = torch.rand(batch, steps - 1, 2, generator=generator) * 2 - 1
    states = torch.rand(batch, steps, len(STATE_NAMES), generator=generator)
    return images, actions, states


def test_shapes_of_every_factor() -> None:
    torch.manual_seed(0)
    model = LatentModel(TINY)
    images, actions, states = tiny_batch()
    features = model.encoder(images)
    assert features.shape == (2, 3, 8)
    z1, z2, posteriors = model.sample_posterior(features, actions)
    assert z1.shape == (2, 3, 3) and z2.shape == (2, 3, 5) and len(posteriors) == 3
    priors = model.z1_priors(z2, actions)
    assert [p.mean.shape for p in priors] == [(2, 3)] * 3
    # p(z1_1) is the standard normal
    assert torch.equal(priors[0].mean, torch.zeros(2, 3))
    assert torch.equal(priors[0].stddev, torch.ones(2, 3))
    assert model.decoder(torch.cat([z1, z2], -1)).shape == images.shape
    assert model.state(z1, z2).shape == (2, 3, len(STATE_NAMES))


def test_z2_posterior_is_the_prior_factor() -> None:
    model = LatentModel(TINY)
    assert model.z2_posterior is model.z2_prior
    assert model.z2_posterior_init is model.z2_prior_init
    # shared, not copied: the checkpoint holds the factor once
    assert not any(key.startswith('z2_posterior') for key in model.state_dict())


@pytest.mark.parametrize('size', [16, 32, 64])
def test_encoder_and_decoder_sizes(size: int) -> None:
    model = LatentModel(replace(TINY, image_size=size))
    images, actions, states = tiny_batch(1, 2, size)
    losses, reconstruction = model.losses(images, actions, states)
    assert reconstruction.shape == images.shape
    assert torch.isfinite(losses.loss)


def test_elbo_terms() -> None:
    torch.manual_seed(0)
    model = LatentModel(TINY)
    images, actions, states = tiny_batch()
    losses, reconstruction = model.losses(images, actions, states)
    assert isinstance(losses, LatentLosses)
    for name in ('loss_kld', 'loss_image', 'loss_state', 'loss'):
        assert getattr(losses, name).dim() == 0, name
    assert losses.loss_kld.item() >= 0.0  # a sum of KL divergences
    assert losses.loss.item() == pytest.approx(
        (losses.loss_kld + losses.loss_image + losses.loss_state).item(), rel=1e-5)
    # the image term is the gaussian negative log-likelihood of the frames, summed
    std = TINY.decoder_std
    expected = (0.5 * ((images - reconstruction) / std) ** 2
                + np.log(std) + 0.5 * np.log(2 * np.pi)).sum() / images.shape[0]
    assert losses.loss_image.item() == pytest.approx(expected.item(), rel=1e-4)
    assert losses.state_mse.shape == (len(STATE_NAMES),)
    assert set(losses.as_floats()) == {'loss_kld', 'loss_image', 'loss_state', 'loss'}
    # every trainable part gets a gradient
    losses.loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name


def test_zero_state_weight_leaves_the_elbo() -> None:
    model = LatentModel(replace(TINY, state_weight=0.0))
    losses, _ = model.losses(*tiny_batch())
    assert losses.loss_state.item() == 0.0


def test_foreground_mask_picks_the_arm_and_goal_of_a_rendered_frame() -> None:
    renderer = ArmRenderer(ArmGeometry())
    frame = renderer.render(np.array([0.4, -1.1]), np.array([0.12, -0.08]))
    mask = foreground_mask(torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0)[0]
    table = (frame == frame[0, 0]).all(-1)
    assert mask.shape == (64, 64)
    assert not mask[torch.from_numpy(table)].any()  # the table's own colour is never in
    assert 0.01 < mask.float().mean() < 0.1  # the arm and goal: a few percent of pixels
    green = (frame[..., 1] > 150) & (frame[..., 0] < 120)  # the goal square
    assert green.sum() >= 16 and mask[torch.from_numpy(green)].all()


def test_foreground_weight_weighs_the_foreground_pixels_only() -> None:
    images, actions, states = tiny_batch()
    images[:, :, :, 4:7, 4:7] += 0.5  # a bright square on every frame
    images = images.clamp(0, 1)
    plain, weighted = (LatentModel(replace(TINY, foreground_weight=weight))
                       for weight in (0.0, 9.0))
    weighted.load_state_dict(plain.state_dict())
    outputs = []
    for model in (plain, weighted):
        torch.manual_seed(3)  # the same posterior sample
        outputs.append(model.losses(images, actions, states))
    (plain_losses, reconstruction), (weighted_losses, _) = outputs
    std = TINY.decoder_std
    nll = 0.5 * ((images - reconstruction) / std) ** 2 + np.log(std) + 0.5 * np.log(2 * np.pi)
    mask = foreground_mask(images)
    assert mask.any() and not mask.all()
    extra = 9.0 * (nll * mask).sum() / images.shape[0]
    assert weighted_losses.loss_image.item() == pytest.approx(
        (plain_losses.loss_image + extra).item(), rel=1e-4)
    assert weighted_losses.loss_kld.item() == pytest.approx(plain_losses.loss_kld.item())


def test_bad_model_config_is_named() -> None:
    with pytest.raises(ValueError, match='image_size'):
        SlacModelConfig(image_size=48)
    with pytest.raises(ValueError, match='keypoints'):
        SlacModelConfig(keypoints=-1)


def pixel_to_unit(index: float, size: int) -> float:
    """Pixel centre ``index`` (0 .. size-1) on SpatialSoftmax's [-1, 1] scale."""
    return -1.0 + 2.0 * index / (size - 1)


def test_spatial_softmax_finds_a_bright_dot() -> None:
    layer = SpatialSoftmax(2, 32, 24)
    with torch.no_grad():
        layer.log_temperature.fill_(np.log(0.01))  # sharp: all the mass on the maximum
    maps = torch.zeros(1, 2, 32, 24)
    maps[0, 0, 5, 17] = 1.0   # row 5, column 17
    maps[0, 1, 30, 2] = 1.0
    points = layer(maps).detach()
    assert points.shape == (1, 4)
    x, y = points[0, :2], points[0, 2:]
    np.testing.assert_allclose(x.numpy(), [pixel_to_unit(17, 24), pixel_to_unit(2, 24)],
                               atol=1e-5)
    np.testing.assert_allclose(y.numpy(), [pixel_to_unit(5, 32), pixel_to_unit(30, 32)],
                               atol=1e-5)


def test_spatial_softmax_is_sub_pixel() -> None:
    # A blob centred between pixels: log-activations of a gaussian with std 1 px around
    # (row 12.3, column 20.7). At temperature 1 the softmax is that gaussian, whose mean
    # is the centre: the keypoint lands a fraction of a pixel away from any pixel centre.
    size = 32
    rows, columns = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(),
                                   indexing='ij')
    maps = (-((rows - 12.3) ** 2 + (columns - 20.7) ** 2) / 2.0)[None, None]
    x, y = SpatialSoftmax(1, size, size)(maps)[0].tolist()
    pixel = 2.0 / (size - 1)
    assert abs(x - pixel_to_unit(20.7, size)) < 0.01 * pixel
    assert abs(y - pixel_to_unit(12.3, size)) < 0.01 * pixel


@pytest.mark.parametrize('size', [16, 64])
def test_keypoint_encoder_shapes_and_gradients(size: int) -> None:
    torch.manual_seed(0)
    config = replace(TINY, image_size=size, keypoints=3)
    assert config.encoded_dim == TINY.feature_dim + 6
    model = LatentModel(config)
    assert model.encoder.output_dim == config.encoded_dim
    images, actions, states = tiny_batch(2, 3, size)
    features = model.encoder(images)
    assert features.shape == (2, 3, TINY.feature_dim + 6)
    points = features[..., TINY.feature_dim:]
    assert points.abs().max() <= 1.0
    losses, reconstruction = model.losses(images, actions, states)
    assert reconstruction.shape == images.shape
    losses.loss.backward()
    assert model.encoder.spatial_softmax is not None
    assert model.encoder.spatial_softmax.log_temperature.grad is not None
    assert all(parameter.grad is not None
               for parameter in model.encoder.keypoint_net.parameters())  # type: ignore[union-attr]
    # without keypoints the encoder's weights are named as before the option existed
    plain = LatentModel(TINY).state_dict()
    assert not any('keypoint' in key or 'spatial_softmax' in key for key in plain)


def tiny_dataset(path: Path, sequences: int = 4, steps: int = 6) -> SequenceDataset:
    collect(CollectConfig(sequences=sequences, steps=steps, shard_size=2, seed=3),
            GEOMETRY_16, TIMING, path, progress=False)
    return SequenceDataset(path)


def test_collect_writes_the_documented_format(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path)
    assert len(list(tmp_path.glob('shard_*.npz'))) == 2
    assert dataset.images.shape == (4, 6, 16, 16, 3) and dataset.images.dtype == np.uint8
    assert dataset.actions.shape == (4, 6, 2) and np.abs(dataset.actions).max() <= 1.0
    assert dataset.geometry == GEOMETRY_16
    # the frames are the renderer's view of the recorded state
    renderer = ArmRenderer(GEOMETRY_16)
    frame = renderer.render(dataset.joint_positions[1, 2].astype(np.float64),
                            dataset.goal[1, 2].astype(np.float64))
    assert np.abs(frame.astype(int) - dataset.images[1, 2]).max() <= 1
    # the actions integrate to the next pose
    step = dataset.joint_positions[1, 3] - dataset.joint_positions[1, 2]
    wrapped = (step + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(wrapped, dataset.actions[1, 2] * TIMING.dt, atol=1e-5)
    images, actions, states = dataset.sample(np.random.default_rng(0), 3, 4)
    assert images.shape == (3, 4, 3, 16, 16) and actions.shape == (3, 3, 2)
    assert states.shape == (3, 4, 8) and float(images.max()) <= 1.0


def test_collect_dataset_loads_the_sequences_and_leaves_nothing_on_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    config = CollectConfig(sequences=3, steps=5, shard_size=2, seed=4)
    dataset = collect_dataset(config, GEOMETRY_16, TIMING)
    assert dataset.images.shape == (3, 5, 16, 16, 3)
    assert list(tmp_path.iterdir()) == []
    collect(config, GEOMETRY_16, TIMING, tmp_path / 'kept', progress=False)
    assert np.array_equal(SequenceDataset(tmp_path / 'kept').images, dataset.images)


def test_write_shard_rejects_bad_arrays(tmp_path: Path) -> None:
    images = np.zeros((1, 2, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match='actions'):
        write_shard(tmp_path / 's.npz', images, np.zeros((1, 3, 2)), np.zeros((1, 2, 2)),
                    np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), GEOMETRY_16, TIMING)


def test_missing_dataset_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        SequenceDataset(tmp_path)


def test_states_from_truth() -> None:
    states = states_from_truth(np.array([[np.pi / 2, 0.0]]), np.array([[0.1, 0.0]]),
                               np.array([[0.0, -0.2]]), 0.2)
    np.testing.assert_allclose(states, [[1, 0, 0, 1, 0.5, 0, 0, -1]], atol=1e-7)


def test_augmentation_starts_after_the_clean_updates() -> None:
    config = SlacTrainConfig(clean_updates=100)
    assert augment_schedule(config, 50).noise_probability == 0.0
    assert augment_schedule(config, 150).noise_probability == pytest.approx(
        0.5 * config.augment.noise_probability)
    assert augment_schedule(config, 500) == config.augment


def test_augment_keeps_shape_range_and_input() -> None:
    images = tiny_batch(8, 5)[0]
    before = images.clone()
    everything = AugmentConfig(1.0, 0.1, 1.0, 1.0, 8, 1.0)
    out = augment(images, everything, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and torch.equal(images, before)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, images)
    # the first frame is never blanked, so q(z1_1 | x_1) always sees something
    nothing = AugmentConfig(0.0, 0.1, 0.0, 0.0, 8, 1.0)
    blanked = augment(images, nothing, torch.Generator().manual_seed(0))
    assert torch.equal(blanked[:, 0], images[:, 0])


def make_checkpoint(path: Path, config: SlacModelConfig = TINY,
                    geometry: ArmGeometry = GEOMETRY_16) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(path, LatentModel(config), geometry, TIMING, {'updates': 0})


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LatentModel(TINY)
    path = save_checkpoint(tmp_path / 'c.pt', model, GEOMETRY_16, TIMING, {'updates': 7})
    loaded, geometry, _, payload = load_checkpoint(path, TINY, GEOMETRY_16, TIMING)
    assert geometry == GEOMETRY_16 and payload['metadata']['updates'] == 7
    assert loaded.config == TINY
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    # weights_only loading works, i.e. the file holds only plain types and tensors
    torch.load(path, weights_only=True)


def test_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / 'c.pt')
    with pytest.raises(ValueError, match='another model config.*z2_dim'):
        load_checkpoint(path, replace(TINY, z2_dim=6))
    with pytest.raises(ValueError, match='geometry'):
        load_checkpoint(path, TINY, GEOMETRY_16, replace(TIMING, dt=0.1))


def test_checkpoint_from_before_keypoints_still_loads(tmp_path: Path) -> None:
    # Checkpoints written before the option have no 'keypoints' in their model config.
    path = make_checkpoint(tmp_path / 'old.pt')
    payload = torch.load(path, weights_only=True)
    del payload['metadata']['model_config']['keypoints']
    torch.save(payload, path)
    model, _, _, _ = load_checkpoint(path, TINY, GEOMETRY_16, TIMING)
    assert model.config.keypoints == 0 and model.config == TINY
    # and it is refused, by name, where keypoints are expected
    with pytest.raises(ValueError, match='another model config.*keypoints'):
        load_checkpoint(path, replace(TINY, keypoints=4))


def test_checkpoint_with_keypoints_is_refused_without(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / 'c.pt', replace(TINY, keypoints=4))
    model, _, _, _ = load_checkpoint(path, replace(TINY, keypoints=4), GEOMETRY_16, TIMING)
    assert model.encoder.output_dim == TINY.feature_dim + 8
    with pytest.raises(ValueError, match=r'differs in keypoints\)'):
        load_checkpoint(path, TINY)


def test_probe_base_may_differ_in_state_weight_only(tmp_path: Path) -> None:
    elbo_only = replace(TINY, state_weight=0.0)
    path = make_checkpoint(tmp_path / 'elbo.pt', elbo_only)
    model = load_probe_base(path, TINY, GEOMETRY_16, TIMING)
    assert model.config == TINY  # the probe's weight, so its heads get a gradient
    with pytest.raises(ValueError, match='differs in z2_dim'):
        load_probe_base(path, replace(TINY, z2_dim=6), GEOMETRY_16, TIMING)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='nothing.pt'):
        load_checkpoint(tmp_path / 'nothing.pt')


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    torch.save({'weights': torch.zeros(1)}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match='not a SLAC checkpoint of a known format'):
        load_checkpoint(tmp_path / 'other.pt')


def slac_config(path: Path, **changes) -> PerceptionConfig:
    return PerceptionConfig(estimator='slac', checkpoint=str(path),
                            geometry=ArmGeometry(image_size=16, **changes))


def test_slac_backend_through_make_estimator(tmp_path: Path) -> None:
    estimator = make_estimator(slac_config(make_checkpoint(tmp_path / 'c.pt')))
    assert 'slac' in ESTIMATORS
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    first = estimator.estimate(frames[0])
    assert isinstance(first, Estimate)
    assert first.joint_positions.shape == (2,) and first.goal.shape == (2,)
    assert first.latent is not None and first.latent.shape == (TINY.z1_dim + TINY.z2_dim,)
    assert first.latent.dtype == np.float32
    second = estimator.estimate(frames[1], np.array([0.5, -0.5]))
    # the latent carries memory: the same frame after another history reads differently
    estimator.reset()
    again = estimator.estimate(frames[0])
    np.testing.assert_allclose(again.latent, first.latent, rtol=1e-6)
    assert not np.allclose(second.latent, first.latent)
    with pytest.raises(ValueError, match='uint8'):
        estimator.estimate(frames[0].astype(np.float32))  # type: ignore[arg-type]


def test_slac_backend_refuses_other_geometry(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / 'c.pt')
    with pytest.raises(ValueError, match='upper_arm_length_m'):
        make_estimator(slac_config(path, upper_arm_length_m=0.12, arena_size_m=0.5))
    with pytest.raises(ValueError, match='image_size'):
        make_estimator(PerceptionConfig(estimator='slac', checkpoint=str(path)))
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        make_estimator(slac_config(tmp_path / 'missing.pt'))


@pytest.mark.slow
def test_training_lowers_the_loss_and_the_filter_rides_out_a_blank_frame(
        tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = tmp_path / 'data'
    collect(CollectConfig(sequences=24, steps=12, shard_size=24, seed=5),
            ArmGeometry(image_size=32), TIMING, data, progress=False)
    model = SlacModelConfig(image_size=32, base_depth=4, feature_dim=32, z1_dim=8, z2_dim=32,
                            hidden_units=64)
    config = SlacTrainConfig(data=data, out=tmp_path / 'run', updates=300, batch_size=8,
                         sequence_length=6, learning_rate=2e-3, log_every=25,
                         checkpoint_every=150, warmup_updates=50, clean_updates=100,
                         model=model)
    train(config, progress=False)
    rows = [__import__('json').loads(line)
            for line in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
    assert rows[-1]['train/loss'] < 0.5 * rows[0]['train/loss']
    assert rows[-1]['train/state_rms_sincos'] < rows[0]['train/state_rms_sincos']
    for name in ('final.pt', 'checkpoint.pt', 'loss_curves.png', 'reconstructions.png'):
        assert (tmp_path / 'run' / name).is_file(), name
    # resuming a finished run does nothing more and keeps its step count
    more = train(replace(config, updates=300), progress=False)
    assert more['frames_seen'] == 300 * 8 * 6
    # the trained run's checkpoint drives the slac backend
    estimator = make_estimator(PerceptionConfig(
        estimator='slac', checkpoint=str(tmp_path / 'run' / 'final.pt'),
        geometry=ArmGeometry(image_size=32)))
    frame = SequenceDataset(data).images[0, 0]
    assert np.all(np.isfinite(estimator.estimate(frame).joint_positions))


SHIPPED = Path(__file__).resolve().parent.parent / 'checkpoints' / 'slac_reacher.pt'


@pytest.mark.skipif(not SHIPPED.is_file(), reason='no shipped checkpoint in this checkout')
def test_shipped_filter_rides_out_blank_frames(tmp_path: Path) -> None:
    # Three black frames mid-sequence: the filter predicts through them with
    # p(z_t+1 | z_t, a_t) instead of losing the arm (issue 4: "estimates stay good when a
    # frame is ... briefly occluded").
    collect(CollectConfig(sequences=6, steps=24, shard_size=6, seed=77), ArmGeometry(), TIMING,
            tmp_path, progress=False)
    dataset = SequenceDataset(tmp_path)
    estimator = make_estimator(PerceptionConfig(estimator='slac', checkpoint=str(SHIPPED)))
    blank_errors, clean_errors = [], []
    for index in range(len(dataset)):
        estimator.reset()
        for step in range(dataset.steps):
            blank = 12 <= step < 15
            frame = np.zeros_like(dataset.images[index, step]) if blank else \
                dataset.images[index, step]
            command = None if step == 0 else dataset.actions[index, step - 1].astype(float)
            estimate = estimator.estimate(frame, command)
            error = np.abs((estimate.joint_positions - dataset.joint_positions[index, step]
                            + np.pi) % (2 * np.pi) - np.pi)
            (blank_errors if blank else clean_errors).append(np.degrees(error).mean())
    assert np.mean(clean_errors) < 5.0
    assert np.mean(blank_errors) < 10.0


# The geometry in files: one ArmGeometry + Timing, in the flat dict of geometry_to_dict ----

OLD_GEOMETRY_KEYS = {'image_size', 'arena_size_m', 'upper_arm_length_m', 'forearm_length_m',
                     'goal_size_m', 'dt', 'max_joint_velocity'}
"""What files written before ArmGeometry (SequenceGeometry's fields) hold."""


@pytest.mark.skipif(not SHIPPED.is_file(), reason='no shipped checkpoint in this checkout')
def test_the_shipped_checkpoint_loads_with_its_confidence() -> None:
    payload = torch.load(SHIPPED, weights_only=True)
    assert payload['metadata']['format'] == 'reacher-slac-2' and 'confidence' in payload
    # the defaults (config/geometry.yaml, dt 0.05 s) are what it was trained for
    model, geometry, timing, _ = load_checkpoint(SHIPPED, expected_geometry=ArmGeometry(),
                                                 expected_timing=Timing(dt=0.05))
    assert geometry == ArmGeometry() and timing == Timing(dt=0.05)
    assert model.config.keypoints == 16


def test_checkpoint_geometry_is_the_flat_dict(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / 'c.pt')
    stored = torch.load(path, weights_only=True)['metadata']['geometry']
    assert stored == geometry_to_dict(GEOMETRY_16, TIMING)
    assert OLD_GEOMETRY_KEYS < set(stored)
    # a file from before ArmGeometry: the old keys only; the rest read as the defaults
    payload = torch.load(path, weights_only=True)
    payload['metadata']['geometry'] = {key: stored[key] for key in OLD_GEOMETRY_KEYS}
    torch.save(payload, tmp_path / 'old.pt')
    _, geometry, timing, _ = load_checkpoint(tmp_path / 'old.pt', TINY, GEOMETRY_16, TIMING)
    assert (geometry, timing) == (GEOMETRY_16, TIMING)
    with pytest.raises(ValueError, match=r'another geometry \(arena_size_m: checkpoint 0.4'):
        load_checkpoint(path, TINY, replace(GEOMETRY_16, arena_size_m=0.5))


def test_shards_of_the_old_format_load(tmp_path: Path) -> None:
    arrays = [np.zeros((1, 2, 2), np.float32)] * 4
    path = write_shard(tmp_path / 'shard_0000.npz', np.zeros((1, 2, 16, 16, 3), np.uint8),
                       *arrays, GEOMETRY_16, replace(TIMING, dt=0.1), seed=4)
    with np.load(path) as shard:
        contents = dict(shard)
    metadata = json.loads(str(contents['metadata']))
    assert metadata == {'geometry': geometry_to_dict(GEOMETRY_16, replace(TIMING, dt=0.1)),
                        'seed': 4}
    metadata['geometry'] = {key: metadata['geometry'][key] for key in OLD_GEOMETRY_KEYS}
    contents['metadata'] = np.array(json.dumps(metadata))
    np.savez_compressed(path, **contents)
    dataset = SequenceDataset(tmp_path)
    assert dataset.geometry == GEOMETRY_16 and dataset.timing == Timing(dt=0.1)


def test_shards_of_two_geometries_are_refused(tmp_path: Path) -> None:
    arrays = [np.zeros((1, 2, 2), np.float32)] * 4
    images = np.zeros((1, 2, 16, 16, 3), np.uint8)
    write_shard(tmp_path / 'shard_0000.npz', images, *arrays, GEOMETRY_16, TIMING)
    write_shard(tmp_path / 'shard_0001.npz', images, *arrays,
                replace(GEOMETRY_16, goal_size_m=0.05), replace(TIMING, dt=0.1))
    with pytest.raises(ValueError, match=r'goal_size_m 0.04 vs 0.05; dt 0.05 vs 0.1'):
        SequenceDataset(tmp_path)


# The command line ------------------------------------------------------------------------

def test_commands_load_no_torch() -> None:
    code = ('import sys, reacher_perception.training.commands as c\n'
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'gymnasium', 'stable_baselines3')]\n"
            'print(sorted(c.COMMANDS), heavy)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ("['calibrate-symmetries', 'collect', 'confidence', 'eval', "
                                     "'train'] []")


def test_every_command_argument_is_documented_and_frozen() -> None:
    for name, (args_type, runner) in COMMANDS.items():
        assert dataclasses.is_dataclass(args_type) and callable(runner), name
        assert args_type.__dataclass_params__.frozen, name  # type: ignore[attr-defined]
        docs = field_docs(args_type)
        for item in dataclasses.fields(args_type):
            assert docs.get(item.name), f'{name}: {item.name} has no docstring'


def test_perception_collect_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert reacher_main(['perception', 'collect', '--out', str(tmp_path),
                         '--collect.sequences', '2', '--collect.steps', '3',
                         '--geometry.image-size', '16', '--timing.dt', '0.1']) == 0
    assert json.loads(capsys.readouterr().out)['sequences'] == 2
    dataset = SequenceDataset(tmp_path)
    assert dataset.geometry == GEOMETRY_16 and dataset.timing == Timing(dt=0.1)
    assert reacher_main(['perception', 'eval', '--checkpoint', str(tmp_path / 'none.pt'),
                         '--data', str(tmp_path)]) == 2
    assert 'none.pt does not exist' in capsys.readouterr().err
