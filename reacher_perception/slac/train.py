"""Training of the latent model: updates, checkpoints (save, resume, refuse), plots.

The shipped checkpoint ``checkpoints/slac_reacher.pt`` was made with::

    reacher perception collect --out data/slac/train --collect.sequences 500 \
        --collect.seed 0
    reacher perception train --data data/slac/train --out runs/slac --updates 7000 \
        --model.keypoints 16 --model.state-weight 100000 --clean-updates 2000 \
        --augment.noise-probability 0.3 --augment.noise-std-max 0.25 \
        --augment.occlusion-probability 0.25 --augment.blank-probability 0.25
    cp runs/slac/final.pt checkpoints/slac_reacher.pt

(16 spatial-softmax keypoints and a state weight of 1e5, otherwise the defaults of
:class:`SlacModelConfig`; clean until update 2000, then stronger corruption than the
defaults: 1455 s of training on one CPU core, 1.12 M frames seen from a dataset of
24 000). The checkpoint it replaced (state weight 1e4, 1500 clean updates without
clipping, resumed to 9500) had goal errors of 8.3 mm clean and 10.8 mm under strong
noise against 5.7 and 6.7 mm (README.md, "Learned perception: SLAC").

Checkpoints are ``torch.save`` of a dict of plain types and tensors, read back with
``torch.load(weights_only=True)``::

    model      state_dict of LatentModel
    metadata   {'format': 'reacher-slac-1', 'model_config': SlacModelConfig as dict,
                'geometry': SequenceGeometry as dict, 'updates': int, 'frames_seen': int,
                'wall_time_s': float}
    optimizer  Adam's state_dict (only in the resumable ``checkpoint.pt``)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
import json
import math
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch

from reacher_common.config_tools import config_from_dict
from reacher_perception.slac.config import SlacModelConfig
from reacher_perception.slac.data import (
    augment,
    AugmentConfig,
    SequenceDataset,
    SequenceGeometry,
)
from reacher_perception.slac.latent import LatentModel

CHECKPOINT_FORMAT = 'reacher-slac-1'


@dataclass(frozen=True)
class TrainConfig:
    """Train the SLAC latent model (encoder, latent dynamics, decoder, state heads)."""

    data: Path = Path('data/slac/train')
    """Folder of dataset shards (from 'reacher perception collect')."""
    out: Path = Path('runs/slac')
    """Run folder: checkpoint.pt (resumable), final.pt (weights only), metrics.jsonl,
    tb/ (TensorBoard), loss_curves.png, reconstructions.png."""
    updates: int = 5000
    """Total Adam updates of the latent model (resumed runs count from their step)."""
    batch_size: int = 32
    """Sequences per update."""
    sequence_length: int = 5
    """Frames per training window, >= 2 (the paper: 8 steps + 1). Shorter windows of more
    sequences for the same compute: the goal is constant within a window, so 16 windows
    carry only 16 goals; with 16 x 9 the goal head stayed at chance (~80 mm) for 1350
    updates."""
    learning_rate: float = 3e-3
    """Adam's initial step size, cosine-decayed to a tenth (the paper: 1e-4 constant, for
    ~20x more updates). In a supervised trial of the encoder alone, 1e-3 left the goal at
    chance (~90 mm RMS) for 350 updates where 3e-3 reached 13 mm."""
    clean_updates: int = 2000
    """Updates before the augmentation starts (its probabilities then ramp up linearly over
    as many more). In trials, the encoder learned nothing (state heads at chance for 300
    supervised updates, the goal for 1650 SLAC updates) when corrupted frames came from
    the start; on clean frames it did, so corruption comes once the state is readable."""
    warmup_updates: int = 500
    """Updates of linear learning-rate warm-up from ~0, >= 1."""
    grad_clip_norm: float = 1e5
    """Largest global L2 norm of the gradient (clipped above it); 0 turns clipping off.
    Clean updates of the keypoint model have norms of 2-4e4; without clipping, a run with
    keypoints diverged (state errors 1e7 mm) within 100 updates of the corruption's
    onset (the first corrupted batches' errors are large, and Adam's first step along a
    gradient spike is several times its step size). The checkpoint shipped before this
    option was trained without it."""
    seed: int = 0
    """Seed of the model's initialisation, the batches and the augmentation."""
    threads: int = 1
    """torch CPU threads (the machine is shared)."""
    log_every: int = 50
    """Updates between metric logs (TensorBoard, metrics.jsonl, progress bar)."""
    checkpoint_every: int = 500
    """Updates between resumable checkpoints."""
    resume: bool = True
    """Continue from out/checkpoint.pt when it exists (its config must match)."""
    heads_only_from: Path | None = None
    """Probe mode: load this checkpoint, freeze everything but the state heads, re-fit
    them (the 'frozen latent' alternative of LatentModel's docstring)."""
    model: SlacModelConfig = field(default_factory=SlacModelConfig)
    """Model sizes and loss weights."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training-time corruption of the encoder's frames."""


def checkpoint_payload(model: LatentModel, geometry: SequenceGeometry,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dict that :func:`save_checkpoint` writes (weights and metadata)."""
    metadata = {'format': CHECKPOINT_FORMAT, 'model_config': model.config.to_dict(),
                'geometry': asdict(geometry), **(extra or {})}
    return {'model': model.state_dict(), 'metadata': metadata}


def save_checkpoint(path: Path, model: LatentModel, geometry: SequenceGeometry,
                    extra: dict[str, Any] | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    :param path: destination .pt file.
    :param model: the latent model.
    :param geometry: the camera and arm it was trained on.
    :param extra: more metadata (plain types only).
    :param optimizer: included for resuming when given.
    :return: ``path``.
    """
    payload = checkpoint_payload(model, geometry, extra)
    if optimizer is not None:
        payload['optimizer'] = optimizer.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix('.partial')
    torch.save(payload, partial)
    partial.replace(path)
    return path


def load_checkpoint(path: Path | str, expected_model: SlacModelConfig | None = None,
                    expected_geometry: SequenceGeometry | None = None
                    ) -> tuple[LatentModel, SequenceGeometry, dict[str, Any]]:
    """Read a checkpoint with ``weights_only=True`` and build its model.

    :param path: the .pt file.
    :param expected_model: when given, the checkpoint's model config must equal it.
    :param expected_geometry: when given, the checkpoint's geometry must equal it.
    :return: the model (eval mode), its geometry, and the whole payload.
    :raises FileNotFoundError: naming the missing path.
    :raises ValueError: with a sentence, for a file that is not a SLAC checkpoint or
        whose config or geometry differs from the expected one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'SLAC checkpoint {path} does not exist; train one with '
                                "'reacher perception train' or set the checkpoint path")
    payload = torch.load(path, map_location='cpu', weights_only=True)
    metadata = payload.get('metadata', {}) if isinstance(payload, dict) else {}
    if metadata.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path} is not a {CHECKPOINT_FORMAT} checkpoint '
                         f'(format {metadata.get("format")!r})')
    config = config_from_dict(SlacModelConfig, metadata['model_config'])
    geometry = SequenceGeometry(**metadata['geometry'])
    if expected_model is not None and config != expected_model:
        differ = sorted(key for key, value in expected_model.to_dict().items()
                        if metadata['model_config'].get(key) != value)
        raise ValueError(f'checkpoint {path} was trained with another model config '
                         f'(differs in {", ".join(differ)}); start a new run folder or '
                         'pass the same model options')
    if expected_geometry is not None and geometry != expected_geometry:
        raise ValueError(f'checkpoint {path} was trained on geometry {geometry}, but '
                         f'{expected_geometry} was expected')
    model = LatentModel(config)
    model.load_state_dict(payload['model'])
    model.eval()
    return model, geometry, payload


def load_probe_base(path: Path, expected_model: SlacModelConfig,
                    expected_geometry: SequenceGeometry) -> LatentModel:
    """The latent model whose heads a probe run (``heads_only_from``) re-fits.

    The checkpoint may differ from ``expected_model`` in ``state_weight`` only: the
    latent of the frozen alternative is trained on the ELBO alone (``state_weight=0``),
    and the probe needs a positive weight to fit the heads at all (with 0 their loss, and
    so their gradient, is zero). The returned model carries ``expected_model``.

    :param path: the .pt file.
    :param expected_model: the probe run's model config.
    :param expected_geometry: the data's geometry.
    :return: the model (train mode is up to the caller).
    :raises ValueError: as :func:`load_checkpoint`, naming the fields that differ.
    """
    model, _, payload = load_checkpoint(path, expected_geometry=expected_geometry)
    stored = replace(expected_model, state_weight=model.config.state_weight)
    if model.config != stored:
        differ = sorted(key for key, value in stored.to_dict().items()
                        if payload['metadata']['model_config'].get(key) != value)
        raise ValueError(f'checkpoint {path} was trained with another model config '
                         f'(differs in {", ".join(differ)}); pass the same model options '
                         '(state_weight may differ)')
    model.config = expected_model
    return model


def augment_schedule(config: TrainConfig, step: int) -> AugmentConfig:
    """The augmentation at ``step``: none for ``clean_updates``, then ramped up linearly."""
    ramp = min(max((step - config.clean_updates) / max(config.clean_updates, 1), 0.0), 1.0)
    return replace(config.augment, **{
        name: ramp * getattr(config.augment, name)
        for name in ('noise_probability', 'colour_probability', 'occlusion_probability',
                     'blank_probability')})


def cosine_learning_rate(config: TrainConfig, step: int) -> float:
    """Adam's step size at ``step``: a linear warm-up, then cosine down to a tenth.

    The warm-up (``warmup_updates``) is there because at 3e-3 from the first update the
    latent collapsed in a trial (KL ~2 nats, state heads at chance after 350 updates):
    Adam's first steps, normalised by a tiny second moment, were too large.
    """
    if step < config.warmup_updates:
        return config.learning_rate * (step + 1) / config.warmup_updates
    span = max(config.updates - config.warmup_updates, 1)
    progress = min((step - config.warmup_updates) / span, 1.0)
    return config.learning_rate * (0.1 + 0.45 * (1.0 + math.cos(math.pi * progress)))


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume training) the latent model; write checkpoints, logs and plots.

    :param config: data, run folder, schedule, model and augmentation.
    :param progress: show a tqdm bar.
    :return: the last logged metrics (``train/...``) plus ``wall_time_s`` and
        ``frames_seen``.
    :raises FileNotFoundError: if the data or the probe checkpoint is missing.
    :raises ValueError: if a checkpoint to resume has another config or geometry.
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dataset = SequenceDataset(config.data)
    if dataset.geometry.image_size != config.model.image_size:
        raise ValueError(f'the data has {dataset.geometry.image_size}px frames but '
                         f'model.image_size is {config.model.image_size}')
    config.out.mkdir(parents=True, exist_ok=True)
    model = LatentModel(config.model)
    start, wall_offset = 0, 0.0
    resume_path = config.out / 'checkpoint.pt'
    if config.heads_only_from is not None:
        model = load_probe_base(config.heads_only_from, config.model, dataset.geometry)
        model.train()
        parameters = list(model.state_head.parameters())
    else:
        parameters = list(model.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    if config.resume and resume_path.is_file():
        model, _, payload = load_checkpoint(resume_path, config.model, dataset.geometry)
        model.train()
        parameters = (list(model.state_head.parameters()) if config.heads_only_from
                      else list(model.parameters()))
        optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
        optimizer.load_state_dict(payload['optimizer'])
        start = int(payload['metadata']['updates'])
        wall_offset = float(payload['metadata']['wall_time_s'])
    (config.out / 'config.json').write_text(json.dumps(_plain(asdict(config)), indent=2))
    rng = np.random.default_rng(config.seed + start)
    generator = torch.Generator().manual_seed(config.seed + start)
    writer = SummaryWriter(str(config.out / 'tb'))
    writer.add_text('hyperparameters', '\n'.join(
        f'|{key}|{value}|' for key, value in _plain(asdict(config)).items()))
    metrics_file = (config.out / 'metrics.jsonl').open('a')
    frames_per_update = config.batch_size * config.sequence_length
    began = time.perf_counter()
    last: dict[str, Any] = {}

    def extra(step: int) -> dict[str, Any]:
        return {'updates': step, 'frames_seen': step * frames_per_update,
                'wall_time_s': wall_offset + time.perf_counter() - began,
                'train_config': _plain(asdict(config))}

    bar = tqdm(range(start, config.updates), initial=start, total=config.updates,
               desc='train', disable=not progress)
    for step in bar:
        for group in optimizer.param_groups:
            group['lr'] = cosine_learning_rate(config, step)
        images, actions, states = dataset.sample(rng, config.batch_size,
                                                 config.sequence_length)
        inputs = augment(images, augment_schedule(config, step), generator)
        losses, _ = model.losses(inputs, actions, states, targets=images)
        optimizer.zero_grad(set_to_none=True)
        (losses.loss_state if config.heads_only_from else losses.loss).backward()
        if config.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip_norm)
        optimizer.step()
        done = step + 1
        if done % config.log_every == 0 or done == config.updates:
            values = losses.as_floats()
            mse = losses.state_mse
            last = {f'train/{name}': value for name, value in values.items()
}
            # RMS error of the heads in their units: sin/cos, and millimetres.
            reach_mm = 1e3 * (dataset.geometry.upper_arm_length_m
                              + dataset.geometry.forearm_length_m)
            last['train/state_rms_sincos'] = float(mse[:4].mean().sqrt())
            last['train/state_rms_fingertip_mm'] = float(mse[4:6].mean().sqrt()) * reach_mm
            last['train/state_rms_goal_mm'] = float(mse[6:8].mean().sqrt()) * reach_mm
            last['train/learning_rate'] = optimizer.param_groups[0]['lr']
            for name, value in last.items():
                writer.add_scalar(name, value, done)
            metrics_file.write(json.dumps({'update': done, **last}) + '\n')
            metrics_file.flush()
            bar.set_postfix(kld=f"{values['loss_kld']:.1f}", image=f"{values['loss_image']:.0f}",
                            goal_mm=f"{last['train/state_rms_goal_mm']:.1f}")
        if done % config.checkpoint_every == 0 or done == config.updates:
            save_checkpoint(resume_path, model, dataset.geometry, extra(done), optimizer)
    bar.close()
    metrics_file.close()
    writer.close()
    final = extra(config.updates)
    save_checkpoint(config.out / 'final.pt', model, dataset.geometry, final)
    plot_losses(config.out / 'metrics.jsonl', config.out / 'loss_curves.png')
    plot_reconstructions(model, dataset, config, config.out / 'reconstructions.png')
    return {**last, 'wall_time_s': final['wall_time_s'], 'frames_seen': final['frames_seen']}


def _plain(value: Any) -> Any:
    """Paths to strings, recursively (JSON and weights_only checkpoints take plain types)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def plot_losses(metrics_path: Path, out: Path) -> Path:
    """Loss curves (one panel per term) from metrics.jsonl to a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line]
    names = ['train/loss_kld', 'train/loss_image', 'train/loss_state',
             'train/state_rms_goal_mm', 'train/state_rms_fingertip_mm',
             'train/state_rms_sincos']
    figure, axes = plt.subplots(2, 3, figsize=(12, 6))
    for axis, name in zip(axes.flat, names, strict=True):
        axis.plot([row['update'] for row in rows], [row[name] for row in rows])
        axis.set_title(name)
        axis.set_xlabel('update')
        if 'loss_image' not in name:
            axis.set_yscale('log')
    figure.tight_layout()
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return out


@torch.no_grad()
def plot_reconstructions(model: LatentModel, dataset: SequenceDataset, config: TrainConfig,
                         out: Path, sequences: int = 3) -> Path:
    """Rows of (clean frame, encoder input after augmentation, reconstruction) to a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    images, actions, states = dataset.sample(rng, sequences, config.sequence_length)
    inputs = augment(images, config.augment, torch.Generator().manual_seed(1))
    model.eval()
    _, reconstruction = model.losses(inputs, actions, states, targets=images)
    model.train()
    length = images.shape[1]
    figure, axes = plt.subplots(3 * sequences, length,
                                figsize=(length * 1.1, 3 * sequences * 1.15))
    labels = ('true', 'input', 'recon')
    for index in range(sequences):
        for row, frames in enumerate((images, inputs, reconstruction)):
            for step in range(length):
                axis = axes[3 * index + row, step]
                axis.imshow(frames[index, step].clamp(0, 1).permute(1, 2, 0).numpy())
                axis.set_xticks([])
                axis.set_yticks([])
                if step == 0:
                    axis.set_ylabel(labels[row], fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return out
