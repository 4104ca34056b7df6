"""Which family makes ``randomized`` hard: each sequence's scene with one family turned off.

``randomized`` draws every family at once. Per family alone the shipped SLAC model reads
95-100% of frames right, but under ``randomized`` it loses far more: the families
compound. This benchmark finds which. It collects ``--sequences`` held-out sequences in
``randomized`` (the same motions and scene stream as ``perception_scenes.py`` with the
same ``--seed``), then draws each sequence again in its own scene with one family off
(``reacher_sim.scene.Scene.without``: that family's fields back at the clean values, every
other value and the noise seed kept), and in the clean scene. Each estimator filters every
variant as the perception node does (``read_sequences``, rectified with the variant's
camera). Per estimator and variant: the lost rate (a joint > 10 deg or the goal > 20 mm
off), the confident rate (confidence >= ``--threshold``), the silent-failure rate, and how
many of the ``full`` scene's hard sequences (more than ``--hard`` of their frames lost) the
variant makes easy (under a tenth lost). Writes JSON and prints a markdown table:

    python benchmarks/randomized_families.py --sequences 40 \
        --out benchmarks/results/randomized_families.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import platform
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
import tyro

from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_perception.training.collect import collect_dataset, draw_scene
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.evaluate import read_sequences
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import Scene, SCENE_FAMILIES, SceneConfig


@dataclass(frozen=True)
class Args:
    """Lost, confident and silent rates of ``randomized`` with each family turned off."""

    sequences: int = 40
    """Held-out sequences (each its own randomized scene)."""
    steps: int = 64
    """Frames per sequence."""
    seed: int = 1000
    """Seed of the motions and scenes (training used 0; perception_scenes.py uses 1000)."""
    estimators: tuple[str, ...] = ('classical', 'slac')
    """Estimators to run on the same frames."""
    checkpoint: str = ''
    """SLAC checkpoint ('' = the shipped one)."""
    threshold: float = 0.5
    """Confidence below which an estimate is not acted on (policy_node's threshold)."""
    hard: float = 0.3
    """A ``full`` sequence with more than this share of its frames lost is hard."""
    out: Path = Path('benchmarks/results/randomized_families.json')
    """Where the JSON goes."""


VARIANTS: tuple[str, ...] = ('full', *(f'without {f}' for f in SCENE_FAMILIES), 'clean')
"""The scenes each sequence is read in: as drawn, with each family off, and clean."""


def variant_scene(scene: Scene, variant: str) -> Scene:
    """The drawn ``scene`` as ``variant`` (a name of :data:`VARIANTS`) shows it."""
    if variant == 'full':
        return scene
    if variant == 'clean':
        return Scene()
    return scene.without(variant.removeprefix('without '))


def measure(args: Args) -> dict[str, Any]:
    """Collect, re-render each variant, run the estimators; the JSON-ready results."""
    torch.set_num_threads(1)
    geometry = ArmGeometry()
    collect = CollectConfig(sequences=args.sequences, steps=args.steps, seed=args.seed,
                            scene=SceneConfig(name='randomized'))
    dataset = collect_dataset(collect, geometry, Timing())
    renderer = ArmRenderer(geometry)
    # The scenes collect drew, from the same stream (collect's scene stream is its own).
    scene_rng = np.random.default_rng([args.seed, 1])
    scenes = [draw_scene(collect, scene_rng, renderer.avoid_colours)
              for _ in range(args.sequences)]
    estimators = {name: make_estimator(PerceptionConfig(
        estimator=name, geometry=geometry, checkpoint=args.checkpoint if name == 'slac' else ''))
        for name in args.estimators}
    per_sequence: dict[tuple[str, str], np.ndarray] = {}
    rows = []
    for variant in tqdm(VARIANTS, desc='variants'):
        images = np.empty_like(dataset.images[:args.sequences])
        calibrations = []
        for index, scene in enumerate(scenes):
            renderer.set_scene(variant_scene(scene, variant))
            calibrations.append(renderer.calibration)
            for step in range(args.steps):
                images[index, step] = renderer.render(dataset.joint_positions[index, step],
                                                      dataset.goal[index, step])
        if variant == 'full':
            # The re-rendered scene is the one collected, frame for frame.
            assert np.array_equal(images, dataset.images[:args.sequences])
        for name, estimator in estimators.items():
            readout = read_sequences(estimator, dataset, args.sequences, images=images,
                                     calibrations=calibrations)
            lost, confident = readout.lost, readout.confident(args.threshold)
            per_sequence[name, variant] = lost.reshape(args.sequences, args.steps).mean(axis=1)
            rows.append({'variant': variant, 'estimator': name,
                         'lost_rate': float(lost.mean()),
                         'confident_rate': float(confident.mean()),
                         'silent_failure_rate': float((lost & confident).mean()),
                         'sequence_lost_rates': [round(float(v), 3)
                                                 for v in per_sequence[name, variant]]})
    for row in rows:
        full = per_sequence[row['estimator'], 'full']
        hard = full > args.hard
        row['hard_sequences'] = int(hard.sum())
        row['hard_made_easy'] = int((hard & (per_sequence[row['estimator'], row['variant']]
                                             < 0.1)).sum())
    return {'benchmark': 'randomized_families',
            'args': {**asdict(args), 'out': str(args.out)},
            'scenes': [repr(scene) for scene in scenes],
            'machine': {'cpus': os.cpu_count(), 'python': platform.python_version()},
            'rows': rows}


def table(results: dict[str, Any]) -> str:
    """Markdown: one row per variant, the estimators side by side."""
    names = list(dict.fromkeys(row['estimator'] for row in results['rows']))
    by = {(r['variant'], r['estimator']): r for r in results['rows']}
    head = ' | '.join(f'{n}: lost / confident / silent / hard made easy' for n in names)
    lines = [f'| variant | {head} |', '|---' * (len(names) + 1) + '|']
    for variant in VARIANTS:
        cells = [f"{by[variant, n]['lost_rate']:.1%} / {by[variant, n]['confident_rate']:.0%} / "
                 f"{by[variant, n]['silent_failure_rate']:.2%} / "
                 f"{by[variant, n]['hard_made_easy']} of {by[variant, n]['hard_sequences']}"
                 for n in names]
        lines.append(f"| {variant} | {' | '.join(cells)} |")
    return '\n'.join(lines)


def main() -> None:
    """Measure, print the table, write the JSON."""
    args = tyro.cli(Args)
    results = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    print(table(results))
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
