"""The confidence stop in a closed loop without ROS: how often it halts the arm, and on what.

The simulator's task (a new goal after each success or after ``--goal-timeout``), the
renderer in a scene, an estimator and the policy node's own ``PolicyLoop`` (IK and PID,
with ``min_confidence``), ticked once per camera frame. Per threshold: goals reached and
timed out, the share of frames the arm was halted as unsure, how wrong the halted frames'
estimates really were (a frame is wrong above 10 deg or 20 mm, as in
``perception_scenes.py``), the share of acted-on frames that were wrong, and each goal's
own figures, with why each unreached goal timed out (:func:`timeout_causes`). A goal
estimate outside the arena is clipped into it (the node would drop that frame). It asks
whether an estimator's confidence is calibrated on the states its own loop visits (the
arm at rest, the fingertip over the goal), which held-out dataset frames do not cover.

    python benchmarks/loop_confidence.py --estimator slac --thresholds 0.5 0.2 0.0 \
        --scenes clean randomized
    python benchmarks/loop_confidence.py --controller slac --seeds 0 1 2   # all-SLAC
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import sys

import numpy as np
from scipy.stats import binomtest
import tyro

from reacher_common.camera_calibration import Rectifier
from reacher_common.estimate_msgs import LOST_GOAL_MM, LOST_JOINT_DEG
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.loop import PerceivedState, PolicyLoop
from reacher_sim.config import SimConfig
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import SceneConfig
from reacher_sim.task import ReachingTask


@dataclass
class Args:
    """Closed loop without ROS, per confidence threshold."""

    estimator: str = 'slac'
    """Perception backend ('classical' or 'slac')."""
    controller: str = 'ik'
    """policy_node's controller: 'ik', or 'slac' (the shipped actor on the SLAC filter's
    latent; needs ``--estimator slac``)."""
    checkpoint: str = ''
    """The estimator's weights ('' = the shipped ones)."""
    test_time_symmetries: int = PerceptionConfig().test_time_symmetries
    """SLAC's filters, one per symmetry of the square (1, 2, 4 or 8; perception_node's
    ``test_time_symmetries``)."""
    thresholds: tuple[float, ...] = (0.5, 0.2, 0.0)
    """Values of policy_node's ``min_confidence`` to run."""
    budgets: tuple[float, ...] = (PolicyConfig().unsure_motion_budget_rad,)
    """Values of policy_node's ``unsure_motion_budget_rad`` to run with each threshold
    (how far the arm may move on unsure estimates that dead reckoning corroborates)."""
    seconds: float = 60.0
    """Simulated seconds per threshold and seed."""
    seeds: tuple[int, ...] = (0,)
    """Task seeds (goals, start pose, scenes)."""
    scenes: tuple[str, ...] = ('clean',)
    """Scenes (reacher_sim.scene.SCENES), each run on its own; a new one drawn with each
    goal."""
    goal_timeout: float = 10.0
    """Seconds before an unreached goal is replaced (sim_node's ``goal_timeout_s``)."""
    min_corroborated_confidence: float = PolicyConfig().min_corroborated_confidence
    """policy_node's ``min_corroborated_confidence``."""
    out: Path = Path('benchmarks/results/loop_confidence.json')
    """Where to write the JSON results."""


def run(args: Args, scene: str, threshold: float, budget: float, seed: int) -> dict:
    """One closed-loop run; returns its figures."""
    import torch
    torch.set_num_threads(1)
    config = SimConfig()
    dt = config.timing.dt
    task = ReachingTask(config, goal_timeout_s=args.goal_timeout, seed=seed)
    renderer = ArmRenderer(config.geometry)
    scene_config = SceneConfig(name=scene)
    scene_rng = np.random.default_rng(seed + 7919)
    renderer.set_scene(scene_config.sample(scene_rng, renderer.avoid_colours))
    rectify = Rectifier(renderer.calibration)
    estimator = make_estimator(PerceptionConfig(
        estimator=args.estimator, checkpoint=args.checkpoint,
        test_time_symmetries=args.test_time_symmetries))
    loop = PolicyLoop(PolicyConfig(controller=args.controller, min_confidence=threshold,
                                   unsure_motion_budget_rad=budget,
                                   min_corroborated_confidence=args.min_corroborated_confidence,
                                   latent_checkpoint=args.checkpoint), PidConfig())
    half = config.geometry.arena_size_m / 2.0
    command = np.zeros(2)
    rows = []
    goal_ends: list[tuple[int, str]] = []  # (frames so far, 'reached' or 'timed_out')
    for step in range(int(round(args.seconds / dt))):
        now = step * dt
        truth_q, truth_goal = task.arm.joint_positions.copy(), task.arm.goal.copy()
        # Rectified with the scene's camera, as perception_node does with camera_info.
        frame = rectify(renderer.render(truth_q, truth_goal))
        estimate = estimator.estimate(frame, command)
        joint_error = np.degrees(np.abs(np.angle(np.exp(
            1j * (estimate.joint_positions - truth_q))))).max()
        goal_error = 1000.0 * float(np.linalg.norm(estimate.goal - truth_goal))
        loop.update_estimate(PerceivedState(now, estimate.joint_positions,
                                            np.clip(estimate.goal, -half, half),
                                            estimate.confidence, estimate.latent))
        output = loop.step(now)
        command = output.command
        rows.append((joint_error, goal_error, float(loop.unsure), float(output.corroborated)))
        _, event = task.step(command)
        if event is not None:
            goal_ends.append((len(rows), event.value))
        if event is not None and scene_config.families:
            renderer.set_scene(scene_config.sample(scene_rng, renderer.avoid_colours))
            rectify = Rectifier(renderer.calibration)
    table = np.array(rows)
    wrong = (table[:, 0] > LOST_JOINT_DEG) | (table[:, 1] > LOST_GOAL_MM)
    halted = table[:, 2] > 0.0
    corroborated = table[:, 3] > 0.0
    stats = task.stats()
    goals = []
    starts = [0] + [end for end, _ in goal_ends[:-1]]
    for start, (end, outcome) in zip(starts, goal_ends, strict=True):
        part = slice(start, end)
        goals.append({'outcome': outcome, 'frames': end - start,
                      'wrong_share': float(wrong[part].mean()),
                      'halted_share': float(halted[part].mean()),
                      'acted_wrong_share': float((wrong[part] & ~halted[part]).mean())})
    return {
        'scene': scene, 'controller': args.controller, 'threshold': threshold,
        'unsure_motion_budget_rad': budget, 'seed': seed,
        'frames': len(rows),
        'goals_reached': stats.goals_reached, 'goals_timed_out': stats.goals_timed_out,
        'halted_share': float(halted.mean()),
        'halted_wrong_share': float(wrong[halted].mean()) if halted.any() else None,
        'halted_joint_error_deg_median': (float(np.median(table[halted, 0]))
                                          if halted.any() else None),
        'halted_goal_error_mm_median': (float(np.median(table[halted, 1]))
                                        if halted.any() else None),
        'acted_wrong_share': float(wrong[~halted].mean()) if (~halted).any() else None,
        'corroborated_share': float(corroborated.mean()),
        'corroborated_wrong_share': (float(wrong[corroborated].mean())
                                     if corroborated.any() else None),
        'goals': goals,
    }


def timeout_causes(goals: list[dict]) -> dict[str, int]:
    """Why goals timed out: ``lost`` (over half the goal's frames wrong, the arm mostly
    halted), ``misled`` (over a quarter of its frames acted on while wrong: a silent
    failure), ``unsure`` (the estimates mostly right, the arm halted on them)."""
    causes = {'lost': 0, 'misled': 0, 'unsure': 0}
    for goal in goals:
        if goal['outcome'] != 'timed_out':
            continue
        if goal['acted_wrong_share'] > 0.25:
            causes['misled'] += 1
        elif goal['wrong_share'] > 0.5:
            causes['lost'] += 1
        else:
            causes['unsure'] += 1
    return causes


def success_interval(reached: int, finished: int) -> str:
    """Goal success with its 95% Wilson score interval, e.g. ``55% (48%-62%)``.

    A success rate pooled over a few runs is a handful of goals: 15 of 23 is 65%, and
    anything from 45% to 81% (Wilson, 95%) would give it as often.
    """
    if not finished:
        return '-'
    interval = binomtest(reached, finished).proportion_ci(0.95, method='wilson')
    return f'{reached / finished:.0%} ({interval.low:.0%}-{interval.high:.0%})'


def share(rows: list[dict], key: str, halted: bool) -> str:
    """A per-run share pooled over runs, weighted by their halted (or acted-on) frames."""
    parts = [(r[key], r['frames'] * (r['halted_share'] if halted else 1.0 - r['halted_share']))
             for r in rows if r[key] is not None]
    total = sum(weight for _, weight in parts)
    return f'{sum(value * weight for value, weight in parts) / total:.1%}' if total else '-'


def main() -> None:
    args = tyro.cli(Args)
    runs = []
    for scene in args.scenes:
        for threshold in args.thresholds:
            for budget in args.budgets:
                for seed in args.seeds:
                    runs.append(run(args, scene, threshold, budget, seed))
                    print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({'benchmark': 'loop_confidence',
                                    'args': {k: str(v) if isinstance(v, Path) else v
                                             for k, v in vars(args).items()},
                                    'runs': runs}, indent=2) + '\n')
    print(f'| {args.estimator} + {args.controller}: scene | min_confidence '
          '| unsure_motion_budget_rad | goals reached / timed out | success (95% CI) '
          '| frames halted '
          '| halted frames wrong | acted-on frames wrong | frames acted on unsure, wrong '
          '| timed out: lost / misled / unsure |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for scene in args.scenes:
        for threshold in args.thresholds:
            for budget in args.budgets:
                mine = [r for r in runs if r['scene'] == scene and r['threshold'] == threshold
                        and r['unsure_motion_budget_rad'] == budget]
                reached = sum(r['goals_reached'] for r in mine)
                timed_out = sum(r['goals_timed_out'] for r in mine)
                frames = sum(r['frames'] for r in mine)
                halted = sum(r['halted_share'] * r['frames'] for r in mine)
                vouched = sum(r['corroborated_share'] * r['frames'] for r in mine)
                causes = timeout_causes([g for r in mine for g in r['goals']])
                vouched_wrong = sum((r['corroborated_wrong_share'] or 0.0)
                                    * r['corroborated_share'] * r['frames'] for r in mine)
                print(f'| {scene} | {threshold} | {budget} | {reached} / {timed_out} '
                      f'| {success_interval(reached, reached + timed_out)} '
                      f'| {halted / frames:.1%} '
                      f'| {share(mine, "halted_wrong_share", halted=True)} '
                      f'| {share(mine, "acted_wrong_share", halted=False)} '
                      f'| {vouched / frames:.1%}, {vouched_wrong / frames:.2%} '
                      f'| {causes["lost"]} / {causes["misled"]} / {causes["unsure"]} |')
    print(f'\nwritten to {args.out}')


if __name__ == '__main__':
    main()
