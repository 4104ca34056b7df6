"""Fitting SLAC's confidence (``reacher_perception.slac.confidence``) on a frozen model.

Three steps, none of which changes the latent model:

1. :func:`fit_frame_heads`: the ensemble of per-frame heads, regressed on the encoder
   features of the training frames (in their scenes, with the training augmentation),
   each member on its own minibatches (bagging) from its own initialisation.
2. :func:`filter_signals`: the calibration sequences (held-out seeds of the training
   scenes) filtered as the estimator does, giving each frame's signals and errors.
3. :func:`fit_calibration` (logistic regression of "right" on the signals) and
   :func:`fit_scales` (a gaussian fit of each part's error scale).

``reacher perception confidence`` runs them and writes the checkpoint with the confidence
(:func:`reacher_perception.slac.checkpoint.save_checkpoint`).

4. ``reacher_perception.training.symmetry_calibration`` (``reacher perception
   calibrate-symmetries``), on the
   checkpoint the three steps wrote: the confidence of the estimate that the estimator
   averages over its test-time symmetries, from the filters' mean confidence and how
   well they agree (``reacher_perception.slac.confidence.symmetry_confidence``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from reacher_common.config_tools import config_from_dict
from reacher_common.estimate_msgs import LOST_GOAL_MM, LOST_JOINT_DEG
from reacher_common.geometry import mismatches
from reacher_perception.background import BackgroundNormalizer
from reacher_perception.slac.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    SLAC_GEOMETRY_FIELDS,
)
from reacher_perception.slac.confidence import (
    PARTS,
    SIGNAL_NAMES,
    signals,
    SlacConfidence,
)
from reacher_perception.slac.latent import LatentModel
from reacher_perception.training.augment import augment, repaint
from reacher_perception.training.config import AugmentConfig
from reacher_perception.training.dataset import SequenceDataset


@torch.no_grad()
def encode(model: LatentModel, images: npt.NDArray[np.uint8], batch: int = 64,
           config: AugmentConfig | None = None, seed: int = 0,
           normalize: BackgroundNormalizer | None = None) -> torch.Tensor:
    """Encoder features of whole sequences.

    :param model: the latent model (eval mode).
    :param images: (N, T, H, W, 3) uint8.
    :param batch: sequences per forward pass.
    :param config: when given, the frames are first corrupted with it (``augment``).
    :param seed: the augmentation's seed.
    :param normalize: when given, each frame (after the corruption, rounded to uint8 as a
        camera's) has its table repainted, as the estimator does
        (``PerceptionConfig.normalize_background``).
    :return: (N, T, encoded_dim) float32.
    """
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, len(images), batch):
        frames = torch.from_numpy(images[start:start + batch]).permute(0, 1, 4, 2, 3)
        frames = frames.float().div_(255.0)
        if config is not None:
            frames = augment(frames, config, generator)
        if normalize is not None:
            frames = repaint(frames, normalize)
        parts.append(model.encoder(frames))
    return torch.cat(parts)


def fit_frame_heads(confidence: SlacConfidence, features: torch.Tensor, states: torch.Tensor,
                    updates: int = 3000, batch_size: int = 256, learning_rate: float = 3e-3,
                    seed: int = 0) -> list[float]:
    """Regress the ensemble of frame heads on features (each member its own batches).

    :param confidence: whose ``frame_heads`` are fitted (in place).
    :param features: (F, encoded_dim) float32.
    :param states: (F, state_dim) float32, the true ``STATE_NAMES`` values.
    :param updates: Adam steps.
    :param batch_size: frames per member per step.
    :param learning_rate: Adam's step size (cosine-decayed to a tenth).
    :param seed: batches.
    :return: the mean squared error of each member on its last batch.
    """
    heads = confidence.frame_heads
    heads.feature_mean.copy_(features.mean(0))
    heads.feature_std.copy_(features.std(0).clamp_min(1e-6))
    members = heads.members
    optimizer = torch.optim.Adam(heads.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    errors = torch.zeros(members)
    for step in range(updates):
        for group in optimizer.param_groups:
            group['lr'] = learning_rate * (0.1 + 0.45 * (1 + np.cos(np.pi * step / updates)))
        index = torch.randint(0, len(features), (members, batch_size), generator=generator)
        hidden = (features[index] - heads.feature_mean) / heads.feature_std
        last = len(heads.weights) - 1
        for layer, (weight, bias) in enumerate(zip(heads.weights, heads.biases, strict=True)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if layer < last:
                hidden = torch.nn.functional.leaky_relu(hidden, 0.2)
        squared = (hidden - states[index]).pow(2).mean(dim=(1, 2))
        optimizer.zero_grad(set_to_none=True)
        squared.sum().backward()
        optimizer.step()
        errors = squared.detach()
    return errors.tolist()


@dataclass
class FrameTable:
    """Per-frame signals and errors of filtered sequences (flattened over N x T).

    :param signals: (F, len(SIGNAL_NAMES)) float32.
    :param joint_error_deg: (F,) the worse joint's absolute error.
    :param joint_errors_rad: (F, 2) each joint's signed error.
    :param fingertip_error_m: (F, 2) the estimate's fingertip (forward kinematics of its
        joints, as the estimator publishes) minus the truth.
    :param goal_error_m: (F, 2).
    """

    signals: npt.NDArray[np.float32]
    joint_error_deg: npt.NDArray[np.float64]
    joint_errors_rad: npt.NDArray[np.float64]
    fingertip_error_m: npt.NDArray[np.float64]
    goal_error_m: npt.NDArray[np.float64]

    def concatenate(self, other: FrameTable) -> FrameTable:
        """This table's frames followed by ``other``'s."""
        return FrameTable(**{name: np.concatenate([getattr(self, name), getattr(other, name)])
                             for name in ('signals', 'joint_error_deg', 'joint_errors_rad',
                                          'fingertip_error_m', 'goal_error_m')})

    @property
    def wrong(self) -> npt.NDArray[np.bool_]:
        """(F,) a joint more than 10 deg off or the goal more than 20 mm off."""
        return ((self.joint_error_deg > LOST_JOINT_DEG)
                | (1e3 * np.linalg.norm(self.goal_error_m, axis=1) > LOST_GOAL_MM))


@torch.no_grad()
def filter_signals(model: LatentModel, confidence: SlacConfidence, dataset: SequenceDataset,
                   batch: int = 64, corrupt: AugmentConfig | None = None, seed: int = 0,
                   normalize: BackgroundNormalizer | None = None) -> FrameTable:
    """Filter every sequence as the estimator does and tabulate each frame.

    The errors are those of the published estimate (``SlacConfidence.read_out``, with the
    confidence's ``blend``).

    :param model: the latent model (eval mode).
    :param confidence: with fitted frame heads.
    :param dataset: sequences whose ``images`` the estimator would see.
    :param batch: sequences per pass.
    :param corrupt: when given, the frames are first corrupted with it (``augment``:
        occluding patches, blank frames, noise, colour), as in training.
    :param seed: the corruption's seed.
    :param normalize: repaint each frame's table first, as the estimator does (``encode``).
    :return: the table, frames in sequence-major order.
    """
    geometry = dataset.geometry
    reach = geometry.upper_arm_length_m + geometry.forearm_length_m
    rows: dict[str, list[Any]] = {name: [] for name in ('signals', 'joints', 'goal')}
    for start in range(0, len(dataset), batch):
        stop = start + batch
        features = encode(model, dataset.images[start:stop], config=corrupt,
                          seed=seed + start, normalize=normalize)
        actions = torch.from_numpy(dataset.actions[start:stop, :-1])
        z1, z2 = model.filter_sequence(features, actions)
        filtered = model.state(z1, z2).flatten(0, 1)
        flat = features.flatten(0, 1)
        frame_states = confidence.frame_heads(flat)
        rows['signals'].append(signals(frame_states, filtered,
                                       confidence.frame_heads.distance(flat), reach,
                                       geometry.upper_arm_length_m,
                                       geometry.forearm_length_m).numpy())
        read = confidence.read_out(filtered, frame_states, reach)
        rows['joints'].append(np.arctan2(read[:, [0, 2]].numpy(), read[:, [1, 3]].numpy()))
        rows['goal'].append(read[:, 6:8].numpy() * reach)
    joints = np.concatenate(rows['joints']).astype(np.float64)
    truth = dataset.joint_positions.reshape(-1, 2)
    joint_errors = np.remainder(joints - truth + np.pi, 2 * np.pi) - np.pi
    q1, q12 = joints[:, 0], joints.sum(axis=1)
    tip = np.stack([geometry.upper_arm_length_m * np.cos(q1)
                    + geometry.forearm_length_m * np.cos(q12),
                    geometry.upper_arm_length_m * np.sin(q1)
                    + geometry.forearm_length_m * np.sin(q12)], axis=1)
    return FrameTable(
        signals=np.concatenate(rows['signals']),
        joint_error_deg=np.degrees(np.abs(joint_errors)).max(axis=1),
        joint_errors_rad=joint_errors,
        fingertip_error_m=tip - dataset.fingertip.reshape(-1, 2),
        goal_error_m=np.concatenate(rows['goal']) - dataset.goal.reshape(-1, 2))


def fit_calibration(confidence: SlacConfidence, table: FrameTable,
                    wrong_weight: float = 1.0, updates: int = 500) -> dict[str, float]:
    """Logistic regression of "right" on the signals; sets the calibration buffers.

    :param confidence: whose ``logistic_*`` buffers are set.
    :param table: the calibration frames.
    :param wrong_weight: weight of a wrong frame in the likelihood against a right one's 1
        (> 1 buys fewer silent failures with fewer confident right frames).
    :param updates: L-BFGS iterations.
    :return: the fit's figures on the calibration frames (share wrong, confident,
        silent failures).
    """
    # Every signal measures trouble, so its weight is kept <= 0: a frame never gains
    # confidence by looking stranger, which a free fit on correlated signals allowed (the
    # feature distance got +3.5 beside the ensemble's spread).
    w, b = fit_logistic(table.signals, ~table.wrong, wrong_weight,
                         signs=[-1.0] * len(SIGNAL_NAMES), updates=updates)
    confidence.logistic_weight.copy_(torch.from_numpy(w).float())
    confidence.logistic_bias.fill_(b)
    score, _ = confidence(torch.from_numpy(table.signals))
    confident = score.numpy() >= 0.5
    return {'frames': int(len(confident)), 'wrong_rate': float(table.wrong.mean()),
            'confident_rate': float(confident.mean()),
            'silent_failure_rate': float((confident & table.wrong).mean()),
            **{f'weight_{name}': float(value) for name, value in
               zip(SIGNAL_NAMES, w.tolist(), strict=True)},
            'bias': b}


def fit_logistic(x: npt.NDArray[np.floating], right: npt.NDArray[np.bool_],
                  wrong_weight: float, signs: Sequence[float], updates: int
                  ) -> tuple[npt.NDArray[np.float64], float]:
    """Weighted logistic regression of ``right`` on ``x`` with each weight's sign fixed.

    Weight ``j`` is ``signs[j] * softplus(u_j)``; the loss is the weighted binary
    cross-entropy (a wrong frame weighs ``wrong_weight``, a right one 1) plus 1e-4 |w|^2,
    minimised by L-BFGS.

    :param x: (F, K) the signals.
    :param right: (F,) the frames whose estimate was right.
    :param wrong_weight: weight of a wrong frame.
    :param signs: (K,) +1 or -1 per signal.
    :param updates: L-BFGS iterations.
    :return: the weights (K,) and the bias.
    """
    inputs = torch.from_numpy(np.asarray(x, dtype=np.float64))
    target = torch.from_numpy(np.asarray(right, dtype=np.float64))
    weight = torch.where(target > 0, torch.ones_like(target),
                         torch.full_like(target, wrong_weight))
    sign = torch.tensor(list(signs), dtype=torch.float64)
    u = torch.zeros(inputs.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([u, b], max_iter=updates, line_search_fn='strong_wolfe')

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        w = sign * torch.nn.functional.softplus(u)
        logits = inputs @ w + b
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction='none')).sum() / weight.sum() + 1e-4 * w.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    w = sign * torch.nn.functional.softplus(u.detach())
    return w.numpy(), float(b.detach())


def fit_scales(confidence: SlacConfidence, table: FrameTable, updates: int = 300
               ) -> dict[str, float]:
    """Fit each part's error std as ``exp(v . signals + c)`` by gaussian likelihood.

    The joint's error is per joint (radians), the fingertip's and the goal's per axis
    (metres), so the std is what a covariance's diagonal takes.

    :param confidence: whose ``scale_*`` buffers are set.
    :param table: the calibration frames.
    :param updates: L-BFGS iterations per part.
    :return: per part, the RMS error and the root mean predicted variance (metres or
        radians), which a good fit makes close.
    """
    x = torch.from_numpy(table.signals).double()
    errors = {'joint': table.joint_errors_rad, 'fingertip': table.fingertip_error_m,
              'goal': table.goal_error_m}
    report = {}
    for index, part in enumerate(PARTS):
        e = torch.from_numpy(errors[part]).double()
        v, c = _fit_log_scale(x, e, updates)
        confidence.scale_weight[index] = v.float()
        confidence.scale_bias[index] = c.float()
        predicted = torch.exp(x @ v + c)
        report[f'{part}_rms'] = float(e.pow(2).mean().sqrt())
        report[f'{part}_predicted_rms'] = float(predicted.pow(2).mean().sqrt())
    return report


def _fit_log_scale(x: torch.Tensor, e: torch.Tensor, updates: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v, c)``, detached, that fit the std ``exp(x @ v + c)`` to errors ``e`` (F, k).

    The gaussian negative log-likelihood is minimised; the k components share the std.
    """
    v = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    c = torch.log(e.pow(2).mean().sqrt() + 1e-9).clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([v, c], max_iter=updates, line_search_fn='strong_wolfe')

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        log_std = (x @ v + c)[:, None]
        loss = (log_std + 0.5 * e.pow(2) * torch.exp(-2 * log_std)).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return v.detach(), c.detach()


def fit_confidence(checkpoint: Path, data: Path | Sequence[Path],
                   calibration: Path | Sequence[Path], out: Path,
                   sequences: int | Sequence[int] = 600, members: int = 5, hidden: int = 64,
                   updates: int = 2000, wrong_weight: float = 1.0, blend: float = 0.5,
                   corrupt_calibration: bool = True, normalize_background: bool = False,
                   seed: int = 0, threads: int = 1) -> dict[str, Any]:
    """Fit the confidence of a trained checkpoint and write it with the confidence.

    :param checkpoint: the trained model (``final.pt``); not modified.
    :param data: its training data, one folder or several: the frame heads are fitted on
        the first ``sequences`` sequences of each, in their scenes, corrupted by the run's
        augmentation (the ``train_config`` in the checkpoint; the defaults when absent).
    :param calibration: held-out sequences of the training scenes (another seed), one
        folder or several, where the calibration is fitted.
    :param out: the checkpoint to write (model unchanged, plus ``confidence``).
    :param sequences: training sequences for the frame heads: the first this many of each
        ``data`` folder, or one count per folder.
    :param members: frame heads in the ensemble.
    :param hidden: their hidden width.
    :param updates: Adam steps of the frame heads.
    :param wrong_weight: weight of a wrong frame in the calibration (``fit_calibration``).
    :param blend: weight of the frame heads in the estimate (``SlacConfidence.read_out``),
        in [0, 1]; the calibration is fitted on the blended estimate's errors.
    :param corrupt_calibration: calibrate on the calibration frames both as recorded and
        corrupted by the run's augmentation (twice the frames).
    :param normalize_background: fit on frames whose table is repainted, as the estimator
        reads them with ``PerceptionConfig.normalize_background``; off by default, on for
        the shipped checkpoint (its model was fine-tuned on repainted frames).
    :param seed: initialisation, batches and augmentation.
    :param threads: torch CPU threads.
    :return: the fit's figures (also stored as ``metadata['confidence_fit']``).
    :raises FileNotFoundError: for a missing checkpoint or data.
    :raises ValueError: if the data's geometry is not the checkpoint's, ``blend`` is
        outside [0, 1], or ``sequences`` gives another number of counts than folders.
    """
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f'blend={blend} must be in [0, 1]')
    folders = [Path(data)] if isinstance(data, (str, Path)) else [Path(f) for f in data]
    wanted = [sequences] * len(folders) if isinstance(sequences, int) else list(sequences)
    if len(wanted) == 1:
        wanted *= len(folders)
    if len(wanted) != len(folders) or min(wanted) < 1:
        raise ValueError(f'sequences={list(wanted)}: give one count >= 1, or one per data '
                         f'folder ({len(folders)})')
    began = time.perf_counter()
    cpu_began = time.process_time()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    loaded = load_checkpoint(checkpoint)
    model, geometry, timing, payload = loaded
    datasets = [SequenceDataset(folder) for folder in folders]
    held_out = SequenceDataset(calibration)
    for name, part in [*(('data', dataset) for dataset in datasets),
                       ('calibration', held_out)]:
        differ = mismatches(geometry, part.geometry, SLAC_GEOMETRY_FIELDS)
        if differ:
            raise ValueError(f'the {name} was recorded with another geometry than the '
                             f'checkpoint: {"; ".join(differ)}')
    train_config = payload['metadata'].get('train_config', {})
    augment_config = (config_from_dict(AugmentConfig, train_config['augment'])
                      if 'augment' in train_config else AugmentConfig())
    confidence = SlacConfidence(model.config.encoded_dim, model.config.state_dim,
                                members=members, hidden=hidden)
    normalize = (BackgroundNormalizer(geometry.image_size)
                 if normalize_background else None)
    counts = [min(count, len(dataset)) for count, dataset in zip(wanted, datasets, strict=True)]
    images = np.concatenate([dataset.images[:count]
                             for dataset, count in zip(datasets, counts, strict=True)])
    features = encode(model, images, config=augment_config, seed=seed,
                      normalize=normalize).flatten(0, 1)
    del images
    states = torch.from_numpy(np.concatenate([
        dataset.states[:count] for dataset, count in zip(datasets, counts, strict=True)]
    )).flatten(0, 1)
    head_errors = fit_frame_heads(confidence, features, states, updates=updates, seed=seed)
    confidence.blend.fill_(blend)
    table = filter_signals(model, confidence, held_out, normalize=normalize)
    if corrupt_calibration:
        # The calibration also sees its frames corrupted as in training (grey patches over
        # the arm, blank frames): without them a covered arm, never shown to the fit, was
        # read as sure on 21% of its frames (test_slac_scenes).
        table = table.concatenate(filter_signals(model, confidence, held_out,
                                                 corrupt=augment_config, seed=seed + 1,
                                                 normalize=normalize))
    report: dict[str, Any] = {
        'frame_head_mse': head_errors,
        'calibration': fit_calibration(confidence, table, wrong_weight=wrong_weight),
        'scales': fit_scales(confidence, table),
        'args': {'checkpoint': str(checkpoint), 'data': [str(f) for f in folders],
                 'calibration': ([str(calibration)] if isinstance(calibration, (str, Path))
                                 else [str(f) for f in calibration]),
                 'sequences': counts, 'members': members,
                 'hidden': hidden, 'updates': updates, 'wrong_weight': wrong_weight,
                 'blend': blend, 'corrupt_calibration': corrupt_calibration,
                 'normalize_background': normalize_background, 'seed': seed},
        'wall_time_s': time.perf_counter() - began,
        'cpu_time_s': time.process_time() - cpu_began}
    extra = {key: value for key, value in payload['metadata'].items()
             if key not in ('format', 'model_config', 'geometry', 'confidence_config')}
    save_checkpoint(out, model, geometry, timing, {**extra, 'confidence_fit': report},
                    confidence=confidence.eval())
    return report

