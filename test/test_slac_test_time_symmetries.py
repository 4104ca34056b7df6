"""The slac estimator's test-time symmetries: filters on mapped frames, read back and averaged."""

import json
import math
from pathlib import Path
import subprocess

import numpy as np
import pytest
import torch

from reacher_common.config_tools import FieldError
from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.kinematics import wrap_angle
from reacher_common.symmetry import (
    action_signs,
    inverse,
    matrices,
    transform_frame,
    transform_joints,
)
from reacher_perception.config import PerceptionConfig, TEST_TIME_SYMMETRIES
from reacher_perception.estimator import make_estimator
from reacher_perception.slac.checkpoint import (
    default_slac_checkpoint,
    load_checkpoint,
    load_confidence,
)
from reacher_perception.slac.confidence import SYMMETRY_COUNTS, SYMMETRY_SIGNAL_NAMES
from reacher_perception.training.collect import collect
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset

from ros_support import executable

GEOMETRY = ArmGeometry()


def clean_frames(path: Path) -> SequenceDataset:
    collect(CollectConfig(sequences=2, steps=12, shard_size=2, seed=21), GEOMETRY, Timing(),
            path, progress=False)
    return SequenceDataset(path)


def test_the_estimate_is_the_mean_of_the_filters_read_back(tmp_path: Path) -> None:
    # Eight filters stepped together read what eight lone filters read on the mapped
    # frames with the mapped commands, mapped back by the inverse elements and averaged;
    # the latent is the identity's. Frames as they come, so the lone filters see exactly
    # the ensemble's frames (the repainting is done once, before mapping).
    dataset = clean_frames(tmp_path / 'data')
    config = PerceptionConfig(estimator='slac', geometry=GEOMETRY, normalize_background=False)
    ensemble = make_estimator(config)
    row = SYMMETRY_COUNTS.index(config.test_time_symmetries)
    weight = ensemble.confidence.symmetry_weight[row].double().numpy()
    bias = float(ensemble.confidence.symmetry_bias[row])
    assert np.isfinite(weight).all() and math.isfinite(bias)  # the shipped file has one
    elements = TEST_TIME_SYMMETRIES[config.test_time_symmetries]
    assert elements == tuple(range(8))
    alone = [make_estimator(PerceptionConfig(estimator='slac', geometry=GEOMETRY,
                                             normalize_background=False,
                                             test_time_symmetries=1))
             for _ in elements]
    signs = action_signs(elements)
    mats = matrices(inverse(elements))
    errors = []
    for index in range(len(dataset)):
        ensemble.reset()
        for estimator in alone:
            estimator.reset()
        for step in range(dataset.steps):
            frame = dataset.images[index, step]
            command = (None if step == 0
                       else dataset.actions[index, step - 1] * GEOMETRY.max_joint_velocity)
            got = ensemble.estimate(frame, command)
            readings = [estimator.estimate(transform_frame(frame, element),
                                           None if command is None else sign * command)
                        for estimator, element, sign in zip(alone, elements, signs,
                                                            strict=True)]
            joints = np.array([transform_joints(reading.joint_positions, int(back))
                               for reading, back in zip(readings, inverse(elements),
                                                        strict=True)])
            mean = np.arctan2(np.sin(joints).mean(0), np.cos(joints).mean(0))
            goal = np.mean([m @ reading.goal for m, reading in zip(mats, readings,
                                                                    strict=True)], axis=0)
            np.testing.assert_allclose(wrap_angle(got.joint_positions - mean), 0, atol=1e-4)
            np.testing.assert_allclose(got.goal, goal, atol=1e-5)
            np.testing.assert_allclose(got.latent, readings[0].latent, atol=1e-5)
            # the confidence: the symmetry calibration of the filters' mean logit and
            # their RMS deviations from the average (no redraw cap: frames not repainted)
            scores = np.clip([reading.confidence for reading in readings], 1e-5, 1 - 1e-5)
            deviation = np.degrees(np.sqrt((wrap_angle(joints - mean) ** 2).mean(0))).max()
            goals = np.array([m @ reading.goal for m, reading in zip(mats, readings,
                                                                      strict=True)])
            spread = 1e3 * np.sqrt(((goals - goal) ** 2).sum(1).mean())
            signals = [np.log(scores / (1 - scores)).mean(), math.log1p(deviation),
                       math.log1p(spread)]
            assert got.confidence == pytest.approx(
                1 / (1 + math.exp(-(weight @ signals + bias))), abs=1e-4)
            assert math.isfinite(got.goal_std_m)
            errors.append(np.abs(wrap_angle(got.joint_positions
                                            - dataset.joint_positions[index, step])).max())
    # each mapped filter reads its mapped arm: the mean is right
    assert np.degrees(np.median(errors)) < 3.0


def test_a_bad_count_is_refused_by_name() -> None:
    with pytest.raises(FieldError, match='test_time_symmetries'):
        PerceptionConfig(test_time_symmetries=3)


def without_symmetry_calibration(path: Path) -> Path:
    """The shipped checkpoint as written before the symmetry calibration existed."""
    payload = torch.load(default_slac_checkpoint(), weights_only=True)
    for name in ('symmetry_weight', 'symmetry_bias'):
        payload['confidence'].pop(name, None)
    payload['metadata'].pop('symmetry_fit', None)
    torch.save(payload, path)
    return path


def test_without_a_symmetry_calibration_the_confidence_is_the_filters_mean(
        tmp_path: Path) -> None:
    dataset = clean_frames(tmp_path / 'data')
    older = without_symmetry_calibration(tmp_path / 'older.pt')
    estimator = make_estimator(PerceptionConfig(estimator='slac', geometry=GEOMETRY,
                                                checkpoint=str(older),
                                                normalize_background=False))
    assert not torch.isfinite(estimator.confidence.symmetry_bias).any()
    for step in range(4):
        estimate = estimator.estimate(dataset.images[0, step])
        assert estimator.last_readings is not None
        assert estimate.confidence == pytest.approx(estimator.last_readings[2].mean(),
                                                    abs=1e-6)


def run_reacher(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([executable('reacher'), *args], capture_output=True, text=True,
                          timeout=600)


def test_the_symmetry_calibration_is_fitted_by_the_command_line(tmp_path: Path) -> None:
    # A real fit on real sequences (few: the figures are not the point), through the CLI,
    # on the shipped checkpoint with its calibration taken out.
    clean_frames(tmp_path / 'calibration')
    older = without_symmetry_calibration(tmp_path / 'older.pt')
    out = tmp_path / 'symmetric.pt'
    result = run_reacher('perception', 'calibrate-symmetries', '--checkpoint', str(older),
                         '--calibration', str(tmp_path / 'calibration'), '--out', str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['frames'] == 2 * 12 and sorted(report['counts'], key=int) == ['2', '4', '8']
    fitted = load_checkpoint(out)
    assert fitted.payload['metadata']['symmetry_fit']['args']['wrong_weight'] == 30.0
    confidence = load_confidence(fitted)
    assert confidence is not None
    weights = confidence.symmetry_weight.numpy()
    assert np.isfinite(weights).all() and torch.isfinite(confidence.symmetry_bias).all()
    # the filters' mean logit only raises the confidence, their disagreement only lowers it
    assert (weights[:, SYMMETRY_SIGNAL_NAMES.index('mean_logit')] >= 0).all()
    assert (weights[:, 1:] <= 0).all()
    # the model, and the rest of the confidence, are the input's
    before = load_checkpoint(older)
    for key, value in before.model.state_dict().items():
        assert torch.equal(fitted.model.state_dict()[key], value)
    assert torch.equal(confidence.logistic_weight, load_confidence(before).logistic_weight)
    # a checkpoint without a confidence is refused in one line, naming it, and nothing
    # is written
    bare = torch.load(older, weights_only=True)
    del bare['confidence']
    torch.save(bare, tmp_path / 'bare.pt')
    refused = run_reacher('perception', 'calibrate-symmetries', '--checkpoint',
                          str(tmp_path / 'bare.pt'), '--calibration',
                          str(tmp_path / 'calibration'), '--out', str(tmp_path / 'never.pt'))
    assert refused.returncode == 2
    assert 'bare.pt has no confidence' in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / 'never.pt').exists()
