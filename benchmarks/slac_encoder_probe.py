"""How precisely can the SLAC encoder read the state from one frame, with no latent at all?

A diagnostic for the SLAC table in docs/slac.md: the frame encoder of the latent model
(``reacher_perception.slac.network.Encoder``, the shipped checkpoint's sizes, 16
spatial-softmax keypoints) with an MLP head (``network.mlp``) is trained by plain
supervised regression of ``STATE_NAMES`` on single frames, clean for ``--clean-updates``
and then with gaussian pixel noise on half the frames (std uniform up to
``--noise-std-max``). It has no ELBO, no KL and no filter, so its errors bound what the
encoder alone delivers at this budget; the latent model's heads read the state through
the encoder, q(z1 | x, z2, a) and the filter, so they are not expected to do better per
frame. Errors are measured on held-out sequences (another seed), clean and with noise of
the benchmark's two levels, and also on training frames (to tell under-fitting from
over-fitting).

    python benchmarks/slac_encoder_probe.py --minutes 10
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
from pathlib import Path
import platform
import time
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
import tyro

from reacher_common.geometry import ArmGeometry
from reacher_common.kinematics import wrap_angle
from reacher_perception.slac.config import SlacModelConfig
from reacher_perception.slac.network import Encoder, mlp
from reacher_perception.training.collect import collect_dataset
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset


@dataclass(frozen=True)
class Args:
    """Options of the per-frame encoder probe."""

    data: Path = Path('data/slac/train')
    """Training shards (from 'reacher perception collect')."""
    minutes: float = 10.0
    """Wall-clock training budget."""
    batch_size: int = 128
    """Frames per update."""
    learning_rate: float = 3e-3
    """Adam's step size (after 300 updates of linear warm-up)."""
    clean_updates: int = 1500
    """Updates on clean frames before the noise starts."""
    noise_std_max: float = 0.25
    """Largest training noise std, [0, 1] pixel scale."""
    eval_every: int = 500
    """Updates between evaluations."""
    held_out_sequences: int = 20
    """Held-out sequences of 64 frames, collected with --seed."""
    seed: int = 1000
    """Seed of the held-out data (training data used 0)."""
    noise_std: float = 0.08
    """The benchmark's noise std (``slac_vs_classical.py``); also evaluated at 3x."""
    out: Path = Path('benchmarks/results/slac_encoder_probe.json')
    """Where the JSON goes."""


def evaluate(encoder: Encoder, head: torch.nn.Module, dataset: SequenceDataset,
             sequences: int, noise_std: float, reach_m: float) -> dict[str, float]:
    """Joint MAE (deg) and goal error (mm) over ``sequences`` sequences, fixed noise seed."""
    generator = torch.Generator().manual_seed(5)
    joint_errors, goal_errors = [], []
    with torch.no_grad():
        for index in range(min(sequences, len(dataset))):
            frames = torch.from_numpy(dataset.images[index]).permute(0, 3, 1, 2).float() / 255
            if noise_std:
                noisy = frames + noise_std * torch.randn(frames.shape, generator=generator)
                frames = noisy.mul(255).round().clamp(0, 255) / 255
            estimate = head(encoder(frames)).numpy()
            truth = dataset.states[index]
            goal_errors.append(1e3 * reach_m * np.linalg.norm(estimate[:, 6:8] - truth[:, 6:8],
                                                              axis=1))
            joints = np.arctan2(estimate[:, [0, 2]], estimate[:, [1, 3]])
            true_joints = np.arctan2(truth[:, [0, 2]], truth[:, [1, 3]])
            joint_errors.append(np.degrees(np.abs(wrap_angle(joints - true_joints))).mean(axis=1))
    return {'joint_mae_deg': float(np.concatenate(joint_errors).mean()),
            'goal_mm': float(np.concatenate(goal_errors).mean())}


def run(args: Args) -> dict[str, Any]:
    """Train the probe for ``args.minutes`` and evaluate it every ``eval_every`` updates."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = SequenceDataset(args.data)
    held_out = collect_dataset(CollectConfig(sequences=args.held_out_sequences, steps=64,
                                             seed=args.seed),
                               train.geometry, train.timing)
    geometry: ArmGeometry = train.geometry
    reach_m = geometry.upper_arm_length_m + geometry.forearm_length_m
    sizes = SlacModelConfig(keypoints=16)
    encoder = Encoder(sizes.image_size, sizes.base_depth, sizes.feature_dim, sizes.keypoints)
    head = mlp(encoder.output_dim, sizes.state_dim, sizes.hidden_units)
    parameters = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(parameters, lr=args.learning_rate)
    sequences, steps = train.images.shape[:2]
    evaluations: list[dict[str, Any]] = []

    def record(update: int, seconds: float) -> None:
        row: dict[str, Any] = {'update': update, 'wall_time_s': round(seconds, 1)}
        for name, std in (('clean', 0.0), ('noise', args.noise_std),
                          ('noise_strong', 3 * args.noise_std)):
            row[name] = evaluate(encoder, head, held_out, args.held_out_sequences, std, reach_m)
        row['train_clean'] = evaluate(encoder, head, train, args.held_out_sequences, 0.0,
                                      reach_m)
        evaluations.append(row)
        tqdm.write(json.dumps(row))

    start = time.monotonic()
    update = 0
    with tqdm(total=round(args.minutes * 60), unit='s', desc='probe') as bar:
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            for group in optimizer.param_groups:
                group['lr'] = args.learning_rate * min(1.0, (update + 1) / 300)
            rows = rng.integers(0, sequences, args.batch_size)
            columns = rng.integers(0, steps, args.batch_size)
            frames = torch.from_numpy(train.images[rows, columns]).permute(0, 3, 1, 2)
            frames = frames.float() / 255
            states = torch.from_numpy(train.states[rows, columns])
            if update >= args.clean_updates:
                std = args.noise_std_max * torch.rand(args.batch_size, 1, 1, 1)
                std = std * (torch.rand(args.batch_size, 1, 1, 1) < 0.5)
                frames = (frames + std * torch.randn_like(frames)).clamp(0, 1)
            loss = (head(encoder(frames)) - states).pow(2).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 10.0)
            optimizer.step()
            update += 1
            bar.update(round(elapsed) - bar.n)
            if update % args.eval_every == 0:
                record(update, time.monotonic() - start)
    record(update, time.monotonic() - start)
    return {'benchmark': 'slac_encoder_probe',
            'args': {key: str(value) for key, value in asdict(args).items()},
            'encoder': {'keypoints': sizes.keypoints, 'base_depth': sizes.base_depth,
                        'feature_dim': sizes.feature_dim},
            'evaluations': evaluations,
            'versions': {'python': platform.python_version(), 'torch': torch.__version__}}


def main() -> None:
    """Run, print the last evaluation, write the JSON."""
    args = tyro.cli(Args)
    results = run(args)
    last = results['evaluations'][-1]
    print('| frames | joint MAE (deg) | goal (mm) |\n|---|---|---|')
    for name in ('clean', 'noise', 'noise_strong', 'train_clean'):
        print(f"| {name} | {last[name]['joint_mae_deg']:.2f} | {last[name]['goal_mm']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
