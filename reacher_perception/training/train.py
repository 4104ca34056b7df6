"""Training of the SLAC latent model: updates, schedules, resuming, plots.

The shipped checkpoint ``checkpoints/slac_reacher.pt`` is the clean-trained model::

    reacher perception collect --out data/slac/train --collect.sequences 500 \
        --collect.seed 0
    reacher perception train --data data/slac/train --out runs/slac --updates 7000 \
        --model.keypoints 16 --model.state-weight 100000 --clean-updates 2000 \
        --augment.noise-probability 0.3 --augment.noise-std-max 0.25 \
        --augment.occlusion-probability 0.25 --augment.blank-probability 0.25

(1455 s on one CPU core) fine-tuned across scenes in two stages (``--init-from
runs/slac/final.pt --updates 3000 --learning-rate 1e-3 --warmup-updates 200
--clean-updates 300``, then from that result ``--learning-rate 5e-4 --clean-updates 0``,
on data collected in scenes with texture and JPEG held out; 764 + 785 s of CPU), then
given its
confidence (``reacher perception confidence``, :mod:`.confidence`); every command is in
checkpoints/README.md and docs/slac.md. With scene data (``clean_images`` stored), the
decoder reconstructs the clean frames and the encoder's windows ramp from clean to their
scenes after ``clean_updates`` (:func:`scene_share`). A run from scratch on the scene
data lost the goal when the scenes came in (~23 mm on held-out clean frames after 6000
of 10 000 updates, against 6.3 mm fine-tuned; docs/slac.md, "From scratch vs
fine-tuned").

The checkpoint format is :mod:`reacher_perception.slac.checkpoint`'s; a run folder holds
the resumable ``checkpoint.pt`` (with the optimizer) and ``final.pt``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
import json
import math
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch

from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.weights import load_checkpoint_payload
from reacher_perception.background import BackgroundNormalizer
from reacher_perception.slac.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    SLAC_CHECKPOINT_FORMATS,
)
from reacher_perception.slac.config import SlacModelConfig
from reacher_perception.slac.latent import LatentModel
from reacher_perception.training.augment import augment, repaint
from reacher_perception.training.config import AugmentConfig, SlacTrainConfig
from reacher_perception.training.dataset import SequenceDataset
from reacher_perception.training.warm_start import load_warm_start


def load_probe_base(path: Path, expected_model: SlacModelConfig,
                    expected_geometry: ArmGeometry, expected_timing: Timing) -> LatentModel:
    """The latent model whose heads a probe run (``heads_only_from``) re-fits.

    The checkpoint may differ from ``expected_model`` in ``state_weight`` only: the
    latent of the frozen alternative is trained on the ELBO alone (``state_weight=0``),
    and the probe needs a positive weight to fit the heads at all (with 0 their loss, and
    so their gradient, is zero). The returned model carries ``expected_model``.

    :param path: the .pt file.
    :param expected_model: the probe run's model config.
    :param expected_geometry: the data's geometry.
    :param expected_timing: the data's frame period.
    :return: the model (train mode is up to the caller).
    :raises ValueError: as :func:`load_checkpoint`, naming the fields that differ.
    """
    model, _, _, payload = load_checkpoint(path, expected_geometry=expected_geometry,
                                           expected_timing=expected_timing)
    stored = replace(expected_model, state_weight=model.config.state_weight)
    if model.config != stored:
        differ = sorted(key for key, value in stored.to_dict().items()
                        if payload['metadata']['model_config'].get(key) != value)
        raise ValueError(f'checkpoint {path} was trained with another model config '
                         f'(differs in {", ".join(differ)}); pass the same model options '
                         '(state_weight may differ)')
    model.config = expected_model
    return model


def augment_schedule(config: SlacTrainConfig, step: int) -> AugmentConfig:
    """The augmentation at ``step``: none for ``clean_updates``, then ramped up linearly."""
    ramp = min(max((step - config.clean_updates) / max(config.clean_updates, 1), 0.0), 1.0)
    return replace(config.augment, **{
        name: ramp * getattr(config.augment, name)
        for name in ('noise_probability', 'colour_probability', 'occlusion_probability',
                     'blank_probability')})


def scene_share(config: SlacTrainConfig, step: int) -> float:
    """Share of windows the encoder sees in their scene (the rest clean) at ``step``.

    Data collected in scenes (``clean_images`` stored) is shown clean for
    ``clean_updates``, then its scenes ramp in with the augmentation: as with corrupted
    frames, an encoder that must first find the arm on random backgrounds learns slowly.
    """
    return min(max((step - config.clean_updates) / max(config.clean_updates, 1), 0.0), 1.0)


def mix_scenes(scenes: torch.Tensor, clean: torch.Tensor, share: float,
               generator: torch.Generator) -> torch.Tensor:
    """Each window in its scene with chance ``share``, else clean.

    :param scenes: (B, L, 3, H, W) the frames in their scenes.
    :param clean: (B, L, 3, H, W) the same frames in the clean scene.
    :param share: in [0, 1].
    :param generator: the source of randomness.
    :return: (B, L, 3, H, W).
    """
    pick = torch.rand(scenes.shape[0], generator=generator) < share
    return torch.where(pick.view(-1, 1, 1, 1, 1), scenes, clean)


def cosine_learning_rate(config: SlacTrainConfig, step: int) -> float:
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


def train(config: SlacTrainConfig, progress: bool = True) -> dict[str, Any]:
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
    if config.init_from is not None:
        clean = dataset.clean_images
        model = load_warm_start(config.init_from, config.model, dataset.geometry,
                                dataset.timing, clean[:64, ::8].reshape(-1, *clean.shape[2:]))
    if config.heads_only_from is not None:
        model = load_probe_base(config.heads_only_from, config.model, dataset.geometry,
                                dataset.timing)
        model.train()
        parameters = list(model.state_head.parameters())
    else:
        parameters = list(model.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    if config.resume and resume_path.is_file():
        model, _, _, payload = load_checkpoint(resume_path, config.model, dataset.geometry,
                                               dataset.timing)
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
    scene_families = seen_scene_families(dataset, config.init_from or config.heads_only_from)
    normalize = (BackgroundNormalizer(dataset.geometry.image_size)
                 if config.normalize_background else None)
    began = time.perf_counter()
    last: dict[str, Any] = {}

    def extra(step: int) -> dict[str, Any]:
        recorded = {} if scene_families is None else {'scene_families': scene_families}
        return {'updates': step, 'frames_seen': step * frames_per_update,
                'wall_time_s': wall_offset + time.perf_counter() - began,
                'train_config': _plain(asdict(config)), **recorded}

    bar = tqdm(range(start, config.updates), initial=start, total=config.updates,
               desc='train', disable=not progress)
    for step in bar:
        for group in optimizer.param_groups:
            group['lr'] = cosine_learning_rate(config, step)
        scenes, images, actions, states = dataset.sample_with_clean(
            rng, config.batch_size, config.sequence_length)
        if dataset.clean_images is not dataset.images:
            scenes = mix_scenes(scenes, images, scene_share(config, step), generator)
        inputs = augment(scenes, augment_schedule(config, step), generator)
        if normalize is not None:
            inputs = repaint(inputs, normalize)
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
            save_checkpoint(resume_path, model, dataset.geometry, dataset.timing, extra(done),
                            optimizer)
    bar.close()
    metrics_file.close()
    writer.close()
    final = extra(config.updates)
    save_checkpoint(config.out / 'final.pt', model, dataset.geometry, dataset.timing, final)
    plot_losses(config.out / 'metrics.jsonl', config.out / 'loss_curves.png')
    plot_reconstructions(model, dataset, config, config.out / 'reconstructions.png',
                         normalize=normalize)
    return {**last, 'wall_time_s': final['wall_time_s'], 'frames_seen': final['frames_seen']}


def seen_scene_families(dataset: SequenceDataset, warm_start: Path | None
                        ) -> list[str] | None:
    """The scene families a model has seen: its data's, and its warm start's before it.

    :param dataset: the training data (``SequenceDataset.scene_families``).
    :param warm_start: the checkpoint training starts from (``--init-from`` or
        ``--heads-only-from``), or None.
    :return: sorted family names for the checkpoint's ``scene_families`` metadata; None
        when the data or the warm start does not record them.
    :raises FileNotFoundError, ValueError: as ``load_checkpoint_payload`` for the warm start.
    """
    families = dataset.scene_families
    if families is None:
        return None
    if warm_start is not None:
        _, metadata = load_checkpoint_payload(warm_start, 'SLAC checkpoint',
                                              SLAC_CHECKPOINT_FORMATS)
        before = metadata.get('scene_families')
        if before is None:
            return None
        families = (*families, *before)
    return sorted(set(families))


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
def plot_reconstructions(model: LatentModel, dataset: SequenceDataset, config: SlacTrainConfig,
                         out: Path, sequences: int = 3,
                         normalize: BackgroundNormalizer | None = None) -> Path:
    """Rows of (clean frame, encoder input after augmentation, reconstruction) to a PNG.

    ``normalize``: the run's normaliser (``normalize_background``), which repaints the
    input row as training did.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    scenes, images, actions, states = dataset.sample_with_clean(rng, sequences,
                                                                config.sequence_length)
    inputs = augment(scenes, config.augment, torch.Generator().manual_seed(1))
    if normalize is not None:
        inputs = repaint(inputs, normalize)
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
