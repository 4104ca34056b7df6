"""SLAC from pixels (issue 15): the agent's cost, and learning runs beside SAC from pixels.

Two jobs, each writing JSON (one torch thread; say in the README whether the machine was
shared when the figures were taken):

``cost``: at the given agent config (default: ``SlacAgentConfig()``, 64x64 frames),
latent-model updates per second, actor-critic updates per second, collection frames per
second (env step + render + the actor on the last S frames + storing), and the peak
resident memory of the process (``ru_maxrss``) with the replay as filled::

    PYTHONPATH=. python benchmarks/rl_slac.py cost --output benchmarks/results/rl_slac_cost.json

``learn``: for each row and seed, one training run on the pixel env at dt = 0.05 s with
the ``slac`` preset's reward, a fixed-seed evaluation (``--eval-episodes``) every
``--eval-freq`` env steps, and a final evaluation on ``--final-episodes`` reachable goals.
Rows: ``slac`` (faithful: pixels and reward), ``slac-privileged`` (the latent model also
fits the true state), ``sac-pixels`` (Stable-Baselines3 SAC, CnnPolicy on the last
``--frame-stack`` frames)::

    PYTHONPATH=. python benchmarks/rl_slac.py learn --rows slac slac-privileged sac-pixels \\
        --seeds 0 1 2 --total-steps 50000 --output benchmarks/results/rl_slac.json

``dmc``: one seed (``--seeds``' first) of SLAC (``--dmc.*``, defaults ``DMC_AGENT``) on
DeepMind Control's reacher_easy from 64x64 pixels, action repeat 4, for ``--total-steps``
env steps (default 100k = 25k agent steps); the average return (out of 1000) of the
deterministic actor on 10 fixed-seed episodes every ``--dmc-eval-every`` env steps and at
the end. Resumable: the same command again continues from ``--dmc-run``'s agent, replay
and step count (``reacher_policy.training.slac.dmc_train`` says what a resume loses).
``dmc-cost`` is ``cost`` on that env and agent (a frame is an agent step, 4 env steps);
``dmc-baselines`` gives a uniform random policy's and a still arm's returns on the same
evaluation episodes::

    PYTHONPATH=. python benchmarks/rl_slac.py dmc --output benchmarks/results/rl_slac_dmc.json
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
import json
from pathlib import Path
import platform
import resource
import sys
import time
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import tyro

from reacher_policy.training.config import named_config, TrainConfig
from reacher_policy.training.evaluate import EpisodicPolicy, evaluate_policy
from reacher_policy.training.slac.acting import frame_of, FrameHistory
from reacher_policy.training.slac.agent import SlacAgent
from reacher_policy.training.slac.config import SlacAgentConfig
from reacher_policy.training.slac.train import make_pixel_env
from reacher_policy.training.train import train

DMC_AGENT = SlacAgentConfig(
    gamma=0.99, sequence_length=4, latent_batch_size=16, sac_batch_size=32,
    buffer_size=26_000, initial_collection_steps=1000, initial_latent_steps=2000)
"""The SLAC agent of the DMC row (agent steps; see docs/slac_agent.md, "DeepMind
Control"): the paper's gamma, our CPU-sized sequences, batches, pretraining and update
ratio."""


@dataclass(frozen=True)
class Args:
    """Cost of the SLAC agent, or learning runs of SLAC and SAC from pixels."""

    job: tyro.conf.Positional[Literal['cost', 'learn', 'dmc', 'dmc-cost', 'dmc-baselines']]
    """'cost', 'learn', 'dmc', 'dmc-cost' or 'dmc-baselines' (see the module docstring)."""
    rows: tuple[str, ...] = ('slac', 'slac-privileged', 'sac-pixels')
    """learn: the rows to run."""
    seeds: tuple[int, ...] = (0,)
    """learn: training seeds."""
    total_steps: int = 0
    """learn: env steps per run (0: 50k); dmc: env steps in all (0: 100k)."""
    eval_freq: int = 2000
    """learn: env steps between evaluations."""
    eval_episodes: int = 50
    """learn: episodes per periodic evaluation."""
    final_episodes: int = 500
    """learn: episodes of the final evaluation (reachable goals)."""
    slac: SlacAgentConfig = SlacAgentConfig()
    """The SLAC agent (both jobs; the privileged row sets ``model.state_weight``)."""
    privileged_state_weight: float = 1e4
    """learn: ``model.state_weight`` of the privileged row."""
    frame_stack: int = 3
    """learn, sac-pixels: frames stacked as the CNN's input."""
    sac_buffer_size: int = 50_000
    """learn, sac-pixels: replay capacity (stacked frames, memory-optimised)."""
    sac_learning_starts: int = 1000
    """learn, sac-pixels: random steps before learning."""
    sac_batch_size: int = 128
    """learn, sac-pixels: minibatch size."""
    sac_learning_rate: float = 3e-4
    """learn, sac-pixels: Adam learning rate."""
    cost_updates: int = 20
    """cost: updates of each kind timed (after 2 warm-up updates)."""
    cost_frames: int = 2000
    """cost: env steps collected (random policy first, then timed with the actor)."""
    dmc: SlacAgentConfig = DMC_AGENT
    """dmc, dmc-cost: the agent on DeepMind Control's reacher_easy (counts in agent
    steps of 4 env steps; defaults: ``DMC_AGENT``)."""
    dmc_run: str = 'runs/slac_dmc_reacher_easy_seed0'
    """dmc: the run folder; re-running with the same folder resumes the run there."""
    dmc_eval_every: int = 10_000
    """dmc: env steps between evaluations (and saves of agent + replay)."""
    dmc_episodes: int = 10
    """dmc: episodes per evaluation (fixed seeds; 10 as the papers)."""
    out_root: str = 'runs/bench_slac'
    """learn: folder of the training runs."""
    output: str = 'benchmarks/results/rl_slac.json'
    """JSON results file."""


def peak_memory_mb() -> float:
    """Peak resident memory of this process, MiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rate(function: Callable[[], Any], count: int) -> float:
    """Calls per second of ``function`` over ``count`` calls after two warm-ups."""
    function()
    function()
    start = time.perf_counter()
    for _ in range(count):
        function()
    return count / (time.perf_counter() - start)


def cost(args: Args, dmc: bool = False) -> dict[str, Any]:
    """Updates and frames per second of the SLAC agent, one torch thread (on the reacher's
    pixel env, or with ``dmc`` on DMC reacher_easy, a frame per agent step)."""
    if dmc:
        from reacher_policy.training.dmc import DmcPixelEnv
        env: Any = DmcPixelEnv()
    else:
        env = make_pixel_env(named_config('slac'))
    agent = SlacAgent(replace(args.dmc if dmc else args.slac,
                              initial_collection_steps=args.cost_frames,
                              initial_latent_steps=0), env, seed=0)
    start = time.perf_counter()
    agent.learn(args.cost_frames)  # random policy only: no update yet
    random_fps = args.cost_frames / (time.perf_counter() - start)
    latent = rate(agent.update_latent, args.cost_updates)
    sac = rate(agent.update_actor_critic, args.cost_updates)
    steps = agent.config.sequence_length
    history = FrameHistory(1, steps, (3, 64, 64), 2)
    observation, _ = env.reset(seed=1)
    history.reset(0, frame_of(observation))

    def collect() -> None:
        action = agent.act(history.frames, history.actions, deterministic=False)[0]
        observation, reward, terminated, truncated, _ = env.step(action)
        frame = frame_of(observation)
        agent.buffer.add(action, float(reward), bool(terminated), frame)
        history.push(0, action, frame)
        if terminated or truncated:
            observation, _ = env.reset()
            history.reset(0, frame_of(observation))
            agent.buffer.start_episode(history.frames[0, -1])

    acting_fps = rate(collect, min(500, args.cost_frames))
    return {'agent_config': asdict(agent.config),
            'latent_updates_per_s': latent, 'latent_batch': agent.config.latent_batch_size,
            'actor_critic_updates_per_s': sac, 'sac_batch': agent.config.sac_batch_size,
            'collection_frames_per_s_random': random_fps,
            'collection_frames_per_s_actor': acting_fps,
            'peak_memory_mib': peak_memory_mb(), 'replay_frames': len(agent.buffer),
            'replay_capacity_mib': agent.buffer.frames.nbytes / 2**20}


class FrameStackPolicy(EpisodicPolicy):
    """An SB3 pixel model's deterministic policy on the last k frames (zeros before the
    first, as ``VecFrameStack`` fills them) of each episode."""

    def __init__(self, model: Any, stack: int) -> None:
        self.model = model
        self.stack = stack
        self.frames = np.zeros(0, dtype=np.uint8)
        self.started = np.zeros(0, dtype=bool)

    def start(self, episodes: int) -> None:
        """Forget all episodes."""
        self.frames = np.zeros(0, dtype=np.uint8)
        self.started = np.zeros(episodes, dtype=bool)

    def act(self, observations: npt.NDArray[Any],
            episodes: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The model's actions on the stacked frames of the given episodes."""
        frames = np.stack([frame_of(o) for o in observations])
        if self.frames.size == 0:
            shape = (len(self.started), self.stack * 3, *frames.shape[2:])
            self.frames = np.zeros(shape, dtype=np.uint8)
        for row, episode in enumerate(episodes):
            if not self.started[episode]:
                self.frames[episode] = 0
                self.started[episode] = True
            self.frames[episode, :-3] = self.frames[episode, 3:]
            self.frames[episode, -3:] = frames[row]
        actions, _ = self.model.predict(self.frames[episodes], deterministic=True)
        return np.asarray(actions, dtype=np.float32)


def sac_pixels(args: Args, config: TrainConfig, seed: int) -> dict[str, Any]:
    """SB3 SAC with a CnnPolicy on stacked pixel frames; evaluation every eval_freq."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

    torch.set_num_threads(1)
    env = VecFrameStack(VecTransposeImage(DummyVecEnv([lambda: make_pixel_env(config)])),
                        args.frame_stack, channels_order='first')
    model = SAC('CnnPolicy', env, learning_rate=args.sac_learning_rate, gamma=0.95,
                buffer_size=args.sac_buffer_size, learning_starts=args.sac_learning_starts,
                batch_size=args.sac_batch_size, optimize_memory_usage=True,
                replay_buffer_kwargs=dict(handle_timeout_termination=False),
                seed=seed, device='cpu', verbose=0)
    evaluations, steps_to_90, wall_to_90, train_time = [], None, None, 0.0
    while model.num_timesteps < (args.total_steps or 50_000):
        start = time.perf_counter()
        model.learn(args.eval_freq, reset_num_timesteps=False)
        train_time += time.perf_counter() - start
        result = evaluate_policy(FrameStackPolicy(model, args.frame_stack), config.sim,
                                 args.eval_episodes, config.eval_seed,
                                 observation_mode='pixels')
        evaluations.append({'env_steps': model.num_timesteps, 'train_time_s': train_time,
                            **result.as_dict()})
        print(f'sac-pixels seed {seed}: {model.num_timesteps} steps, success '
              f'{result.success_rate:.3f}', file=sys.stderr, flush=True)
        if steps_to_90 is None and result.success_rate >= 0.9:
            steps_to_90, wall_to_90 = model.num_timesteps, train_time
    final = evaluate_policy(FrameStackPolicy(model, args.frame_stack), config.sim,
                            args.final_episodes, config.eval_seed, observation_mode='pixels')
    return {'evaluations': evaluations, 'steps_to_90': steps_to_90,
            'wall_time_to_90_s': wall_to_90, 'train_time_s': train_time,
            'env_steps': int(model.num_timesteps), 'final': final.as_dict()}


def learn(args: Args) -> list[dict[str, Any]]:
    """One run per row and seed; the rows' results."""
    rows = []
    for name in args.rows:
        for seed in args.seeds:
            config = replace(named_config('slac'), seed=seed,
                             total_steps=args.total_steps or 50_000,
                             eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
                             final_eval_episodes=args.final_episodes, progress=False,
                             out_dir=f'{args.out_root}/{name}_seed{seed}')
            if name == 'sac-pixels':
                result = sac_pixels(args, config, seed)
            else:
                agent = args.slac
                if name == 'slac-privileged':
                    agent = replace(agent, model=replace(
                        agent.model, state_weight=args.privileged_state_weight))
                run = train(replace(config, slac=agent), 'benchmarks/rl_slac.py')
                result = asdict(run)
            rows.append({'row': name, 'seed': seed, **result})
            Path(args.output).write_text(json.dumps(rows, indent=2) + '\n')  # partial
    return rows


def dmc(args: Args) -> dict[str, Any]:
    """One seed of SLAC on DMC reacher_easy (resumable, see ``train_dmc``)."""
    from reacher_policy.training.slac.dmc_train import train_dmc
    return train_dmc(args.dmc, args.dmc_run, total_env_steps=args.total_steps or 100_000,
                     eval_every_env_steps=args.dmc_eval_every, episodes=args.dmc_episodes,
                     seed=args.seeds[0], command=' '.join(sys.argv))


def dmc_baselines(args: Args) -> dict[str, Any]:
    """A uniform random policy and a still arm on the dmc job's evaluation episodes."""
    from reacher_policy.training.slac.dmc_train import ConstantOrRandomPolicy, evaluate_dmc
    rows = {}
    for name, policy in (('random', ConstantOrRandomPolicy(args.seeds[0])),
                         ('still', ConstantOrRandomPolicy(still=True))):
        returns = evaluate_dmc(policy, args.dmc_episodes)
        rows[name] = {'mean_return': float(np.mean(returns)), 'returns': returns}
    return rows


def main() -> None:
    """Run the job and write its JSON."""
    args = tyro.cli(Args)
    torch.set_num_threads(1)
    jobs = {'cost': cost, 'learn': learn, 'dmc': dmc,
            'dmc-cost': lambda args: cost(args, dmc=True), 'dmc-baselines': dmc_baselines}
    results = jobs[args.job](args)
    document = {'job': args.job, 'args': asdict(args), 'command': ' '.join(sys.argv),
                'machine': platform.platform(), 'torch_threads': 1, 'results': results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(document, indent=2) + '\n')
    if args.job == 'learn':
        results = [{k: r[k] for k in ('row', 'seed', 'steps_to_90', 'final')}
                   for r in results]
    elif args.job == 'dmc':
        results = results['evaluations']
    print(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
