"""SLAC on DeepMind Control's reacher_easy from pixels: a resumable run and its evaluation.

:func:`train_dmc` trains one seed of :class:`SlacAgent` on
:class:`reacher_policy.training.dmc.DmcPixelEnv` (64x64, action repeat 4) for a number of
**env** steps (control steps; an agent step is 4 of them), evaluates the deterministic
actor every ``eval_every_env_steps`` and at the end with :func:`evaluate_dmc` (the
average return, out of 1000, of ``episodes`` fixed-seed episodes, as the papers report),
and after each evaluation writes into ``out_dir``: ``agent.pt`` (weights, optimisers,
counts), ``replay.npz`` (the replay buffer) and ``progress.json`` (the evaluations so
far). Running it again with the same ``out_dir`` continues from there: the agent, its
replay and its step count are restored; what is lost is the steps since the last
evaluation, the current episode (a resumed run starts a new one) and the random
generators' states (reseeded from the seed and the step count).
"""

from __future__ import annotations

from dataclasses import asdict
import json
from pathlib import Path
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from reacher_policy.training.dmc import DmcPixelEnv
from reacher_policy.training.evaluate import EpisodicPolicy
from reacher_policy.training.slac.acting import SlacEvalPolicy
from reacher_policy.training.slac.agent import SlacAgent
from reacher_policy.training.slac.callback import SlacCallback
from reacher_policy.training.slac.config import SlacAgentConfig

EVAL_SEED = 10_000
"""Seed of the first evaluation episode (episode i uses EVAL_SEED + i)."""


class ConstantOrRandomPolicy(EpisodicPolicy):
    """A baseline: uniform random actions (seeded) or, with ``still``, zero actions.

    :param seed: seeds the random actions.
    :param still: act 0 (no torque) instead.
    """

    def __init__(self, seed: int = 0, still: bool = False) -> None:
        self.rng = np.random.default_rng(seed)
        self.still = still

    def start(self, episodes: int) -> None:
        """Nothing to forget."""

    def act(self, observations: npt.NDArray[Any],
            episodes: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """(B, 2) float32 actions in [-1, 1]."""
        shape = (len(episodes), 2)
        if self.still:
            return np.zeros(shape, np.float32)
        return self.rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def agent_policy(agent: SlacAgent) -> SlacEvalPolicy:
    """The agent's deterministic actor as an :class:`EpisodicPolicy`."""
    return SlacEvalPolicy(agent, agent.config.sequence_length, agent.config.model.action_dim)


def evaluate_dmc(policy: EpisodicPolicy, episodes: int = 10, seed: int = EVAL_SEED,
                 image_size: int = 64, action_repeat: int = 4) -> list[float]:
    """Returns of a policy on ``episodes`` seeded reacher_easy episodes, in lockstep.

    :param policy: e.g. :func:`agent_policy` (frames must fit its model).
    :param episodes: number of episodes, each with its own env seeded ``seed + i``.
    :param seed: seed of the first episode.
    :param image_size: frame width = height, pixels.
    :param action_repeat: the env's (the agent's training env's).
    :return: each episode's return (sum of the control steps' rewards; reacher_easy: out
        of 1000 for 1000 control steps).
    """
    envs = [DmcPixelEnv(image_size=image_size, action_repeat=action_repeat)
            for _ in range(episodes)]
    policy.start(episodes)
    observations = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    returns = np.zeros(episodes)
    running = np.arange(episodes)
    while running.size:
        actions = policy.act(np.stack([observations[i] for i in running]), running)
        still = []
        for action, i in zip(actions, running, strict=True):
            observations[i], reward, terminated, truncated, _ = envs[i].step(action)
            returns[i] += reward
            if not (terminated or truncated):
                still.append(i)
        running = np.asarray(still, dtype=np.int64)
    for env in envs:
        env.close()
    return [float(value) for value in returns]


class DmcProgress(SlacCallback):
    """Evaluates, saves and logs every ``eval_every`` agent steps of a :func:`train_dmc` run.

    :param out_dir: the run folder.
    :param state: the progress document (filled in place, written as progress.json).
    :param eval_every: agent steps between evaluations.
    :param episodes: evaluation episodes.
    :param action_repeat: the env's.
    """

    def __init__(self, out_dir: Path, state: dict[str, Any], eval_every: int,
                 episodes: int, action_repeat: int) -> None:
        self.out_dir, self.state = out_dir, state
        self.eval_every, self.episodes = eval_every, episodes
        self.action_repeat = action_repeat
        self.clock = time.perf_counter()

    def on_step(self, agent: SlacAgent) -> bool:
        """At each multiple of ``eval_every``: evaluate, then save the run."""
        if agent.num_timesteps % self.eval_every == 0:
            self.checkpoint(agent)
        return True

    def checkpoint(self, agent: SlacAgent) -> None:
        """Evaluate now, append the row, write agent.pt, replay.npz and progress.json."""
        now = time.perf_counter()
        self.state['train_time_s'] += now - self.clock
        returns = evaluate_dmc(agent_policy(agent), self.episodes,
                               image_size=agent.config.model.image_size,
                               action_repeat=self.action_repeat)
        row = {'env_steps': agent.num_timesteps * self.action_repeat,
               'agent_steps': agent.num_timesteps, 'latent_updates': agent.latent_updates,
               'sac_updates': agent.sac_updates, 'mean_return': float(np.mean(returns)),
               'std_return': float(np.std(returns)), 'returns': returns,
               'train_time_s': self.state['train_time_s']}
        evals = self.state['evaluations']
        if not evals or evals[-1]['agent_steps'] != row['agent_steps']:
            evals.append(row)
        print(f"[dmc] {row['env_steps']} env steps: return {row['mean_return']:.1f} "
              f"+- {row['std_return']:.1f} ({self.state['train_time_s']:.0f} s training, "
              f"{time.perf_counter() - now:.0f} s eval)", file=sys.stderr, flush=True)
        agent.save(self.out_dir / 'agent.pt', {'command': self.state['command']})
        agent.buffer.save(self.out_dir / 'replay.npz')
        write_json(self.out_dir / 'progress.json', self.state)
        self.clock = time.perf_counter()


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON, atomically."""
    partial = path.with_name(path.name + '.partial')
    partial.write_text(json.dumps(document, indent=2) + '\n')
    partial.replace(path)


def train_dmc(config: SlacAgentConfig, out_dir: str | Path, total_env_steps: int = 100_000,
              eval_every_env_steps: int = 10_000, episodes: int = 10, seed: int = 0,
              action_repeat: int = 4, command: str = '') -> dict[str, Any]:
    """Train (or continue) one seed of SLAC on reacher_easy from pixels; see the module.

    :param config: the agent (its counts are in agent steps: ``initial_collection_steps``
        etc. are agent steps of ``action_repeat`` env steps each).
    :param out_dir: the run folder; an ``agent.pt`` there is resumed.
    :param total_env_steps: env steps to reach in all (a multiple of ``action_repeat``).
    :param eval_every_env_steps: env steps between evaluations (and saves).
    :param episodes: evaluation episodes.
    :param seed: training seed (torch, replay sampling, random actions, env).
    :param action_repeat: control steps per agent step.
    :param command: recorded in the checkpoint and progress.json.
    :return: the progress document (``evaluations``, ``train_time_s``, ``resumed_at``...).
    :raises ValueError: from :meth:`SlacAgent.load` or :meth:`SlacReplayBuffer.load` for
        a run folder that does not fit ``config``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = DmcPixelEnv(image_size=config.model.image_size, action_repeat=action_repeat)
    progress_path = out / 'progress.json'
    if (out / 'agent.pt').is_file():
        agent = SlacAgent.load(out / 'agent.pt', env, config, seed=seed)
        if (out / 'replay.npz').is_file():
            agent.buffer.load(out / 'replay.npz')
        agent.rng = np.random.default_rng([seed, agent.num_timesteps])
        torch.manual_seed(seed * 1_000_003 + agent.num_timesteps)
        state = json.loads(progress_path.read_text())
        state['resumed_at'].append(agent.num_timesteps * action_repeat)
    else:
        agent = SlacAgent(config, env, seed=seed)
        state = {'env': env.description(), 'seed': seed, 'agent_config': asdict(config),
                 'command': command, 'evaluation_episodes': episodes,
                 'evaluation_seed': EVAL_SEED, 'train_time_s': 0.0, 'resumed_at': [],
                 'evaluations': []}
    state['total_env_steps'] = total_env_steps
    callback = DmcProgress(out, state, max(1, eval_every_env_steps // action_repeat),
                           episodes, action_repeat)
    remaining = total_env_steps // action_repeat - agent.num_timesteps
    if remaining > 0:
        agent.learn(remaining, callback, reset_num_timesteps=False)
    if not state['evaluations'] or state['evaluations'][-1]['agent_steps'] != \
            agent.num_timesteps:
        callback.checkpoint(agent)
    env.close()
    state['env_steps'] = agent.num_timesteps * action_repeat
    write_json(progress_path, state)
    return state
