"""Estimators on held-out sequences (reacher_perception/training/evaluate.py), on real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_perception.training.collect import collect
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset
from reacher_perception.training.evaluate import evaluate, read_sequences


@pytest.fixture(scope='module')
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp('held_out')
    collect(CollectConfig(sequences=3, steps=8, seed=1000), ArmGeometry(), Timing(), folder,
            progress=False)
    return folder


def test_read_sequences_keeps_every_frame_beside_its_truth(held_out: Path) -> None:
    dataset = SequenceDataset(held_out)
    estimator = make_estimator(PerceptionConfig(estimator='classical'))
    readout = read_sequences(estimator, dataset, sequences=2)
    assert readout.joint_positions.shape == readout.true_joint_positions.shape == (16, 2)
    assert readout.goal.shape == readout.true_goal.shape == (16, 2)
    np.testing.assert_array_equal(readout.true_goal, dataset.goal[:2].reshape(-1, 2))
    # the classical fit is an exact inverse of the clean drawing
    assert readout.joint_error_deg.max() < 1.0 and readout.goal_error_mm.max() < 2.0
    assert not readout.lost.any()
    assert readout.confident(0.5).all() and (readout.seconds > 0).all()
    # a frame of another sequence is read as wrong: the truth is not the estimate's own
    shuffled = make_estimator(PerceptionConfig(estimator='classical'))
    swapped = SequenceDataset(held_out)
    swapped.images = swapped.images[::-1].copy()
    assert read_sequences(shuffled, swapped).lost.any()


def test_evaluate_writes_the_shipped_checkpoints_errors(held_out: Path, tmp_path: Path
                                                         ) -> None:
    torch.set_num_threads(1)
    checkpoint = Path(__file__).resolve().parent.parent / 'checkpoints' / 'slac_reacher.pt'
    results = evaluate(checkpoint, held_out, tmp_path, sequences=2)
    assert results['frames'] == 16
    assert json.loads((tmp_path / 'eval.json').read_text()) == results
    assert (tmp_path / 'estimate_vs_truth.png').stat().st_size > 0
    assert results['joint_mae_deg'] < 10.0 and results['goal_mean_mm'] < 20.0

