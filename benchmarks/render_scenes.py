"""Render time per scene: what each scene family costs the camera, on one core.

Renders ``--frames`` 64x64 frames of random poses in each named scene (a new scene drawn
every ``--frames-per-scene`` frames, as episodes would), and reports the median and p99
time per frame and their ratio to ``clean`` measured in the same run. Writes JSON and
prints a markdown table:

    python benchmarks/render_scenes.py --frames 4000 --out benchmarks/results/render_scenes.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import platform
import time

import numpy as np
import tyro

from reacher_common.geometry import ArmGeometry
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import SceneConfig, SCENES


@dataclass(frozen=True)
class Args:
    """Render time per scene, clean included, on one core."""

    frames: int = 4000
    """Frames rendered per scene."""
    frames_per_scene: int = 200
    """Frames between two scene draws (an episode's length)."""
    image_size: int = 64
    """Frame width = height, pixels."""
    seed: int = 0
    """Seed of the poses and the scenes."""
    out: Path = Path('benchmarks/results/render_scenes.json')
    """Where the JSON goes."""


def run(args: Args) -> dict:
    """Time every scene; return the JSON-ready results."""
    import cv2

    cv2.setNumThreads(1)
    renderer = ArmRenderer(ArmGeometry(image_size=args.image_size))
    rows = []
    for name in SCENES:
        rng = np.random.default_rng(args.seed)
        config = SceneConfig(name=name)
        poses = rng.uniform(-np.pi, np.pi, (args.frames, 2))
        goals = rng.uniform(-0.15, 0.15, (args.frames, 2))
        times = np.empty(args.frames)
        for index in range(args.frames):
            if index % args.frames_per_scene == 0:
                renderer.set_scene(config.sample(rng, renderer.avoid_colours))
            start = time.perf_counter()
            renderer.render(poses[index], goals[index])
            times[index] = time.perf_counter() - start
        rows.append({'scene': name, 'median_ms': float(np.median(times) * 1e3),
                     'p99_ms': float(np.percentile(times, 99) * 1e3)})
    clean = rows[0]['median_ms']
    for row in rows:
        row['ratio_to_clean'] = row['median_ms'] / clean
    return {'benchmark': 'render_scenes', 'args': {**asdict(args), 'out': str(args.out)},
            'machine': {'cpus': os.cpu_count(), 'python': platform.python_version()},
            'rows': rows}


def table(results: dict) -> str:
    """The markdown table of the results."""
    lines = ['| scene | median (ms) | p99 (ms) | median / clean |', '|---|---|---|---|']
    lines += [f"| {r['scene']} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} | "
              f"{r['ratio_to_clean']:.2f} |" for r in results['rows']]
    return '\n'.join(lines)


def main() -> None:
    """Run, print the table, write the JSON."""
    args = tyro.cli(Args)
    results = run(args)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
