"""The slac estimator's test-time symmetries: filters on mapped frames, read back and averaged."""

import math
from pathlib import Path

import numpy as np
import pytest

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
from reacher_perception.training.collect import collect
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset

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
            assert got.confidence == pytest.approx(
                np.mean([reading.confidence for reading in readings]), abs=1e-5)
            assert math.isfinite(got.goal_std_m)
            errors.append(np.abs(wrap_angle(got.joint_positions
                                            - dataset.joint_positions[index, step])).max())
    # each mapped filter reads its mapped arm: the mean is right
    assert np.degrees(np.median(errors)) < 3.0


def test_a_bad_count_is_refused_by_name() -> None:
    with pytest.raises(FieldError, match='test_time_symmetries'):
        PerceptionConfig(test_time_symmetries=3)
