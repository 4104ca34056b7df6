"""The configuration of an SB3 training run, and its named presets.

A light module (dataclasses only: no torch, gymnasium or stable_baselines3), so the CLI can
build its arguments and a preset can be the default of the parsed flags without loading
the training stack.

Presets (``reacher policy train --preset NAME``, before the other flags; ``PRESET+d4``
adds symmetry augmentation) fill every field:

- ``seed-ddpg``: the DDPG of the seed, the project this one grew from, with the seed's
  settings: 300-unit single hidden layer actor and critic, Adam 1e-3, gamma 0.9, tau
  0.01, 30k buffer, batch 32, learning only once the buffer is full, no exploration
  noise, the seed's goal sampling and a 51-step hold. The seed ignored terminal flags in
  its targets and soft-updated only part of its target networks; SB3 does both
  correctly, so those two bugs are not reproduced.
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
  reacher_policy/training/symmetry.py); 90% at 3k-4k env steps and 1.000 final success
  on three seeds (benchmarks/README.md).
- ``sac-slac-latent``: ``sac-20hz`` observing the filtered latent of the perception's
  shipped SLAC model instead of the state (``observation='slac-latent'``), 60k env steps;
  the ``slac`` controller's actor is it resumed for 40k more (checkpoints/README.md).
- ``slac``: the SLAC agent from pixels and reward alone (``--algo slac``,
  reacher_policy/training/slac/, docs/slac_agent.md) on the ROS loop's task (dt = 0.05 s)
  with ``sac``'s reward; ``slac-privileged`` adds the state heads' loss to its latent
  model (asymmetric training). Their hyperparameters are the ``--slac.*`` flags; the SB3
  fields (learning_rate, gamma, tau, batch_size, buffer_size, learning_starts, train_freq,
  gradient_steps, net_arch, ...) do not apply to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from reacher_common.geometry import Timing
from reacher_perception.slac.config import SlacModelConfig
from reacher_policy.training.slac.config import SlacAgentConfig
from reacher_sim.config import SimConfig
from reacher_sim.options import CurriculumConfig, RewardConfig, RobustnessConfig

Algo = Literal['sac', 'td3', 'ddpg', 'slac']


SEED_SIM = SimConfig(timing=Timing(dt=0.1))
"""The task the presets were tuned and benchmarked on: the seed's 10 Hz step (dt = 0.1 s).
Named here since ``Timing``'s default is the ROS loop's 20 Hz (config/sim.yaml)."""


@dataclass(frozen=True)
class TrainConfig:
    """Train a reaching policy (the seed's ``main.py TRAIN``); every knob is a flag."""

    algo: Algo = 'sac'
    """'sac', 'td3' or 'ddpg' (Stable-Baselines3), or 'slac' (the SLAC agent from pixels,
    configured by ``slac``)."""
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
    reacher_policy/training/symmetry.py). Training only; the state observation, or
    ``algo='slac'``, whose replayed frames, actions and true states are mapped together
    (``PRESET+d4`` turns it on, e.g. ``slac+d4``)."""
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
    """An SB3 model.zip to continue training: its weights and step count are loaded into
    a model built from these flags (same algo and net_arch); a replay_buffer.pkl beside it
    needs allow_pickle."""
    save_replay_buffer: bool = False
    """Also save the replay buffer (needed for an exact resume; large; a pickle, which
    only allow_pickle loads back)."""
    allow_pickle: bool = False
    """Let resume unpickle: the whole model.zip the SB3 way and its replay_buffer.pkl.
    Unpickling runs code from the file: only for files you made and trust."""
    tensorboard: bool = True
    """Write TensorBoard logs under out_dir/tb."""
    progress: bool = True
    """Show a tqdm progress bar."""
    torch_threads: int = 1
    """torch.set_num_threads (the machine is small and shared)."""
    observation: Literal['state', 'slac-latent'] = 'state'
    """What the SB3 policy observes: 'state' (the state vector), or 'slac-latent': the
    filtered latent (z1, z2) of the SLAC perception checkpoint ``latent_checkpoint`` on
    each rendered frame (reacher_policy/training/slac/latent_env.py), the observation of
    the policy node's ``slac`` controller."""
    latent_checkpoint: str = ''
    """For ``observation='slac-latent'``: the SLAC perception checkpoint whose frozen
    latent model filters the frames ('' = the shipped checkpoints/slac_reacher.pt)."""
    slac: SlacAgentConfig = field(default_factory=SlacAgentConfig)
    """The SLAC agent's hyperparameters (``algo='slac'`` only; its env is the pixel env of
    ``sim`` with ``reward``, and resume reads a SLAC agent .pt)."""


_TUNED = TrainConfig(
    algo='sac', learning_rate=3e-3, gamma=0.9, tau=0.01, batch_size=128, net_arch=(64, 64),
    learning_starts=300, total_steps=20_000, eval_freq=1000, eval_episodes=50,
    reward=RewardConfig(shaping_weight=1.0, success_weight=10.0))
"""The best SAC found in the search of issue 3 (benchmarks/README.md)."""

_SLAC = replace(_TUNED, algo='slac', sim=SimConfig(timing=Timing(dt=0.05)), total_steps=50_000,
                eval_freq=2000, eval_episodes=50)
"""SLAC from pixels on the ROS loop's 20 Hz task, with the tuned SAC's reward."""

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
    'sac-slac-latent': replace(_TUNED, sim=SimConfig(timing=Timing(dt=0.05)), gamma=0.95,
                               total_steps=60_000, eval_freq=5000,
                               observation='slac-latent'),
    'slac': _SLAC,
    'slac-privileged': replace(_SLAC, slac=SlacAgentConfig(
        model=SlacModelConfig(state_weight=1e4))),
}
"""Named starting points for ``--preset``; 'seed-ddpg' is the seed's baseline."""


def named_config(name: str) -> TrainConfig:
    """The config a name gives (``--preset``, benchmarks): a preset, or ``PRESET+d4``.

    ``PRESET+d4`` is the preset with ``symmetry_augmentation=True``.

    :raises SystemExit: naming the config, if it is neither.
    """
    base, _, suffix = name.partition('+')
    if base not in PRESETS or suffix not in ('', 'd4'):
        raise SystemExit(f'config {name!r}: use a preset of {sorted(PRESETS)}, '
                         'optionally with +d4')
    return replace(PRESETS[base], symmetry_augmentation=True) if suffix else PRESETS[base]
