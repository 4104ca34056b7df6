"""Training of state-based reaching policies with Stable-Baselines3 (issue 3).

``reacher policy train`` mirrors the seed's ``main.py TRAIN``: it trains DDPG, TD3 or
SAC on :class:`reacher_sim.env.ReacherEnv` with a progress bar, TensorBoard logs,
periodic evaluation on fixed seeds, SB3 checkpoints (save and resume), a learning-curve
PNG, and exports the actor as the small checkpoint the learned controller loads.

Presets (``--preset NAME`` before the other flags) fill every field:

- ``seed-ddpg``: the seed's DDPG as described in DESIGN.md: 300-unit single hidden layer
  actor and critic, Adam 1e-3, gamma 0.9, tau 0.01, 30k buffer, batch 32, learning
  only once the buffer is full, no exploration noise, the seed's goal sampling and a
  51-step hold. (SB3 stores terminal flags and updates every target parameter, two
  bugs of the seed that are not reproduced.)
- ``sac``: the best configuration of the hyperparameter search (SAC, lr 3e-3, 64x64,
  batch 128, gamma 0.9, potential-based shaping and a success bonus); ``sac-curriculum``,
  ``sac-p``, ``sac-i`` and ``sac-smooth`` (the P, I and D smoothness terms),
  ``sac-noise`` (trained with observation noise) and ``sac-20hz`` (dt = 0.05 s, the ROS
  loop's period) vary it; ``sac-utd2`` is it with two gradient steps per env step,
  128x128 networks and batch 256 (two seeds: final 0.996 and 0.988 after 20k steps, 90%
  at 12k and 11k; see benchmarks/README.md); ``td3`` and ``ddpg`` use its reward and
  networks.
- ``sac-d4``: the best configuration found: ``sac`` trained on replayed transitions
  mapped by random symmetries of the task (``--symmetry-augmentation``,
  reacher_policy/symmetry.py); 90% at 3k-4k env steps and 1.000 final success on three
  seeds (benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
import json
from pathlib import Path
import shlex
import sys
import time
from typing import Any, Literal

import numpy as np
import torch
import tyro

from reacher_common.geometry import Timing
from reacher_policy.checkpoint import actor_from_sb3, ActorMetadata, save_actor
from reacher_policy.evaluate import evaluate_policy, sb3_policy
from reacher_sim.config import SimConfig
from reacher_sim.observation import STATE_DIM
from reacher_sim.options import CurriculumConfig, RewardConfig, RobustnessConfig
from reacher_sim.wrappers import make_env as make_reacher_env

Algo = Literal['sac', 'td3', 'ddpg']


SEED_SIM = SimConfig(timing=Timing(dt=0.1))
"""The task the presets were tuned and benchmarked on: the seed's 10 Hz step (dt = 0.1 s).
Named here since ``Timing``'s default is the ROS loop's 20 Hz (config/sim.yaml)."""


@dataclass(frozen=True)
class TrainConfig:
    """Train a reaching policy (the seed's ``main.py TRAIN``); every knob is a flag."""

    algo: Algo = 'sac'
    """'sac', 'td3' or 'ddpg' (Stable-Baselines3)."""
    seed: int = 0
    """Seed of the algorithm and of the training envs (worker k uses seed + k)."""
    total_steps: int = 20_000
    """Env steps to train for (summed over the vectorised workers)."""
    n_envs: int = 1
    """Parallel envs collecting data."""
    vec_env: Literal['dummy', 'subproc'] = 'dummy'
    """'dummy' steps the workers in this process; 'subproc' in one process each."""
    learning_rate: float = 1e-3
    """Adam learning rate of actor and critic."""
    gamma: float = 0.9
    """Discount factor."""
    tau: float = 0.01
    """Polyak coefficient of the target networks."""
    batch_size: int = 256
    """Minibatch size."""
    buffer_size: int = 100_000
    """Replay buffer capacity, transitions."""
    learning_starts: int = 500
    """Env steps of random actions before learning starts."""
    train_freq: int = 1
    """Env steps (per worker) between updates."""
    gradient_steps: int = 1
    """Gradient steps per update (-1: as many as env steps collected)."""
    n_steps: int = 1
    """n-step returns in the critic targets (SB3's NStepReplayBuffer when > 1)."""
    symmetry_augmentation: bool = False
    """Map each replayed transition by a random one of the task's 8 symmetries (rotations
    by multiples of 90 degrees and reflections about the shoulder; see
    reacher_policy/symmetry.py). Training only; needs the state observation."""
    net_arch: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics."""
    action_noise_std: float = 0.1
    """TD3/DDPG Gaussian exploration noise std (0: none)."""
    ent_coef: str = 'auto'
    """SAC entropy coefficient ('auto', 'auto_0.1' or a number)."""
    target_entropy: str = 'auto'
    """SAC target entropy of the automatic coefficient ('auto': -action_dim = -2, or a
    number); lower keeps the policy's spread small, so the deterministic actor evaluated
    behaves like the stochastic one trained."""
    policy_delay: int = 2
    """TD3: critic updates per actor update (DDPG always 1)."""
    sim: SimConfig = field(default_factory=lambda: SEED_SIM)
    """The task (default: the seed's 10 Hz step, dt = 0.1 s, on which the presets were
    tuned; the ROS loop's config/sim.yaml runs dt = 0.05 s, see preset 'sac-20hz')."""
    train_episode_steps: int = 0
    """Truncate training episodes after this many steps (0: sim.max_episode_steps); more,
    shorter episodes show more goals per env step. Evaluation uses the sim's."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward weights (defaults: the seed's reward)."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    """Goal curriculum during training (evaluation always uses the full task)."""
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    """Noise and delay during training."""
    eval_robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    """Noise and delay during the periodic evaluations."""
    eval_freq: int = 1000
    """Env steps between evaluations (0: none)."""
    eval_episodes: int = 50
    """Episodes per periodic evaluation."""
    eval_seed: int = 10_000
    """Seed of the first evaluation episode (the same episodes every evaluation)."""
    final_eval_episodes: int = 500
    """Episodes of the final evaluation (0: none)."""
    stop_success: float = 1.1
    """Stop once a periodic evaluation reaches this success rate (> 1: never)."""
    out_dir: str = 'runs/policy'
    """Run folder: model.zip, policy.pt, evaluations.json, curve.png, tb/."""
    resume: str = ''
    """An SB3 model.zip to continue training (its replay buffer is loaded if saved)."""
    save_replay_buffer: bool = False
    """Also save the replay buffer (needed for an exact resume; large)."""
    tensorboard: bool = True
    """Write TensorBoard logs under out_dir/tb."""
    progress: bool = True
    """Show a tqdm progress bar."""
    torch_threads: int = 1
    """torch.set_num_threads (the machine is small and shared)."""


_TUNED = TrainConfig(
    algo='sac', learning_rate=3e-3, gamma=0.9, tau=0.01, batch_size=128, net_arch=(64, 64),
    learning_starts=300, total_steps=20_000, eval_freq=1000, eval_episodes=50,
    reward=RewardConfig(shaping_weight=1.0, success_weight=10.0))
"""The best SAC found in the search of issue 3 (benchmarks/README.md)."""

PRESETS: dict[str, TrainConfig] = {
    'seed-ddpg': TrainConfig(
        algo='ddpg', gamma=0.9, tau=0.01, learning_rate=1e-3, batch_size=32,
        buffer_size=30_000, learning_starts=30_000, net_arch=(300,), action_noise_std=0.0,
        total_steps=150_000, eval_freq=10_000,
        sim=replace(SEED_SIM, goal_sampling='seed', success_hold_steps=51)),
    'sac': _TUNED,
    'sac-curriculum': replace(_TUNED, curriculum=CurriculumConfig(
        mode='linear', start_goal_size_m=0.08, start_max_distance_m=0.05,
        schedule_steps=4000)),
    'sac-smooth': replace(_TUNED, reward=replace(_TUNED.reward, action_change_weight=0.5)),
    'sac-p': replace(_TUNED, reward=replace(_TUNED.reward, action_weight=0.1)),
    'sac-i': replace(_TUNED, reward=replace(_TUNED.reward, integral_weight=0.1)),
    'sac-noise': replace(_TUNED, robustness=RobustnessConfig(
        joint_noise_std_rad=0.02, goal_noise_std_m=0.004)),
    'sac-20hz': replace(_TUNED, sim=SimConfig(timing=Timing(dt=0.05)), gamma=0.95,
                        total_steps=50_000, eval_freq=2000),
    'sac-utd2': replace(_TUNED, gradient_steps=2, net_arch=(128, 128), batch_size=256),
    'sac-d4': replace(_TUNED, symmetry_augmentation=True),
    'td3': replace(_TUNED, algo='td3', learning_rate=1e-3),
    'ddpg': replace(_TUNED, algo='ddpg', learning_rate=1e-3),
}
"""Named starting points for ``--preset``; 'seed-ddpg' is the seed's baseline."""


def named_config(name: str) -> TrainConfig:
    """The config a benchmark names: a preset, or ``PRESET+d4``.

    ``PRESET+d4`` is the preset with ``symmetry_augmentation=True``.

    :raises SystemExit: naming the config, if it is neither.
    """
    base, _, suffix = name.partition('+')
    if base not in PRESETS or suffix not in ('', 'd4'):
        raise SystemExit(f'config {name!r}: use a preset of {sorted(PRESETS)}, '
                         'optionally with +d4')
    return replace(PRESETS[base], symmetry_augmentation=True) if suffix else PRESETS[base]


def make_env(config: TrainConfig, rank: int = 0) -> Any:
    """One training env (worker ``rank``) with the config's options."""
    sim = config.sim
    if config.train_episode_steps > 0:
        sim = replace(sim, max_episode_steps=config.train_episode_steps)
    return make_reacher_env(sim, reward=config.reward, curriculum=config.curriculum,
                            robustness=config.robustness)


def build_model(config: TrainConfig, env: Any) -> Any:
    """The SB3 model for ``config`` on the (vectorised) env."""
    from stable_baselines3 import DDPG, SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    common: dict[str, Any] = dict(
        learning_rate=config.learning_rate, gamma=config.gamma, tau=config.tau,
        batch_size=config.batch_size, buffer_size=config.buffer_size,
        learning_starts=config.learning_starts, train_freq=config.train_freq,
        gradient_steps=config.gradient_steps, n_steps=config.n_steps, seed=config.seed,
        device='cpu', verbose=0,
        policy_kwargs=dict(net_arch=list(config.net_arch)),
        tensorboard_log=str(Path(config.out_dir) / 'tb') if config.tensorboard else None)
    if config.symmetry_augmentation:
        from reacher_policy.symmetry import SymmetryNStepReplayBuffer, SymmetryReplayBuffer
        if config.n_steps > 1:
            # A custom buffer class makes SB3 ignore n_steps: pass it to the buffer.
            common.update(replay_buffer_class=SymmetryNStepReplayBuffer,
                          replay_buffer_kwargs=dict(n_steps=config.n_steps, gamma=config.gamma),
                          n_steps=1)
        else:
            common.update(replay_buffer_class=SymmetryReplayBuffer)
    if config.algo == 'sac':
        ent: Any = config.ent_coef
        try:
            ent = float(ent)
        except ValueError:
            pass
        target: Any = config.target_entropy
        if target != 'auto':
            target = float(target)
        return SAC('MlpPolicy', env, ent_coef=ent, target_entropy=target, **common)
    noise = None
    if config.action_noise_std > 0.0:
        noise = NormalActionNoise(np.zeros(2), np.full(2, config.action_noise_std))
    if config.algo == 'td3':
        return TD3('MlpPolicy', env, action_noise=noise, policy_delay=config.policy_delay,
                   **common)
    return DDPG('MlpPolicy', env, action_noise=noise, **common)


def load_model(path: str, env: Any = None) -> Any:
    """Load an SB3 model.zip of any of the three algorithms (read from its data)."""
    import zipfile

    from stable_baselines3 import SAC, TD3
    with zipfile.ZipFile(path) as archive:
        data = archive.read('data').decode()
    # DDPG is SB3's TD3 with policy_delay=1 and no target noise, both saved in the zip.
    cls = SAC if 'sac.policies' in data else TD3
    return cls.load(path, env=env, device='cpu')


@dataclass
class TrainResult:
    """What a training run measured.

    :param evaluations: one dict per periodic evaluation (``env_steps``, ``wall_time_s``
        and the :class:`EvalResult` fields).
    :param steps_to_90: env steps of the first evaluation at >= 90% success, or None.
    :param wall_time_to_90_s: training wall time until then (evaluations excluded), or None.
    :param final: the final evaluation, or None.
    :param train_time_s: training wall time, evaluations excluded.
    :param env_steps: env steps trained.
    """

    evaluations: list[dict[str, float]]
    steps_to_90: int | None
    wall_time_to_90_s: float | None
    final: dict[str, float] | None
    train_time_s: float
    env_steps: int


def _callback(config: TrainConfig, result: TrainResult, model_path: Path) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm import tqdm

    class EvalProgressCallback(BaseCallback):
        """Periodic fixed-seed evaluation, TensorBoard scalars, checkpoints, progress."""

        def _on_training_start(self) -> None:
            self.bar = tqdm(total=config.total_steps, initial=self.num_timesteps,
                            disable=not config.progress, unit='step', mininterval=2.0)
            self.last_eval = self.num_timesteps
            self.eval_time = 0.0
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            if config.eval_freq <= 0 or self.num_timesteps - self.last_eval < config.eval_freq:
                return True
            self.last_eval = self.num_timesteps
            begin = time.perf_counter()
            evaluation = evaluate_policy(sb3_policy(self.model), config.sim,
                                         config.eval_episodes, config.eval_seed,
                                         config.eval_robustness)
            train_time = begin - self.start - self.eval_time
            row = {'env_steps': float(self.num_timesteps), 'train_time_s': train_time,
                   **evaluation.as_dict()}
            result.evaluations.append(row)
            for key in ('success_rate', 'mean_time_to_goal_s', 'mean_return',
                        'mean_action_change'):
                self.logger.record(f'eval/{key}', row[key])
            self.logger.dump(self.num_timesteps)
            if result.steps_to_90 is None and evaluation.success_rate >= 0.9:
                result.steps_to_90 = self.num_timesteps
                result.wall_time_to_90_s = train_time
            self.bar.set_postfix(success=f'{evaluation.success_rate:.2f}')
            tqdm.write(f'eval at {self.num_timesteps} steps ({train_time:.0f} s): success '
                       f'{evaluation.success_rate:.3f}, time to goal '
                       f'{evaluation.mean_time_to_goal_s:.2f} s', file=sys.stderr)
            self.model.save(model_path)
            self.eval_time += time.perf_counter() - begin
            return bool(evaluation.success_rate < config.stop_success)

        def _on_training_end(self) -> None:
            self.bar.close()
            result.train_time_s = time.perf_counter() - self.start - self.eval_time

    return EvalProgressCallback()


def train(config: TrainConfig, command: str = '') -> TrainResult:
    """Train, evaluate and save one run into ``config.out_dir``.

    :param config: the run.
    :param command: the command line, recorded in the checkpoint's metadata.
    :return: the measurements (also written to out_dir/evaluations.json).
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    torch.set_num_threads(config.torch_threads)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = make_vec_env(make_env, n_envs=config.n_envs, seed=config.seed,
                       env_kwargs=dict(config=config),
                       vec_env_cls=SubprocVecEnv if config.vec_env == 'subproc'
                       else DummyVecEnv)
    if config.resume:
        model = load_model(config.resume, env)
        buffer = Path(config.resume).with_name('replay_buffer.pkl')
        if buffer.is_file():
            model.load_replay_buffer(buffer)
    else:
        model = build_model(config, env)
    result = TrainResult([], None, None, None, 0.0, 0)
    model_path = out / 'model.zip'
    model.learn(config.total_steps, callback=_callback(config, result, model_path),
                reset_num_timesteps=not config.resume, tb_log_name='run')
    env.close()
    result.env_steps = int(model.num_timesteps)
    model.save(model_path)
    if config.save_replay_buffer:
        model.save_replay_buffer(out / 'replay_buffer.pkl')
    actor = actor_from_sb3(model)
    save_actor(out / 'policy.pt', actor, ActorMetadata(
        algo=config.algo, geometry=config.sim.geometry, timing=config.sim.timing,
        observation_dim=STATE_DIM, net_arch=tuple(config.net_arch),
        env_steps=result.env_steps, command=command))
    if config.final_eval_episodes > 0:
        final = evaluate_policy(sb3_policy(model), config.sim, config.final_eval_episodes,
                                config.eval_seed, config.eval_robustness)
        result.final = final.as_dict()
    write_report(config, result, out)
    return result


def write_report(config: TrainConfig, result: TrainResult, out: Path) -> None:
    """Write evaluations.json and curve.png for a run."""
    (out / 'evaluations.json').write_text(json.dumps(
        {'config': _jsonable(asdict(config)), **asdict(result)}, indent=2) + '\n')
    if not result.evaluations:
        return
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    steps = [row['env_steps'] for row in result.evaluations]
    success = [row['success_rate'] for row in result.evaluations]
    fig, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(steps, success, marker='o')
    axis.axhline(0.9, color='grey', linestyle='--', linewidth=0.8)
    axis.set_xlabel('env steps')
    axis.set_ylabel(f'success ({config.eval_episodes} episodes)')
    axis.set_ylim(0.0, 1.02)
    axis.set_title(f'{config.algo} seed {config.seed}')
    fig.tight_layout()
    fig.savefig(out / 'curve.png', dpi=100)
    plt.close(fig)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def parse_train_args(argv: list[str]) -> TrainConfig:
    """Parse ``[--preset NAME] [flags]`` into a TrainConfig (the preset fills defaults)."""
    argv = list(argv)
    default = TrainConfig()
    for flag in ('--preset',):
        if flag in argv:
            index = argv.index(flag)
            name = argv[index + 1] if index + 1 < len(argv) else ''
            if name not in PRESETS:
                raise SystemExit(f'--preset {name!r}: use one of {sorted(PRESETS)}')
            default = PRESETS[name]
            del argv[index:index + 2]
    description = (TrainConfig.__doc__ or '') + (
        f'\n\nPresets: --preset {{{",".join(PRESETS)}}} (first) sets the defaults.')
    return tyro.cli(TrainConfig, args=argv, default=default, prog='reacher policy train',
                    description=description)


def train_main(argv: list[str]) -> int:
    """``reacher policy train``: train one run and print its summary."""
    config = parse_train_args(argv)
    command = 'reacher policy train ' + shlex.join(argv)
    result = train(config, command)
    summary = {'out_dir': config.out_dir, 'env_steps': result.env_steps,
               'steps_to_90': result.steps_to_90,
               'wall_time_to_90_s': result.wall_time_to_90_s,
               'train_time_s': result.train_time_s,
               'final_success_rate': None if result.final is None
               else result.final['success_rate']}
    print(json.dumps(summary, indent=2))
    return 0


@dataclass(frozen=True)
class ExportArgs:
    """Write the small actor checkpoint (.pt) of an SB3 model.zip."""

    model: str
    """The SB3 model.zip (SAC, TD3 or DDPG with an MLP policy)."""
    output: str
    """The .pt file to write."""
    algo: Algo = 'sac'
    """Recorded in the metadata."""
    sim: SimConfig = field(default_factory=lambda: SEED_SIM)
    """The task the model was trained on (dt, velocity limit, geometry); the default is
    ``TrainConfig``'s."""


def export_main(argv: list[str]) -> int:
    """``reacher policy export``: SB3 model.zip -> actor checkpoint."""
    args = tyro.cli(ExportArgs, args=argv, prog='reacher policy export',
                    description=ExportArgs.__doc__)
    model = load_model(args.model)
    actor = actor_from_sb3(model)
    sim = args.sim
    save_actor(args.output, actor, ActorMetadata(
        algo=args.algo, geometry=sim.geometry, timing=sim.timing, observation_dim=STATE_DIM,
        net_arch=actor.net_arch, env_steps=int(model.num_timesteps),
        command='reacher policy export ' + shlex.join(argv)))
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(train_main(sys.argv[1:]))
