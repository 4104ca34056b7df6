"""SLAC across scenes: the scene mix of the collector, clean targets, the confidence."""

from dataclasses import replace
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.kinematics import forward_kinematics
from reacher_perception.background import BackgroundNormalizer
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_perception.slac.checkpoint import (
    default_slac_checkpoint,
    held_out_families,
    load_checkpoint,
    load_confidence,
    save_checkpoint,
)
from reacher_perception.slac.confidence import SIGNAL_NAMES, signals, SlacConfidence
from reacher_perception.slac.config import SlacModelConfig, states_from_truth
from reacher_perception.slac.latent import LatentModel
from reacher_perception.training.augment import repaint
from reacher_perception.training.collect import collect, draw_scene
from reacher_perception.training.confidence import encode, fit_confidence
from reacher_perception.training.config import CollectConfig, SlacTrainConfig
from reacher_perception.training.dataset import POLICIES, SequenceDataset
from reacher_perception.training.train import mix_scenes, scene_share, train
from reacher_sim.camera import CameraModel
from reacher_sim.render import ArmRenderer, RenderStyle
from reacher_sim.scene import SCENE_FAMILIES, SceneConfig

TINY = SlacModelConfig(image_size=16, base_depth=4, feature_dim=8, z1_dim=3, z2_dim=5,
                       hidden_units=16, keypoints=2)
GEOMETRY_16 = ArmGeometry(image_size=16)
TIMING = Timing()
MIX = dict(scene=SceneConfig(name='randomized'), held_out=('texture', 'jpeg'),
           clean_fraction=0.2, single_family_fraction=0.3)


def test_held_out_families_are_never_drawn() -> None:
    config = CollectConfig(**MIX)
    rng = np.random.default_rng(0)
    scenes = [draw_scene(config, rng, ()) for _ in range(400)]
    assert not any({'texture', 'jpeg'} & set(scene.families) for scene in scenes)
    assert all(scene.texture_amplitude == 0.0 and scene.jpeg_quality == 100
               for scene in scenes)
    kinds = [len(scene.families) for scene in scenes]
    # about 20% clean, 30% one family alone, the rest all six trained families
    assert 0.12 < kinds.count(0) / 400 < 0.28
    assert 0.22 < kinds.count(1) / 400 < 0.38
    assert set(kinds) == {0, 1, 6}


def test_without_a_mix_the_scene_draw_is_unchanged() -> None:
    config = CollectConfig(scene=SceneConfig(name='randomized'))
    drawn = draw_scene(config, np.random.default_rng(5), ((0, 200, 0),))
    assert drawn == config.scene.sample(np.random.default_rng(5), ((0, 200, 0),))


def test_bad_mix_is_named() -> None:
    with pytest.raises(ValueError, match='held_out'):
        CollectConfig(held_out=('marble',))
    with pytest.raises(ValueError, match='single_family_fraction'):
        CollectConfig(clean_fraction=0.6, single_family_fraction=0.6)


def scene_dataset(path: Path, sequences: int = 4, steps: int = 6) -> SequenceDataset:
    collect(CollectConfig(sequences=sequences, steps=steps, shard_size=2, seed=3, **MIX),
            GEOMETRY_16, TIMING, path, progress=False)
    return SequenceDataset(path)


def test_collect_in_scenes_stores_the_clean_frames(tmp_path: Path) -> None:
    dataset = scene_dataset(tmp_path)
    assert dataset.clean_images.shape == dataset.images.shape
    renderer = ArmRenderer(GEOMETRY_16)
    for index in range(len(dataset)):
        frame = renderer.render(dataset.joint_positions[index, 3].astype(np.float64),
                                dataset.goal[index, 3].astype(np.float64))
        assert np.abs(frame.astype(int) - dataset.clean_images[index, 3]).max() <= 1
    # some sequences are seen in another scene than the clean one
    assert (dataset.images != dataset.clean_images).any()
    scenes, clean, actions, states = dataset.sample_with_clean(np.random.default_rng(0), 3, 4)
    assert scenes.shape == clean.shape == (3, 4, 3, 16, 16)
    assert actions.shape == (3, 3, 2) and states.shape == (3, 4, 8)
    # each sequence's camera calibration: the nominal camera, or one nudged within the
    # camera family's ranges (P stays the nominal camera)
    nominal = CameraModel.from_geometry(GEOMETRY_16).calibration()
    scene = MIX['scene']
    nudged = 0
    for index in range(len(dataset)):
        calibration = dataset.calibration(index)
        np.testing.assert_array_equal(calibration.p, nominal.p)
        nudged += not calibration.rectified
        shift = calibration.k[:2, 2] - nominal.k[:2, 2]
        roll = np.degrees(np.arctan2(calibration.r[1, 0], calibration.r[0, 0]))
        scale = calibration.k[0, 0] / nominal.k[0, 0]
        assert np.abs(shift).max() <= scene.shift_max_px + 1e-9
        assert abs(roll) <= scene.roll_max_deg + 1e-9
        assert abs(scale - 1.0) <= scene.scale_max + 1e-9
    assert nudged > 0


def test_a_dataset_of_several_folders_keeps_their_order(tmp_path: Path) -> None:
    first = scene_dataset(tmp_path / 'a', sequences=2, steps=4)
    clean = collect(CollectConfig(sequences=3, steps=4, shard_size=2, seed=5), GEOMETRY_16,
                    TIMING, tmp_path / 'b', progress=False)
    assert clean
    both = SequenceDataset([tmp_path / 'a', tmp_path / 'b'])
    assert len(both) == 5
    np.testing.assert_array_equal(both.images[:2], first.images)
    np.testing.assert_array_equal(both.camera_k[:2], first.camera_k)
    # shards without calibrations (collected clean) read as the nominal camera
    assert all(both.calibration(index).rectified for index in (2, 3, 4))
    with pytest.raises(FileNotFoundError, match='nowhere'):
        SequenceDataset([tmp_path / 'a', tmp_path / 'nowhere'])


def test_scenes_ramp_in_after_the_clean_updates() -> None:
    config = SlacTrainConfig(clean_updates=100)
    assert scene_share(config, 50) == 0.0
    assert scene_share(config, 150) == pytest.approx(0.5)
    assert scene_share(config, 400) == 1.0
    generator = torch.Generator().manual_seed(0)
    scenes, clean = torch.ones(64, 2, 3, 4, 4), torch.zeros(64, 2, 3, 4, 4)
    assert torch.equal(mix_scenes(scenes, clean, 0.0, generator), clean)
    assert torch.equal(mix_scenes(scenes, clean, 1.0, generator), scenes)
    half = mix_scenes(scenes, clean, 0.5, generator)[:, 0, 0, 0, 0]
    assert 10 < int(half.sum()) < 54


def test_training_can_show_the_encoder_repainted_frames(tmp_path: Path) -> None:
    dataset = scene_dataset(tmp_path / 'data')
    normalize = BackgroundNormalizer(16, RenderStyle().background)
    scenes, _, _, _ = dataset.sample_with_clean(np.random.default_rng(0), 4, 6)
    # each frame is repainted as the estimator does it, rounded to uint8 first
    repainted = repaint(scenes, normalize)
    pixels = scenes.mul(255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()
    expected = np.stack([[normalize(frame) for frame in sequence] for sequence in pixels])
    np.testing.assert_array_equal(
        repainted.mul(255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy(), expected)
    # a run with the option trains and saves (its config names it)
    config = SlacTrainConfig(data=tmp_path / 'data', out=tmp_path / 'run', updates=4,
                             batch_size=2, sequence_length=3, warmup_updates=1,
                             clean_updates=1, log_every=2, checkpoint_every=4, model=TINY,
                             normalize_background=True)
    metrics = train(config, progress=False)
    assert math.isfinite(metrics['train/loss'])
    stored = load_checkpoint(tmp_path / 'run' / 'final.pt').payload['metadata']
    assert stored['train_config']['normalize_background'] is True


def test_a_checkpoint_records_the_scene_families_its_training_showed(tmp_path: Path) -> None:
    # the data records what its scenes could show; a fine-tuned model adds its start's
    scene_dataset(tmp_path / 'scenes')
    collect(CollectConfig(sequences=2, steps=6, shard_size=2, seed=5), GEOMETRY_16, TIMING,
            tmp_path / 'clean', progress=False)
    assert SequenceDataset(tmp_path / 'clean').scene_families == ()
    trained = ('background', 'blur', 'camera', 'distractors', 'lighting', 'noise')
    assert SequenceDataset(tmp_path / 'scenes').scene_families == trained
    base = SlacTrainConfig(data=tmp_path / 'clean', out=tmp_path / 'run', updates=2,
                           batch_size=2, sequence_length=3, warmup_updates=1,
                           clean_updates=0, log_every=2, checkpoint_every=2, model=TINY)
    train(base, progress=False)
    clean_meta = load_checkpoint(tmp_path / 'run' / 'final.pt').payload['metadata']
    assert clean_meta['scene_families'] == []
    assert held_out_families(clean_meta) == SCENE_FAMILIES
    tuned = replace(base, data=tmp_path / 'scenes', out=tmp_path / 'tuned',
                    init_from=tmp_path / 'run' / 'final.pt')
    train(tuned, progress=False)
    metadata = load_checkpoint(tmp_path / 'tuned' / 'final.pt').payload['metadata']
    assert metadata['scene_families'] == list(trained)
    assert held_out_families(metadata) == ('texture', 'jpeg')
    # a start that does not record it (an older checkpoint) leaves it unknown
    save_checkpoint(tmp_path / 'old.pt', LatentModel(TINY), GEOMETRY_16, TIMING)
    train(replace(tuned, out=tmp_path / 'from_old', init_from=tmp_path / 'old.pt'),
          progress=False)
    unknown = load_checkpoint(tmp_path / 'from_old' / 'final.pt').payload['metadata']
    assert 'scene_families' not in unknown and held_out_families(unknown) is None
    # the shipped model was trained with blur held out
    shipped = load_checkpoint(default_slac_checkpoint()).payload['metadata']
    assert held_out_families(shipped) == ('blur',)


def test_signals_of_a_consistent_reading_are_zero() -> None:
    geometry = ArmGeometry()
    joints = np.array([[0.3, -1.2], [2.0, 0.4]])
    _, tip = forward_kinematics(joints, geometry.upper_arm_length_m, geometry.forearm_length_m)
    goal = np.array([[0.05, 0.1], [-0.08, 0.02]])
    state = torch.from_numpy(states_from_truth(joints, tip, goal, geometry.reach_m))
    values = signals(state.expand(4, -1, -1), state, torch.zeros(2), geometry.reach_m,
                     geometry.upper_arm_length_m, geometry.forearm_length_m)
    assert values.shape == (2, len(SIGNAL_NAMES))
    assert float(values.abs().max()) < 1e-3
    # a member that reads the shoulder 20 degrees off: spread and gap grow, in degrees
    members = state.expand(4, -1, -1).clone()
    turned = joints.copy()
    turned[:, 0] += math.radians(20)
    members[0, :, :4] = torch.from_numpy(states_from_truth(turned, tip, goal,
                                                           geometry.reach_m))[:, :4]
    values = torch.expm1(signals(members, state, torch.zeros(2), geometry.reach_m,
                                 geometry.upper_arm_length_m, geometry.forearm_length_m))
    spread, gap = values[:, SIGNAL_NAMES.index('spread_joint_deg')], values[:, 2]
    assert torch.allclose(spread, torch.full((2,), 20 * math.sqrt(3) / 4), atol=0.2)
    assert torch.allclose(gap, torch.full((2,), 5.0), atol=0.2)


def test_fitted_confidence_round_trips_into_the_estimator(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = scene_dataset(tmp_path / 'train', sequences=6, steps=8)
    scene_dataset(tmp_path / 'calibration', sequences=4, steps=8)
    model = LatentModel(TINY)
    trained = save_checkpoint(tmp_path / 'final.pt', model, data.geometry, data.timing,
                              {'updates': 0})
    with pytest.raises(ValueError, match='blend=1.5 must be in'):
        fit_confidence(trained, tmp_path / 'train', tmp_path / 'calibration',
                       tmp_path / 'never.pt', blend=1.5)
    assert not (tmp_path / 'never.pt').exists()
    # several folders: the heads see the first ``sequences`` of each
    report = fit_confidence(trained, [tmp_path / 'train', tmp_path / 'calibration'],
                            [tmp_path / 'calibration', tmp_path / 'train'],
                            tmp_path / 'two.pt', sequences=5, members=2, hidden=4, updates=2)
    assert report['args']['sequences'] == [5, 4]
    report = fit_confidence(trained, [tmp_path / 'train', tmp_path / 'calibration'],
                            tmp_path / 'calibration', tmp_path / 'two.pt', sequences=(2, 3),
                            members=2, hidden=4, updates=2)
    assert report['args']['sequences'] == [2, 3]
    with pytest.raises(ValueError, match='one per data folder'):
        fit_confidence(trained, [tmp_path / 'train'], tmp_path / 'calibration',
                       tmp_path / 'never.pt', sequences=(2, 3))
    report = fit_confidence(trained, tmp_path / 'train', tmp_path / 'calibration',
                            tmp_path / 'confident.pt', members=3, hidden=8, updates=20,
                            blend=0.25)
    assert 0.0 <= report['calibration']['confident_rate'] <= 1.0
    checkpoint = load_checkpoint(tmp_path / 'confident.pt')
    assert checkpoint.payload['metadata']['format'] == 'reacher-slac-2'
    assert checkpoint.payload['metadata']['confidence_fit']['args']['members'] == 3
    # the model itself is unchanged
    for key, value in model.state_dict().items():
        assert torch.equal(checkpoint.model.state_dict()[key], value)
    confidence = load_confidence(checkpoint)
    assert isinstance(confidence, SlacConfidence) and confidence.frame_heads.members == 3
    assert float(confidence.blend) == 0.25
    estimator = make_estimator(PerceptionConfig(estimator='slac', geometry=GEOMETRY_16,
                                                checkpoint=str(tmp_path / 'confident.pt')))
    for step in range(3):
        estimate = estimator.estimate(data.images[0, step],
                                      None if step == 0 else data.actions[0, step - 1])
        assert 0.0 <= estimate.confidence <= 1.0
        assert estimate.joint_std_rad > 0 and estimate.fingertip_std_m > 0
        assert estimate.goal_std_m > 0


def test_the_confidence_can_be_fitted_on_repainted_frames(tmp_path: Path) -> None:
    """--normalize-background: the fit reads each frame as the estimator does."""
    torch.manual_seed(0)
    data = scene_dataset(tmp_path / 'train', sequences=3, steps=4)
    model = LatentModel(TINY).eval()
    normalize = BackgroundNormalizer(GEOMETRY_16.image_size, RenderStyle().background)
    repainted = np.stack([[normalize(frame) for frame in sequence] for sequence in data.images])
    assert not np.array_equal(repainted, data.images)  # the scene data has new tables
    assert torch.allclose(encode(model, data.images, normalize=normalize),
                          encode(model, repainted))
    trained = save_checkpoint(tmp_path / 'final.pt', model, data.geometry, data.timing,
                              {'updates': 0})
    report = fit_confidence(trained, tmp_path / 'train', tmp_path / 'train',
                            tmp_path / 'confident.pt', members=2, hidden=4, updates=2,
                            normalize_background=True)
    assert report['args']['normalize_background'] is True


def test_the_estimate_blends_the_filter_with_the_frame_heads_and_old_fits_do_not(
        tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LatentModel(TINY).eval()
    confidence = SlacConfidence(TINY.encoded_dim, TINY.state_dim, members=2, hidden=4)
    reach = GEOMETRY_16.reach_m
    filtered = torch.randn(3, TINY.state_dim)
    frames = filtered + 0.01 * torch.randn(2, 3, TINY.state_dim)  # heads near the filter
    assert torch.equal(confidence.read_out(filtered, frames, reach), filtered)  # blend 0
    confidence.blend.fill_(0.5)
    assert torch.allclose(confidence.read_out(filtered, frames, reach),
                          (filtered + frames.mean(0)) / 2)
    # heads that read the goal 30 mm off (a blank frame, say): the goal is the filter's
    far = frames.clone()
    far[:, :, 6] += 0.03 / reach
    read = confidence.read_out(filtered, far, reach)
    assert torch.equal(read[:, 6:8], filtered[:, 6:8])
    assert torch.allclose(read[:, :6], (filtered[:, :6] + far[:, :, :6].mean(0)) / 2)
    path = save_checkpoint(tmp_path / 'c.pt', model, GEOMETRY_16, TIMING,
                           confidence=confidence.eval())
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    # The frame as it comes (a noise frame's "table" would be repainted otherwise), one
    # filter.
    estimator = make_estimator(PerceptionConfig(estimator='slac', geometry=GEOMETRY_16,
                                                checkpoint=str(path), test_time_symmetries=1,
                                                normalize_background=False))
    blended = estimator.estimate(image).joint_positions
    with torch.no_grad():
        feature = model.encoder(torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255)
        state = model.state(*model.filter_first(feature))
        heads = confidence.frame_heads(feature)
    expected = confidence.read_out(state, heads, GEOMETRY_16.reach_m)[0].numpy()
    np.testing.assert_allclose(blended, np.arctan2(expected[[0, 2]], expected[[1, 3]]),
                               atol=1e-5)
    # a fit stored before the blend existed publishes the filter alone
    payload = torch.load(path, weights_only=True)
    del payload['confidence']['blend']
    torch.save(payload, path)
    loaded = load_confidence(load_checkpoint(path))
    assert loaded is not None and float(loaded.blend) == 0.0
    estimator = make_estimator(PerceptionConfig(estimator='slac', geometry=GEOMETRY_16,
                                                checkpoint=str(path), test_time_symmetries=1,
                                                normalize_background=False))
    alone = state[0].numpy()
    np.testing.assert_allclose(estimator.estimate(image).joint_positions,
                               np.arctan2(alone[[0, 2]], alone[[1, 3]]), atol=1e-5)


def test_a_checkpoint_of_format_1_loads_without_confidence(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / 'c.pt', LatentModel(TINY), GEOMETRY_16, TIMING)
    payload = torch.load(path, weights_only=True)
    payload['metadata']['format'] = 'reacher-slac-1'
    torch.save(payload, path)
    assert load_confidence(load_checkpoint(path)) is None
    estimator = make_estimator(PerceptionConfig(estimator='slac', geometry=GEOMETRY_16,
                                                checkpoint=str(path)))
    estimate = estimator.estimate(np.zeros((16, 16, 3), np.uint8))
    assert math.isnan(estimate.confidence) and math.isnan(estimate.goal_std_m)
    payload['metadata']['format'] = 'reacher-slac-0'
    torch.save(payload, path)
    with pytest.raises(ValueError, match="format 'reacher-slac-0'"):
        load_checkpoint(path)


def test_a_damaged_confidence_is_named(tmp_path: Path) -> None:
    confidence = SlacConfidence(TINY.encoded_dim, TINY.state_dim, members=2, hidden=4)
    path = save_checkpoint(tmp_path / 'c.pt', LatentModel(TINY), GEOMETRY_16, TIMING,
                           confidence=confidence)
    payload = torch.load(path, weights_only=True)
    payload['metadata']['confidence_config'] = {'members': 3, 'hidden': 4}
    torch.save(payload, path)
    with pytest.raises(ValueError, match='confidence of the SLAC checkpoint is damaged'):
        load_confidence(load_checkpoint(path))



SHIPPED = Path(__file__).resolve().parent.parent / 'checkpoints' / 'slac_reacher.pt'


@pytest.mark.skipif(not SHIPPED.is_file(), reason='no shipped checkpoint in this checkout')
def test_shipped_confidence_falls_when_the_arm_is_covered(tmp_path: Path) -> None:
    collect(CollectConfig(sequences=4, steps=32, shard_size=4, seed=78), ArmGeometry(), TIMING,
            tmp_path, progress=False)
    dataset = SequenceDataset(tmp_path)
    estimator = make_estimator(PerceptionConfig(estimator='slac', checkpoint=str(SHIPPED)))
    clean, covered = [], []
    for index in range(len(dataset)):
        estimator.reset()
        for step in range(dataset.steps):
            frame = dataset.images[index, step].copy()
            hidden = step >= 20
            if hidden:  # a grey sheet over the middle of the table, arm and hub included
                frame[12:52, 12:52] = 128
            command = None if step == 0 else dataset.actions[index, step - 1].astype(float)
            estimate = estimator.estimate(frame, command)
            if hidden:
                covered.append(estimate.confidence)
            elif step >= 10:  # the filter's first frames are read less surely
                clean.append(estimate.confidence)
    assert np.median(clean) >= 0.5
    # nearly every covered frame is marked unsure (the shipped model: 47 of 48, the one
    # left at 0.51 while 13 deg off: the confidence is not perfect, docs/slac.md)
    assert np.mean(np.array(covered) < 0.5) >= 0.95
    assert np.median(covered) < 0.2 < np.median(clean) - 0.3


@pytest.mark.skipif(not SHIPPED.is_file(), reason='no shipped checkpoint in this checkout')
def test_the_all_slac_loop_drives_collected_sequences(tmp_path: Path) -> None:
    # slac_fraction 1: every sequence acted by the shipped filter + slac controller.
    collect(CollectConfig(sequences=2, steps=24, shard_size=2, seed=5, slac_fraction=1.0),
            ArmGeometry(), TIMING, tmp_path, progress=False)
    with np.load(tmp_path / 'shard_0000.npz') as shard:
        policy, actions, joints = shard['policy'], shard['actions'], shard['joint_positions']
    assert [POLICIES[index] for index in policy] == ['slac', 'slac']
    assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0)
    # The actor moves the arm: the joints change over each sequence.
    assert np.all(np.abs(joints[:, -1] - joints[:, 0]).max(axis=1) > 0.1)
    # Without it, the same seed draws the same numbers as before the option existed.
    other = tmp_path / 'ik'
    collect(CollectConfig(sequences=2, steps=24, shard_size=2, seed=5), ArmGeometry(), TIMING,
            other, progress=False)
    with np.load(other / 'shard_0000.npz') as shard:
        assert 'slac' not in [POLICIES[index] for index in shard['policy']]
