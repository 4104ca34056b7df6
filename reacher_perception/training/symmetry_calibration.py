"""Calibrating the confidence of SLAC's estimate averaged over test-time symmetries.

:func:`fit_symmetry_calibration` (``reacher perception calibrate-symmetries``) runs on a
checkpoint whose confidence ``reacher perception confidence`` fitted
(``reacher_perception.training.confidence``) and sets ``SlacConfidence.symmetry_weight``
and ``symmetry_bias`` (docs/slac.md, "Tenth pass").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from reacher_common.estimate_msgs import LOST_GOAL_MM, LOST_JOINT_DEG
from reacher_common.geometry import mismatches
from reacher_perception.slac.checkpoint import (
    load_checkpoint,
    load_confidence,
    save_checkpoint,
    SLAC_GEOMETRY_FIELDS,
)
from reacher_perception.slac.confidence import SYMMETRY_SIGNAL_NAMES
from reacher_perception.training.confidence import fit_logistic
from reacher_perception.training.dataset import SequenceDataset


def fit_symmetry_calibration(checkpoint: Path, calibration: Path | Sequence[Path], out: Path,
                             wrong_weight: float = 30.0, sequences: int | None = None,
                             threads: int = 1, progress: bool = True) -> dict[str, Any]:
    """Fit the confidence of the estimate averaged over test-time symmetries; write it.

    The ``slac`` estimator with 8 filters (``PerceptionConfig.test_time_symmetries``,
    frames rectified and repainted as perception_node reads them) filters the calibration
    sequences; for each count of ``SYMMETRY_COUNTS`` (its filters are the first of the 8)
    the average of those filters' readings is scored right or wrong (joints within 10
    deg, goal within 20 mm) and a logistic regression of "right" on
    ``symmetry_signals`` sets that count's row of ``SlacConfidence.symmetry_weight`` and
    ``symmetry_bias``. The filters' mean logit may only raise the confidence and their
    disagreement only lower it (the weights' signs are fixed).

    :param checkpoint: a checkpoint with a confidence (``reacher perception confidence``);
        not modified.
    :param calibration: held-out sequences of the training scenes, one folder or several.
    :param out: the checkpoint to write: the same model and confidence, plus the symmetry
        calibration (``metadata['symmetry_fit']``: the fit's figures).
    :param wrong_weight: weight of a wrong frame against a right one (> 1 buys fewer
        silent failures with fewer confident right frames).
    :param sequences: calibration sequences to filter, from the first (None: all).
    :param threads: torch CPU threads.
    :param progress: show a progress bar (tqdm) over the sequences.
    :return: the fit's figures, per count: the share of wrong frames, and the confident
        share and silent failures at 0.5 of the filters' mean confidence and of the fit.
    :raises FileNotFoundError: for a missing checkpoint or data.
    :raises ValueError: if the checkpoint has no confidence or the data another geometry.
    """
    from tqdm import tqdm

    from reacher_perception.config import PerceptionConfig, TEST_TIME_SYMMETRIES
    from reacher_perception.slac.confidence import SYMMETRY_COUNTS, symmetry_signals
    from reacher_perception.slac.estimator import SlacEstimator
    from reacher_perception.training.evaluate import read_sequences

    began = time.perf_counter()
    cpu_began = time.process_time()
    torch.set_num_threads(threads)
    loaded = load_checkpoint(checkpoint)
    model, geometry, timing, payload = loaded
    if 'confidence' not in payload:
        raise ValueError(f'{checkpoint} has no confidence to calibrate; fit one first with '
                         "'reacher perception confidence'")
    held_out = SequenceDataset(calibration)
    differ = mismatches(geometry, held_out.geometry, SLAC_GEOMETRY_FIELDS)
    if differ:
        raise ValueError(f'the calibration was recorded with another geometry than the '
                         f'checkpoint: {"; ".join(differ)}')
    most = max(SYMMETRY_COUNTS)
    estimator = SlacEstimator(PerceptionConfig(estimator='slac', checkpoint=str(checkpoint),
                                               geometry=geometry, test_time_symmetries=most))
    count = len(held_out) if sequences is None else min(sequences, len(held_out))
    readings: list[tuple[npt.NDArray[np.float64], ...]] = []
    bar = tqdm(total=count * held_out.steps, desc='symmetry calibration', unit='frame',
               disable=not progress)

    def keep() -> None:
        assert estimator.last_readings is not None
        readings.append(estimator.last_readings)
        bar.update()

    readout = read_sequences(estimator, held_out, count, after_each=keep)
    bar.close()
    joints = np.stack([reading[0] for reading in readings])        # (F, 8, 2)
    goals = np.stack([reading[1] for reading in readings])         # (F, 8, 2)
    scores = np.stack([reading[2] for reading in readings])        # (F, 8)
    report: dict[str, Any] = {'frames': len(readings), 'counts': {}}
    confidence = load_confidence(loaded)
    assert confidence is not None
    for row, filters in enumerate(SYMMETRY_COUNTS):
        if TEST_TIME_SYMMETRIES[filters] != TEST_TIME_SYMMETRIES[most][:filters]:
            raise ValueError(f'the {filters} symmetries are not the first of the {most}')
        part = slice(0, filters)
        mean_joints = np.arctan2(np.sin(joints[:, part]).mean(1),
                                 np.cos(joints[:, part]).mean(1))
        mean_goals = goals[:, part].mean(1)
        joint_error = np.degrees(np.abs(np.remainder(
            mean_joints - readout.true_joint_positions + np.pi, 2 * np.pi) - np.pi)).max(1)
        goal_error = 1e3 * np.linalg.norm(mean_goals - readout.true_goal, axis=1)
        wrong = (joint_error > LOST_JOINT_DEG) | (goal_error > LOST_GOAL_MM)
        x = np.stack([symmetry_signals(joints[frame, part], goals[frame, part],
                                       scores[frame, part], mean_joints[frame],
                                       mean_goals[frame]) for frame in range(len(wrong))])
        w, b = fit_logistic(x, ~wrong, wrong_weight, signs=[1.0, -1.0, -1.0], updates=500)
        confidence.symmetry_weight[row] = torch.from_numpy(w).float()
        confidence.symmetry_bias[row] = b
        fitted = 1.0 / (1.0 + np.exp(-(x @ w + b))) >= 0.5
        mean = scores[:, part].mean(1) >= 0.5
        report['counts'][str(filters)] = {
            'wrong_rate': float(wrong.mean()),
            'mean_confident_rate': float(mean.mean()),
            'mean_silent_failure_rate': float((mean & wrong).mean()),
            'confident_rate': float(fitted.mean()),
            'silent_failure_rate': float((fitted & wrong).mean()),
            **{f'weight_{name}': float(value) for name, value in
               zip(SYMMETRY_SIGNAL_NAMES, w.tolist(), strict=True)},
            'bias': b}
    report['args'] = {'checkpoint': str(checkpoint),
                      'calibration': ([str(calibration)] if isinstance(calibration, (str, Path))
                                      else [str(f) for f in calibration]),
                      'sequences': count, 'wrong_weight': wrong_weight}
    report['wall_time_s'] = time.perf_counter() - began
    report['cpu_time_s'] = time.process_time() - cpu_began
    extra = {key: value for key, value in payload['metadata'].items()
             if key not in ('format', 'model_config', 'geometry', 'confidence_config')}
    save_checkpoint(out, model, geometry, timing, {**extra, 'symmetry_fit': report},
                    confidence=confidence.eval())
    return report
