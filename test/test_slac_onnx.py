"""The slac estimator's ONNX Runtime path computes what its torch path computes."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from reacher_common.config_tools import FieldError
from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.symmetry import action_signs, transform_frame
from reacher_perception.config import PerceptionConfig, TEST_TIME_SYMMETRIES
from reacher_perception.estimator import make_estimator
from reacher_perception.slac.checkpoint import load_checkpoint, load_confidence, save_checkpoint
from reacher_perception.slac.confidence import SlacConfidence
from reacher_perception.slac.config import SlacModelConfig
from reacher_perception.slac.estimator import SlacEstimator
from reacher_perception.slac.frame_step import OnnxFrameStep, OUTPUTS, TorchFrameStep
from reacher_perception.slac.latent import LatentModel
from reacher_perception.training.collect import collect
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset

SHIPPED = Path(__file__).resolve().parent.parent / 'checkpoints' / 'slac_reacher.pt'
TOLERANCE = 1e-5
"""The issue's bar: ONNX outputs equal torch's within this, absolute."""


def frames(path: Path, geometry: ArmGeometry, sequences: int = 2, steps: int = 8
           ) -> SequenceDataset:
    """Real camera frames and the commands between them (the sim's renderer)."""
    collect(CollectConfig(sequences=sequences, steps=steps, shard_size=sequences, seed=11),
            geometry, Timing(), path, progress=False)
    return SequenceDataset(path)


def action_of(dataset: SequenceDataset, index: int, step: int, max_velocity: float
              ) -> np.ndarray:
    command = dataset.actions[index, step - 1].astype(np.float64) if step else np.zeros(2)
    return np.clip(command / max_velocity, -1, 1).astype(np.float32)[None]


def assert_steps_agree(path: Path, geometry: ArmGeometry, dataset: SequenceDataset,
                       symmetries: int = 1) -> int:
    """Both runtimes, fed the same inputs at every step (torch's z2 carried), agree.

    ``symmetries`` filters step together, each on the frame mapped by its element of
    ``TEST_TIME_SYMMETRIES`` with its command mapped alike, as the estimator runs them.
    """
    checkpoint = load_checkpoint(path)
    confidence = load_confidence(checkpoint)
    elements = TEST_TIME_SYMMETRIES[symmetries]
    onnx = OnnxFrameStep(checkpoint.model, confidence, checkpoint.geometry,
                         batch=len(elements))
    reference = TorchFrameStep(checkpoint.model, confidence, checkpoint.geometry)
    signs = action_signs(elements).astype(np.float32)[:, None]
    for index in range(len(dataset)):
        z2 = None
        for step in range(dataset.steps):
            image = np.stack([transform_frame(dataset.images[index, step], element)
                              for element in elements])
            action = action_of(dataset, index, step, geometry.max_joint_velocity) * signs
            expected = reference(image, z2, action)
            got = onnx(image, z2, action)
            assert len(got) == len(expected)
            for name, value, wanted in zip(OUTPUTS, got, expected, strict=False):
                assert value.shape == wanted.shape, name
                assert value.shape[0] == len(elements), name
                np.testing.assert_allclose(value, wanted, rtol=0, atol=TOLERANCE,
                                           err_msg=f'{name} at step {step}')
            z2 = expected[2]
    return len(expected)


@pytest.mark.skipif(not SHIPPED.is_file(), reason='no shipped checkpoint in this checkout')
def test_onnx_equals_torch_on_the_shipped_checkpoint(tmp_path: Path) -> None:
    geometry = ArmGeometry()
    dataset = frames(tmp_path / 'data', geometry)
    # every output, the confidence's included, on the first frame and the filter steps,
    # for one filter and for the eight of the square's symmetries stepped together
    assert assert_steps_agree(SHIPPED, geometry, dataset) == len(OUTPUTS)
    assert assert_steps_agree(SHIPPED, geometry, dataset, symmetries=8) == len(OUTPUTS)
    # and the two estimators, each carrying its own latent, read the same estimates
    onnx = make_estimator(PerceptionConfig(estimator='slac', runtime='onnxruntime'))
    reference = make_estimator(PerceptionConfig(estimator='slac', runtime='torch'))
    for index in range(len(dataset)):
        onnx.reset()
        reference.reset()
        for step in range(dataset.steps):
            command = None if step == 0 else dataset.actions[index, step - 1].astype(float)
            got = onnx.estimate(dataset.images[index, step], command)
            wanted = reference.estimate(dataset.images[index, step], command)
            for name in ('joint_positions', 'fingertip', 'goal', 'latent'):
                np.testing.assert_allclose(getattr(got, name), getattr(wanted, name),
                                           rtol=0, atol=TOLERANCE, err_msg=name)
            for name in ('confidence', 'joint_std_rad', 'fingertip_std_m', 'goal_std_m'):
                assert math.isfinite(getattr(got, name)), name
                assert abs(getattr(got, name) - getattr(wanted, name)) <= TOLERANCE, name


TINY = SlacModelConfig(image_size=16, base_depth=4, feature_dim=8, z1_dim=3, z2_dim=5,
                       hidden_units=16)


@pytest.mark.parametrize('keypoints, with_confidence, normalization',
                         [(0, False, 'none'), (2, True, 'none'), (2, True, 'standardize')])
def test_onnx_equals_torch_on_other_models(tmp_path: Path, keypoints: int,
                                           with_confidence: bool, normalization: str) -> None:
    # Nothing in the export depends on the shipped sizes or weights: a small model with
    # and without keypoints, a confidence and the input normalisation (random weights,
    # calibration included).
    torch.manual_seed(0)
    geometry = ArmGeometry(image_size=16)
    config = SlacModelConfig(**{**TINY.to_dict(), 'keypoints': keypoints,
                                'input_normalization': normalization})
    model = LatentModel(config)
    confidence = None
    if with_confidence:
        confidence = SlacConfidence(config.encoded_dim, config.state_dim, members=3,
                                    hidden=8)
        for buffer in (confidence.logistic_weight, confidence.scale_weight):
            buffer.copy_(0.1 * torch.randn_like(buffer))
        confidence.scale_bias.fill_(-3.0)
    path = save_checkpoint(tmp_path / 'c.pt', model, geometry, Timing(), confidence=confidence)
    dataset = frames(tmp_path / 'data', geometry, sequences=1, steps=5)
    assert assert_steps_agree(path, geometry, dataset) == (5 if with_confidence else 3)
    estimator = SlacEstimator(PerceptionConfig(estimator='slac', checkpoint=str(path),
                                               geometry=geometry))
    estimate = estimator.estimate(dataset.images[0, 0])
    assert math.isfinite(estimate.confidence) == with_confidence


def test_a_bad_runtime_is_refused_by_name() -> None:
    with pytest.raises(FieldError, match='runtime'):
        PerceptionConfig(estimator='slac', runtime='tensorrt')
