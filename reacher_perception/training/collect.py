"""The collector: the simulator driven by random and IK policies, written as dataset shards.

Each sequence is acted by one of :data:`~reacher_perception.training.dataset.POLICIES`:
smooth random joint velocities (:class:`RandomSmoothPolicy`), the policy node's own
loop (``reacher_policy.loop.PolicyLoop``: the IK controller and the PID smoother) fed the
true joint angles and goal every frame, with gaussian noise on its command, or (with
``slac_fraction``) the all-SLAC loop: the shipped SLAC filter on the rendered frames and
the ``slac`` controller on its latent (:func:`slac_loop`), as ``reacher demo --estimator
slac --controller slac`` runs, with the same noise. The loop is
ticked once per frame at the frame's time, so the PID runs at the camera's period. With
``CollectConfig.scene``, each sequence is seen in a new scene (``reacher_sim.scene``)
drawn from a stream of its own, so a given seed gives the same motions in every scene.
For training across scenes (domain randomisation), ``held_out``, ``clean_fraction`` and
``single_family_fraction`` shape the mix (:func:`draw_scene`), and each frame is also
rendered in the clean scene and stored as ``clean_images``: what the decoder
reconstructs, so that it spends no capacity on backgrounds and distractors, and each
sequence's camera calibration (``camera_k``, ``camera_r``: the nudged camera's K and R of
sensor_msgs/CameraInfo; P is the geometry's camera), with which evaluation rectifies the
frames as perception_node does. Training reads the raw frames: a nudge is one more
augmentation there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt

from reacher_common.camera_calibration import Rectifier
from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import Estimator, make_estimator
from reacher_perception.training.config import CollectConfig
from reacher_perception.training.dataset import POLICIES, SequenceDataset, write_shard
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.loop import PerceivedState, PolicyLoop
from reacher_sim.config import SimConfig
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import RGB, Scene
from reacher_sim.task import ReachingTask


def draw_scene(config: CollectConfig, rng: np.random.Generator, avoid: tuple[RGB, ...]
               ) -> Scene:
    """One sequence's scene: clean, one family alone, or all of them, less ``held_out``.

    With ``clean_fraction`` and ``single_family_fraction`` both 0 and nothing held out,
    this is ``config.scene.sample(rng, avoid)`` and draws the same numbers.

    :param config: the scene, its held-out families and the mix.
    :param rng: the scene stream.
    :param avoid: colours the drawn colours keep away from (``ArmRenderer.avoid_colours``).
    :return: the scene; a held-out family's fields keep their clean values.
    """
    allowed = [f for f in config.scene.families if f not in config.held_out]
    scene_config = config.scene
    if config.clean_fraction > 0.0 or config.single_family_fraction > 0.0:
        draw = rng.random()
        if draw < config.clean_fraction or not allowed:
            return Scene()
        if draw < config.clean_fraction + config.single_family_fraction:
            family = allowed[int(rng.integers(0, len(allowed)))]
            scene_config = replace(config.scene, name=family)
    scene = scene_config.sample(rng, avoid)
    return scene.without(*config.held_out)


class RandomSmoothPolicy:
    """Piecewise-constant random joint velocities, low-passed, sometimes at rest.

    :param rng: random generator.
    :param limit: rad/s, the joint limit.
    """

    def __init__(self, rng: np.random.Generator, limit: float) -> None:
        self.rng, self.limit = rng, limit
        self.target = np.zeros(2)
        self.command = np.zeros(2)
        self.hold = 0

    def __call__(self) -> npt.NDArray[np.float64]:
        """The next command, (2,) rad/s."""
        if self.hold <= 0:
            self.hold = int(self.rng.integers(2, 20))
            self.target = (np.zeros(2) if self.rng.random() < 0.15
                           else self.rng.uniform(-self.limit, self.limit, 2))
        self.hold -= 1
        self.command = self.command + 0.5 * (self.target - self.command)
        return self.command.copy()


def ik_loop(geometry: ArmGeometry, timing: Timing) -> PolicyLoop:
    """The policy node's IK + PID loop for this arm, ticked once per frame.

    The PID keeps its default gains with the output limited to the arm's joint limit; the
    control period is the frame period, and an estimate is never stale (each tick gets the
    frame's truth at the frame's time).

    :param geometry: the arm.
    :param timing: the frame period.
    :return: a fresh loop.
    """
    return PolicyLoop(PolicyConfig(control_rate_hz=1.0 / timing.dt, controller='ik',
                                   geometry=geometry),
                      PidConfig(output_limit=geometry.max_joint_velocity))


def slac_loop(geometry: ArmGeometry, timing: Timing) -> tuple[Estimator, PolicyLoop]:
    """The all-SLAC loop of the shipped checkpoints: the estimator and the policy's loop.

    The confidence stop is off (``min_confidence`` 0): the loop acts on every estimate, so
    the recorded states are the ones its actor steers to, stops or not.

    :param geometry: the arm and camera (the shipped checkpoints' own).
    :param timing: the frame period, the controller's (0.05 s).
    :return: (estimator, loop), both fresh.
    :raises ValueError: when the shipped checkpoints do not fit the arm or the period.
    """
    estimator = make_estimator(PerceptionConfig(estimator='slac', geometry=geometry))
    loop = PolicyLoop(PolicyConfig(control_rate_hz=1.0 / timing.dt, controller='slac',
                                   min_confidence=0.0, geometry=geometry),
                      PidConfig(output_limit=geometry.max_joint_velocity))
    return estimator, loop


def collect(config: CollectConfig, geometry: ArmGeometry, timing: Timing, out_dir: Path,
            progress: bool = True) -> list[Path]:
    """Run the simulator with a mix of policies and write the sequences as shards.

    Each sequence starts from a random pose and goal (``ReachingTask.reset``); a goal
    reached (held ``success_hold_steps``) is replaced, as in the sim node.

    :param config: how many sequences and which policies.
    :param geometry: arm and camera; must match the camera stream to be read.
    :param timing: the frame period (the simulator's step).
    :param out_dir: where the shards go.
    :param progress: show a tqdm bar.
    :return: the shard paths.
    """
    from tqdm import tqdm

    sim = SimConfig(geometry=geometry, timing=timing)
    rng = np.random.default_rng(config.seed)
    scene_rng = np.random.default_rng([config.seed, 1])
    task = ReachingTask(sim, goal_timeout_s=15.0, seed=config.seed)
    renderer = ArmRenderer(geometry)
    clean_renderer = ArmRenderer(geometry) if config.scene.families else None
    loop = ik_loop(geometry, timing)
    slac = slac_loop(geometry, timing) if config.slac_fraction > 0.0 else None
    half = geometry.arena_size_m / 2.0
    limit = geometry.max_joint_velocity
    paths: list[Path] = []
    bar = tqdm(total=config.sequences, desc='collect', disable=not progress)
    for shard, start in enumerate(range(0, config.sequences, config.shard_size)):
        count = min(config.shard_size, config.sequences - start)
        steps, size = config.steps, geometry.image_size
        images = np.empty((count, steps, size, size, 3), np.uint8)
        arrays: dict[str, Any] = {name: np.empty((count, steps, 2), np.float32)
                                  for name in ('actions', 'joint_positions', 'fingertip',
                                               'goal')}
        policy = np.empty(count, np.int8)
        extras: dict[str, npt.NDArray[Any]] = ({} if clean_renderer is None
                  else {'clean_images': np.empty_like(images),
                        'camera_k': np.empty((count, 3, 3)),
                        'camera_r': np.empty((count, 3, 3))})
        for index in range(count):
            task.reset()
            if config.scene.families:
                renderer.set_scene(draw_scene(config, scene_rng, renderer.avoid_colours))
                extras['camera_k'][index] = renderer.calibration.k
                extras['camera_r'][index] = renderer.calibration.r
            rectify = Rectifier(renderer.calibration)
            # Drawn only when asked for, so the other recipes draw the same numbers.
            use_slac = config.slac_fraction > 0.0 and rng.random() < config.slac_fraction
            use_ik = not use_slac and rng.random() < config.ik_fraction
            policy[index] = POLICIES.index('slac' if use_slac else 'ik' if use_ik
                                           else 'random')
            random_policy = RandomSmoothPolicy(rng, limit)
            loop.reset()
            command = np.zeros(2)
            if slac is not None:
                slac[0].reset()
                slac[1].reset()
            for step in range(steps):
                arm = task.arm
                images[index, step] = renderer.render(arm.joint_positions, arm.goal)
                if clean_renderer is not None:
                    extras['clean_images'][index, step] = clean_renderer.render(
                        arm.joint_positions, arm.goal)
                arrays['joint_positions'][index, step] = arm.joint_positions
                arrays['fingertip'][index, step] = arm.fingertip
                arrays['goal'][index, step] = arm.goal
                if use_slac and slac is not None:
                    now_s = step * timing.dt
                    estimate = slac[0].estimate(rectify(images[index, step]), command)
                    slac[1].update_estimate(PerceivedState(
                        now_s, estimate.joint_positions, np.clip(estimate.goal, -half, half),
                        estimate.confidence, estimate.latent))
                    command = slac[1].step(now_s).command
                    command = command + rng.normal(0.0, config.command_noise, 2)
                elif use_ik:
                    now_s = step * timing.dt
                    loop.update_estimate(PerceivedState(now_s, arm.joint_positions, arm.goal))
                    command = loop.step(now_s).command
                    command = command + rng.normal(0.0, config.command_noise, 2)
                else:
                    command = random_policy()
                command = np.clip(command, -limit, limit)
                arrays['actions'][index, step] = command / limit
                task.step(command)
                if rng.random() < config.goal_switch_probability:
                    task.new_goal()
            bar.update()
        paths.append(write_shard(out_dir / f'shard_{shard:04d}.npz', images,
                                 geometry=geometry, timing=timing, policy=policy,
                                 seed=config.seed, extras=extras,
                                 scene_families=[f for f in config.scene.families
                                                 if f not in config.held_out],
                                 **arrays))
    bar.close()
    return paths


def collect_dataset(config: CollectConfig, geometry: ArmGeometry, timing: Timing
                    ) -> SequenceDataset:
    """:func:`collect` into a temporary folder, loaded and the folder removed.

    For held-out frames that a benchmark or test reads once: the dataset is in memory
    (``SequenceDataset`` reads its shards eagerly), nothing is left on disk.

    :param config: how many sequences and which policies.
    :param geometry: arm and camera.
    :param timing: the frame period.
    :return: the loaded sequences.
    """
    with tempfile.TemporaryDirectory(prefix='reacher-collect-') as folder:
        collect(config, geometry, timing, Path(folder), progress=False)
        return SequenceDataset(Path(folder))
