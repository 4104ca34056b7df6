"""Where SLAC loses the arm across scenes: scene variants, several checkpoints, same frames.

``perception_scenes.py`` measures the named scenes; this script splits them to find the
cause of a failure, for one or more SLAC checkpoints (``--checkpoints``, '' = the shipped
one) on the same held-out frames (seed ``--seed``, as ``perception_scenes.py``, so its
named-scene rows equal that script's). Variants (``VARIANTS``): every named scene;
``randomized`` with families turned off (``rand-no-tex-jpeg``: the training distribution
of the shipped checkpoint, whose data held texture and JPEG out; ``tj-no-X``: that, less
family X too); the camera family's parts alone (``cam-shift``, ``cam-roll``,
``cam-scale``). Per variant and checkpoint: joint MAE (deg), goal error (mm), the lost
rate (a joint > 10 deg or the goal > 20 mm off), split into the shoulder, the elbow and the
goal, the confident rate and silent failures (lost and confident; a checkpoint without a
confidence is always taken at its word). Frames are filtered as the perception node does.

    python benchmarks/slac_scene_ablation.py --checkpoints '' data/runs/x/final.pt \
        --variants clean camera cam-shift randomized rand-no-tex-jpeg   # ~1 min
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import Any

import torch
import tyro

from reacher_common.estimate_msgs import LOST_GOAL_MM, LOST_JOINT_DEG
from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_perception.training.collect import collect_dataset
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.evaluate import read_sequences
from reacher_sim.scene import SCENE_FAMILIES, SceneConfig, SCENES

VARIANTS: dict[str, tuple[SceneConfig, tuple[str, ...]]] = {
    **{name: (SceneConfig(name=name), ()) for name in SCENES},
    'rand-no-tex-jpeg': (SceneConfig(name='randomized'), ('texture', 'jpeg')),
    **{f'tj-no-{family}': (SceneConfig(name='randomized'), ('texture', 'jpeg', family))
       for family in SCENE_FAMILIES if family not in ('texture', 'jpeg')},
    'cam-shift': (SceneConfig(name='camera', roll_max_deg=0.0, scale_max=0.0), ()),
    'cam-roll': (SceneConfig(name='camera', shift_max_px=0.0, scale_max=0.0), ()),
    'cam-scale': (SceneConfig(name='camera', shift_max_px=0.0, roll_max_deg=0.0), ()),
}
"""Variant name -> (scene, families held out of it)."""


@dataclass(frozen=True)
class Args:
    """Scene variants x SLAC checkpoints on the same held-out frames."""

    checkpoints: tuple[str, ...] = ('',)
    """SLAC checkpoints ('' = the shipped one)."""
    variants: tuple[str, ...] = ('clean', 'background', 'camera', 'randomized',
                                 'rand-no-tex-jpeg')
    """Variants of ``VARIANTS`` to measure."""
    sequences: int = 16
    """Held-out sequences per variant."""
    steps: int = 64
    """Frames per sequence."""
    seed: int = 1000
    """Seed of the held-out motions and scenes."""
    threshold: float = 0.5
    """Confidence below which an estimate is not acted on."""
    out: Path = Path('benchmarks/results/slac_scene_ablation.json')
    """Where the JSON goes."""


def measure(args: Args) -> dict[str, Any]:
    """Collect each variant's frames once, run every checkpoint on them."""
    torch.set_num_threads(1)
    rows = []
    for variant in args.variants:
        scene, held_out = VARIANTS[variant]
        data = collect_dataset(CollectConfig(sequences=args.sequences, steps=args.steps,
                                             seed=args.seed, scene=scene, held_out=held_out),
                               ArmGeometry(), Timing())
        for checkpoint in args.checkpoints:
            estimator = make_estimator(PerceptionConfig(
                estimator='slac', geometry=data.geometry, checkpoint=checkpoint))
            readout = read_sequences(estimator, data)
            joints, goals = readout.joint_error_deg, readout.goal_error_mm
            shoulder, elbow = joints[:, 0] > LOST_JOINT_DEG, joints[:, 1] > LOST_JOINT_DEG
            goal_lost = goals > LOST_GOAL_MM
            lost, confident = readout.lost, readout.confident(args.threshold)
            row: dict[str, Any] = {'variant': variant, 'checkpoint': checkpoint or 'shipped',
                   'joint_mae_deg': float(joints.mean()), 'goal_mm': float(goals.mean()),
                   'lost_rate': float(lost.mean()),
                   'lost_shoulder_rate': float(shoulder.mean()),
                   'lost_elbow_rate': float(elbow.mean()),
                   'lost_goal_rate': float(goal_lost.mean()),
                   'confident_rate': float(confident.mean()),
                   'silent_failure_rate': float((lost & confident).mean()),
                   'frames': int(lost.size)}
            rows.append(row)
            print(f"{variant:17s} {row['checkpoint'][-32:]:32s} joint "
                  f"{row['joint_mae_deg']:6.2f} deg  goal {row['goal_mm']:6.1f} mm  lost "
                  f"{row['lost_rate']:6.1%} (shoulder {row['lost_shoulder_rate']:.1%}, elbow "
                  f"{row['lost_elbow_rate']:.1%}, goal {row['lost_goal_rate']:.1%})  "
                  f"confident {row['confident_rate']:6.1%}  silent "
                  f"{row['silent_failure_rate']:6.2%}", flush=True)
    return {'benchmark': 'slac_scene_ablation',
            'args': {**asdict(args), 'out': str(args.out)},
            'thresholds': {'joint_deg': LOST_JOINT_DEG, 'goal_mm': LOST_GOAL_MM},
            'rows': rows}


def main() -> None:
    """Measure, write the JSON."""
    args = tyro.cli(Args)
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        raise SystemExit(f'unknown variant(s) {", ".join(unknown)}; one of '
                         f'{", ".join(VARIANTS)}')
    results = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f'written to {args.out}')


if __name__ == '__main__':
    main()
