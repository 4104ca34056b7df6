"""Tests of the perception config, the estimate type, image checks and the registry."""

from dataclasses import fields, FrozenInstanceError
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from reacher_common.config_tools import config_from_dict, field_docs
from reacher_common.geometry import ArmGeometry
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import (
    Estimate,
    Estimator,
    ESTIMATORS,
    make_estimator,
    validate_image,
)
from reacher_sim.camera import CameraModel
from reacher_sim.config import SimConfig


def test_defaults_match_the_simulator() -> None:
    config, sim = PerceptionConfig(), SimConfig()
    assert config.estimator == 'slac' and config.checkpoint == ''
    # One geometry class: the defaults cannot disagree field by field any more.
    assert config.geometry == sim.geometry


def test_every_field_is_documented_with_its_unit_or_range() -> None:
    docs = field_docs(PerceptionConfig)
    for field in fields(PerceptionConfig):
        assert docs.get(field.name), f'{field.name} has no docstring'


def test_field_names_are_the_node_parameters() -> None:
    # The perception node declares these as ROS parameters; renaming one breaks YAML files.
    assert [field.name for field in fields(PerceptionConfig)] == [
        'thread_priority', 'cpu_dma_latency_us',  # NodeScheduling's, first
        'estimator', 'geometry', 'checkpoint', 'runtime', 'rectify', 'normalize_background',
        'test_time_symmetries', 'warn_throttle_s']
    assert [field.name for field in fields(ArmGeometry)] == [
        'upper_arm_length_m', 'forearm_length_m', 'link_width_m', 'arena_size_m', 'goal_size_m',
        'image_size', 'camera_height_m', 'max_joint_velocity']


def test_sim_geometry() -> None:
    geometry = ArmGeometry(image_size=128, arena_size_m=0.5, upper_arm_length_m=0.12,
                           forearm_length_m=0.08, goal_size_m=0.05)
    config = PerceptionConfig(geometry=geometry)
    sim = SimConfig(geometry=config.geometry)
    assert isinstance(sim, SimConfig)
    assert (sim.geometry.image_size, sim.geometry.arena_size_m, sim.geometry.upper_arm_length_m,
            sim.geometry.forearm_length_m, sim.geometry.goal_size_m) == (
                128, 0.5, 0.12, 0.08, 0.05)
    assert CameraModel.from_geometry(sim.geometry).pixels_per_metre == pytest.approx(256.0)


@pytest.mark.parametrize('cls, name, value', [
    (ArmGeometry, 'image_size', 8), (ArmGeometry, 'image_size', 2048),
    (ArmGeometry, 'arena_size_m', 0.3),  # smaller than the arm's span, 2 * 0.2 m
    (ArmGeometry, 'upper_arm_length_m', 0.0), (ArmGeometry, 'upper_arm_length_m', 1.5),
    (ArmGeometry, 'forearm_length_m', -0.1),
    (ArmGeometry, 'goal_size_m', 0.0), (ArmGeometry, 'goal_size_m', 0.4),
    (PerceptionConfig, 'warn_throttle_s', -1.0), (PerceptionConfig, 'warn_throttle_s', 4000.0),
])
def test_out_of_range_values_name_the_field(cls: type, name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf'{cls.__name__}\.{name}=.* is out of range'):
        cls(**{name: value})


def test_non_finite_values_are_rejected() -> None:
    with pytest.raises(ValueError, match=r'ArmGeometry\.goal_size_m=nan must be a finite'):
        ArmGeometry(goal_size_m=math.nan)


def test_from_dict_rejects_unknown_keys() -> None:
    assert config_from_dict(ArmGeometry, {'image_size': 96}).image_size == 96
    with pytest.raises(ValueError, match=r"no field\(s\) \['image_width'\]"):
        config_from_dict(ArmGeometry, {'image_width': 96})


def test_estimate_is_frozen() -> None:
    estimate = Estimate(np.zeros(2), np.array([0.2, 0.0]), np.zeros(2), True, False)
    assert estimate.latent is None
    with pytest.raises(FrozenInstanceError):
        estimate.arm_visible = False  # type: ignore[misc]


def test_validate_image_accepts_rgb8() -> None:
    validate_image(np.zeros((64, 64, 3), np.uint8), 64)
    validate_image(np.zeros((16, 16, 3), np.uint8), 16)


@pytest.mark.parametrize('image, match', [
    (np.zeros((32, 32, 3), np.uint8),
     r'^expected a \(64, 64, 3\) uint8 rgb8 image, got \(32, 32, 3\) uint8$'),
    (np.zeros((64, 64, 3), np.float64), r'got \(64, 64, 3\) float64'),
    (np.zeros((64, 64, 3), np.uint16), r'got \(64, 64, 3\) uint16'),
    (np.zeros((3, 64, 64), np.uint8), r'got \(3, 64, 64\) uint8'),
    (np.zeros((64, 64), np.uint8), r'got \(64, 64\) uint8'),
    ([[0, 0, 0]], r'got list'),
])
def test_validate_image_rejects(image: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate_image(image, 64)


def test_unknown_estimator_lists_the_known_ones() -> None:
    # 'slac' exists now (issue 4); any unregistered name must list the known ones.
    with pytest.raises(ValueError, match=r"estimator='nonexistent' is unknown; known "
                                         r"estimators: \[.*'classical'.*'slac'.*\]"):
        make_estimator(PerceptionConfig(estimator='nonexistent'))


class ConstantEstimator:
    """A backend that always sees the same state: what a new backend has to provide."""

    def __init__(self, config: PerceptionConfig) -> None:
        self.config = config
        self.frames = 0

    def reset(self) -> None:
        self.frames = 0

    def estimate(self, image: npt.NDArray[np.uint8],
                 previous_command: npt.NDArray[np.float64] | None = None) -> Estimate:
        validate_image(image, self.config.geometry.image_size)
        self.frames += 1
        return Estimate(np.zeros(2), np.array([0.2, 0.0]), np.zeros(2), True, True,
                        latent=np.zeros(4, np.float32))


def test_a_new_backend_registers_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ESTIMATORS, 'constant', ConstantEstimator)
    estimator = make_estimator(PerceptionConfig(estimator='constant',
                                                geometry=ArmGeometry(image_size=32)))
    assert isinstance(estimator, ConstantEstimator) and isinstance(estimator, Estimator)
    estimate = estimator.estimate(np.zeros((32, 32, 3), np.uint8), np.ones(2))
    assert estimate.latent is not None and estimate.latent.dtype == np.float32
    assert estimator.frames == 1
    with pytest.raises(ValueError, match='expected a'):
        estimator.estimate(np.zeros((64, 64, 3), np.uint8))
