"""Accuracy and speed of the classical estimator on held-out random states.

Renders ``--frames`` states drawn as the env draws them (joint angles uniform in
[-pi, pi), goals per ``SimConfig.goal_sampling``) with ``ArmRenderer``, optionally adds
gaussian pixel noise, runs ``ClassicalEstimator`` on each frame and reports joint-angle,
fingertip and goal errors and the time per frame. Prints a markdown table and writes JSON.

    python benchmarks/perception_accuracy.py --frames 1000 --seed 12345
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path
import platform
import time
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import tyro

from reacher_common.geometry import ArmGeometry
from reacher_common.kinematics import wrap_angle
from reacher_perception.classical import ClassicalEstimator
from reacher_perception.config import PerceptionConfig
from reacher_sim.arm import ArmSim
from reacher_sim.config import SimConfig
from reacher_sim.render import ArmRenderer


@dataclass(frozen=True)
class Args:
    """Options of the perception accuracy benchmark."""

    frames: int = 1000
    """Number of random states to render and estimate, >= 1."""
    seed: int = 12345
    """Seed of the states and the noise (the tests use seeds below 100)."""
    out: Path = Path('benchmarks/results/perception_accuracy.json')
    """Where to write the JSON results (parent folders are made)."""
    noise: float = 0.0
    """Standard deviation of gaussian pixel noise, as a fraction of 255 (e.g. 0.02)."""
    image_size: int = 64
    """Camera image width = height, pixels."""
    goal_sampling: Literal['reachable', 'seed'] = 'reachable'
    """How goals are drawn (SimConfig.goal_sampling)."""
    warmup: int = 20
    """Frames estimated before timing starts (not counted)."""


def percentile(values: npt.NDArray[np.float64], q: float) -> float:
    """The q-th percentile of ``values`` as a float."""
    return float(np.percentile(values, q))


def run_benchmark(args: Args) -> dict[str, Any]:
    """Render, estimate and measure.

    :param args: the benchmark's options.
    :return: JSON-ready results: the options, the metrics and the software versions.
    :raises ValueError: for ``frames`` < 1 or a config out of range.
    """
    if args.frames < 1:
        raise ValueError(f'frames={args.frames} must be >= 1')
    geometry = ArmGeometry(image_size=args.image_size)
    config = PerceptionConfig(geometry=geometry)
    sim_config = SimConfig(geometry=geometry, goal_sampling=args.goal_sampling)
    arm, renderer = ArmSim(sim_config), ArmRenderer(geometry)
    estimator = ClassicalEstimator(config)
    rng = np.random.default_rng(args.seed)

    states, images = [], []
    for _ in range(args.frames):
        arm.reset(rng)
        image = renderer.render(arm.joint_positions, arm.goal)
        if args.noise > 0.0:
            noisy = image + rng.normal(0.0, args.noise * 255.0, image.shape)
            image = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        states.append((arm.joint_positions.copy(), arm.fingertip, arm.goal.copy()))
        images.append(image)

    for image in images[:args.warmup]:
        estimator.estimate(image)
    joint_errors, tip_errors, goal_errors, times_ms = [], [], [], []
    arm_missed = goal_missed = 0
    for (joints, fingertip, goal), image in zip(states, images, strict=True):
        estimator.reset()  # each frame on its own: no help from the last goal
        start = time.perf_counter_ns()
        estimate = estimator.estimate(image)
        times_ms.append((time.perf_counter_ns() - start) * 1e-6)
        arm_missed += not estimate.arm_visible
        goal_missed += not estimate.goal_visible
        joint_errors.append(np.degrees(np.abs(wrap_angle(estimate.joint_positions - joints))))
        tip_errors.append(1e3 * float(np.linalg.norm(estimate.fingertip - fingertip)))
        goal_errors.append(1e3 * float(np.linalg.norm(estimate.goal - goal)))

    joint = np.array(joint_errors)
    tip, goal_mm, times = np.array(tip_errors), np.array(goal_errors), np.array(times_ms)
    elbow = np.array([abs(float(wrap_angle(s[0][1]))) for s in states])
    folded = elbow > math.radians(150.0)
    metrics = {
        'joint_mae_deg': float(joint.mean()),
        'joint_p95_deg': percentile(joint.ravel(), 95),
        'joint_max_deg': float(joint.max()),
        'shoulder_mae_deg': float(joint[:, 0].mean()),
        'elbow_mae_deg': float(joint[:, 1].mean()),
        'folded_joint_mae_deg': float(joint[folded].mean()) if folded.any() else None,
        'folded_frames': int(folded.sum()),
        'fingertip_mean_mm': float(tip.mean()),
        'fingertip_p95_mm': percentile(tip, 95),
        'fingertip_max_mm': float(tip.max()),
        'goal_mean_mm': float(goal_mm.mean()),
        'goal_p95_mm': percentile(goal_mm, 95),
        'goal_max_mm': float(goal_mm.max()),
        'arm_not_found': arm_missed,
        'goal_not_found': goal_missed,
        'time_median_ms': percentile(times, 50),
        'time_p99_ms': percentile(times, 99),
        'pixel_mm': 1e3 * sim_config.geometry.arena_size_m / sim_config.geometry.image_size,
    }
    return {
        'benchmark': 'perception_accuracy',
        'estimator': 'classical',
        'args': {**asdict(args), 'out': str(args.out)},
        'metrics': metrics,
        'versions': {'python': platform.python_version(), 'numpy': np.__version__,
                     'opencv': cv2.__version__, 'machine': platform.machine()},
    }


def markdown_table(results: dict[str, Any]) -> str:
    """The results as a markdown table: one row per quantity."""
    m, args = results['metrics'], results['args']
    folded = ('n/a' if m['folded_joint_mae_deg'] is None
              else f"{m['folded_joint_mae_deg']:.3f}")
    rows = [
        ('joint angle, MAE (deg)', f"{m['joint_mae_deg']:.3f}"),
        ('joint angle, p95 (deg)', f"{m['joint_p95_deg']:.3f}"),
        ('joint angle, max (deg)', f"{m['joint_max_deg']:.3f}"),
        ('shoulder / elbow MAE (deg)', f"{m['shoulder_mae_deg']:.3f} / {m['elbow_mae_deg']:.3f}"),
        (f"folded poses (abs(q2) > 150 deg, n={m['folded_frames']}), MAE (deg)", folded),
        ('fingertip error, mean (mm)', f"{m['fingertip_mean_mm']:.3f}"),
        ('fingertip error, p95 (mm)', f"{m['fingertip_p95_mm']:.3f}"),
        ('fingertip error, max (mm)', f"{m['fingertip_max_mm']:.3f}"),
        ('goal error, mean (mm)', f"{m['goal_mean_mm']:.3f}"),
        ('goal error, p95 (mm)', f"{m['goal_p95_mm']:.3f}"),
        ('goal error, max (mm)', f"{m['goal_max_mm']:.3f}"),
        ('arm / goal not found (frames)', f"{m['arm_not_found']} / {m['goal_not_found']}"),
        ('inference time, median (ms)', f"{m['time_median_ms']:.3f}"),
        ('inference time, p99 (ms)', f"{m['time_p99_ms']:.3f}"),
    ]
    title = (f"classical estimator, {args['frames']} frames, {args['image_size']}x"
             f"{args['image_size']} ({m['pixel_mm']:.2f} mm/pixel), seed {args['seed']}, "
             f"noise {args['noise']:g}")
    width = max(len(name) for name, _ in rows)
    lines = [title, '', f"| {'quantity'.ljust(width)} | value |", f'|{"-" * (width + 2)}|-------|']
    lines += [f'| {name.ljust(width)} | {value} |' for name, value in rows]
    return '\n'.join(lines)


def main(args: Args) -> None:
    """Run the benchmark, print the table and write the JSON."""
    results = run_benchmark(args)
    print(markdown_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main(tyro.cli(Args))
