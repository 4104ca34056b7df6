"""What a SLAC latent knows: a linear probe of the filtered latent for goal, fingertip, joints.

The faithful SLAC agent learns from pixels and reward alone, so its latent carries the
goal only if the ELBO (or the reward factor) made it. This script asks each checkpoint's
latent model directly: on held-out sequences of the clean scene driven by the collector's
random policy (``reacher perception collect``'s, seed ``--seed``, the same frames for every
checkpoint), it filters each sequence (posterior means, as the perception node does),
fits a ridge regression (``linear``) and a small MLP (``mlp``, 2 x 256) from the latent
(z1, z2) to the goal, the fingertip and the joints' sin/cos on two thirds of the
sequences, and reports the errors on the other third.
A latent that does not carry the goal reads it no better than the constant guess (the
training frames' mean goal, the ``chance`` column). The first ``--skip`` frames of each
sequence are left out (the filter's start).

Checkpoints are perception checkpoints (``reacher perception train``, including
``--model.state-weight 0``: the ELBO alone) or SLAC agent checkpoints (``reacher policy
train --algo slac``), told apart by their format.

About 2.5 min per checkpoint on one thread, nearly all of it the MLP probe's full-batch
steps (``--mlp-updates``).

    python benchmarks/slac_latent_probe.py --checkpoints runs/slac/agent.pt \
        checkpoints/slac_reacher.pt --out benchmarks/results/slac_latent_probe.json
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import tyro

from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.slac.checkpoint import load_checkpoint
from reacher_perception.slac.latent import LatentModel
from reacher_perception.training.collect import collect_dataset
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import SequenceDataset
from reacher_policy.training.slac.agent import is_agent_checkpoint, SlacAgent


@dataclass(frozen=True)
class Args:
    """A linear probe of SLAC latents on the same held-out frames."""

    checkpoints: tuple[str, ...] = ('checkpoints/slac_reacher.pt',)
    """Perception or SLAC agent checkpoints (.pt)."""
    sequences: int = 150
    """Held-out sequences of 48 frames (two thirds fit the probe, a third test it)."""
    seed: int = 55
    """Collector seed of the held-out sequences."""
    skip: int = 4
    """Frames left out at the start of each sequence."""
    ridge: float = 1e-3
    """L2 penalty of the linear probe's least squares."""
    mlp_updates: int = 3000
    """Full-batch Adam steps of the MLP probe."""
    out: Path = Path('benchmarks/results/slac_latent_probe.json')
    """Where to write the JSON results."""


def load_latent_model(path: str) -> LatentModel:
    """The latent model of a perception or SLAC agent checkpoint (weights only)."""
    if is_agent_checkpoint(path):
        return SlacAgent.load(path).latent.eval()
    return load_checkpoint(Path(path))[0].eval()


def held_out(args: Args) -> SequenceDataset:
    """Random-policy sequences of the clean scene (in memory; nothing left on disk)."""
    return collect_dataset(CollectConfig(sequences=args.sequences, ik_fraction=0.0,
                                         seed=args.seed), ArmGeometry(), Timing())


def fit_linear(inputs: npt.NDArray[np.float64], targets: npt.NDArray[np.float64], ridge: float
               ) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    """Ridge regression with a bias; returns the predictor."""
    design = np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1)
    weights = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]),
                              design.T @ targets)
    return lambda x: np.concatenate([x, np.ones((len(x), 1))], axis=1) @ weights


def fit_mlp(inputs: npt.NDArray[np.float64], targets: npt.NDArray[np.float64], updates: int
            ) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    """A 2 x 256 ReLU MLP on standardised inputs (Adam, full batch, weight decay)."""
    torch.manual_seed(0)
    mean, std = inputs.mean(0), inputs.std(0) + 1e-6
    x = torch.from_numpy((inputs - mean) / std).float()
    y = torch.from_numpy(targets).float()
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, y.shape[1]))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(updates):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()

    def predict(new: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        with torch.inference_mode():
            return net(torch.from_numpy((new - mean) / std).float()).double().numpy()
    return predict


def errors(predicted: npt.NDArray[np.float64], truth: npt.NDArray[np.float64],
           joints: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.float64]]:
    """Per-frame goal and fingertip errors (mm) and the worse joint's error (deg)."""
    angles = np.arctan2(predicted[:, 4:6], predicted[:, 6:8])
    return {'goal_mm': 1e3 * np.linalg.norm(predicted[:, 0:2] - truth[:, 0:2], axis=1),
            'fingertip_mm': 1e3 * np.linalg.norm(predicted[:, 2:4] - truth[:, 2:4], axis=1),
            'joint_deg': np.degrees(np.abs(np.angle(np.exp(1j * (angles - joints))))).max(1)}


def probe(model: LatentModel, data: SequenceDataset, args: Args) -> dict[str, float]:
    """Fit and test both probes; errors in mm and degrees (medians and 90th percentiles)."""
    with torch.inference_mode():
        frames = torch.from_numpy(data.images).permute(0, 1, 4, 2, 3).float() / 255.0
        count, steps = frames.shape[:2]
        features = model.encoder(frames.flatten(0, 1)).unflatten(0, (count, steps))
        z1, z2 = model.filter_sequence(features, torch.from_numpy(data.actions[:, :-1]))
    latent = torch.cat([z1, z2], -1)[:, args.skip:].flatten(0, 1).numpy().astype(np.float64)
    joints = data.joint_positions[:, args.skip:].reshape(-1, 2)
    targets = np.concatenate([data.goal[:, args.skip:].reshape(-1, 2),
                              data.fingertip[:, args.skip:].reshape(-1, 2),
                              np.sin(joints), np.cos(joints)], axis=1)
    split = (count * 2 // 3) * (steps - args.skip)
    truth = targets[split:]
    results = {'chance_goal_mm': 1e3 * np.linalg.norm(
        truth[:, 0:2] - targets[:split, 0:2].mean(0), axis=1)}
    for kind, predictor in (('linear', fit_linear(latent[:split], targets[:split], args.ridge)),
                            ('mlp', fit_mlp(latent[:split], targets[:split], args.mlp_updates))):
        for name, values in errors(predictor(latent[split:]), truth,
                                            joints[split:].astype(np.float64)).items():
            results[f'{kind}_{name}'] = values
    return {f'{name}_{label}': float(np.percentile(values, q))
            for name, values in results.items() for label, q in (('median', 50), ('p90', 90))}


def main() -> None:
    args = tyro.cli(Args)
    torch.set_num_threads(1)
    data = held_out(args)
    rows = [{'checkpoint': path, **probe(load_latent_model(path), data, args)}
            for path in args.checkpoints]
    print('| checkpoint | probe | goal mm (median / p90) | fingertip mm | worse joint deg |')
    print('|---|---|---|---|---|')
    for row in rows:
        for kind in ('linear', 'mlp'):
            cells = ' | '.join(f"{row[f'{kind}_{name}_median']:.1f} / "
                               f"{row[f'{kind}_{name}_p90']:.1f}"
                               for name in ('goal_mm', 'fingertip_mm', 'joint_deg'))
            print(f"| {row['checkpoint']} | {kind} | {cells} |")
    chance = rows[0]['chance_goal_mm_median'] if rows else float('nan')
    print(f"\nthe constant guess (the fitted frames' mean goal): {chance:.1f} mm median")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({'args': {**asdict(args), 'out': str(args.out)},
                                    'rows': rows}, indent=2) + '\n')
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
