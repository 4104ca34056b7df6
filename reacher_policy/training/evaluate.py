"""Evaluation of a state policy on fixed seeds: success, time to goal and smoothness.

Episodes run in lockstep so one batched forward pass serves them all; episode ``i``
is reset with seed ``seed + i``, so two policies evaluated with the same seed and
episode count see the same goals and starting poses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from reacher_sim.config import SimConfig
from reacher_sim.env import ObservationMode
from reacher_sim.options import RewardConfig, RobustnessConfig
from reacher_sim.wrappers import make_env

PolicyFn = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""Maps (B, observation_dim) observations to (B, 2) actions in [-1, 1]."""


class EpisodicPolicy:
    """A policy with memory (frames, past actions) of each of the episodes run in lockstep.

    :func:`evaluate_policy` calls :meth:`start` once, then :meth:`act` with the active
    episodes' observations and their indices (the SLAC agent reads its last frames).
    """

    def start(self, episodes: int) -> None:
        """Forget everything; ``episodes`` episodes begin."""
        raise NotImplementedError

    def act(self, observations: npt.NDArray[Any],
            episodes: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Actions of some episodes after their last action.

        :param observations: (B, ...) what the episodes observe now.
        :param episodes: (B,) their indices in [0, episodes).
        :return: (B, 2) actions in [-1, 1].
        """
        raise NotImplementedError


@dataclass(frozen=True)
class PolicyEvalResult:
    """Aggregate of an evaluation.

    :param episodes: number of episodes.
    :param success_rate: fraction of episodes that reached and held the goal.
    :param mean_time_to_goal_s: mean over successful episodes of the time to success,
        seconds (NaN when none succeeded).
    :param mean_return: mean undiscounted episode return.
    :param mean_action_change: mean over steps of ``mean_j |a_t - a_{t-1}|`` (actions in
        [-1, 1]; the first step of an episode is excluded).
    :param mean_jerk: mean over steps of ``mean_j |a_t - 2 a_{t-1} + a_{t-2}|
        * max_joint_velocity / dt^2``, the joint jerk in rad/s^3 of the commanded
        velocities.
    :param wall_time_s: seconds the evaluation took.
    """

    episodes: int
    success_rate: float
    mean_time_to_goal_s: float
    mean_return: float
    mean_action_change: float
    mean_jerk: float
    wall_time_s: float

    def as_dict(self) -> dict[str, float]:
        """The fields as a JSON-ready dict."""
        return {k: float(v) for k, v in asdict(self).items()}


def evaluate_policy(policy: PolicyFn | EpisodicPolicy, sim: SimConfig, episodes: int = 50,
                    seed: int = 10_000, robustness: RobustnessConfig | None = None,
                    reward: RewardConfig | None = None,
                    observation_mode: ObservationMode = 'state',
                    latent_checkpoint: str | None = None) -> PolicyEvalResult:
    """Run ``episodes`` episodes on seeds ``seed, seed + 1, ...`` in lockstep.

    :param policy: batched deterministic policy, or an :class:`EpisodicPolicy`.
    :param sim: the task.
    :param episodes: number of episodes, >= 1.
    :param seed: seed of the first episode.
    :param robustness: noise and delay during evaluation; None for none.
    :param reward: reward weights (only the returned mean return depends on them).
    :param observation_mode: what the policy observes ('state', 'pixels').
    :param latent_checkpoint: when given (a SLAC perception checkpoint, '' = the shipped
        one), the policy observes the filtered latent of each frame
        (:class:`reacher_policy.training.slac.latent_env.SlacLatentObservation`) and
        ``observation_mode`` is ignored.
    :return: the aggregate.
    """
    start = time.perf_counter()
    if latent_checkpoint is not None:
        from reacher_policy.training.slac.latent_env import SlacLatentObservation
        envs: list[Any] = [SlacLatentObservation(
            make_env(sim, 'pixels', reward=reward, robustness=robustness), latent_checkpoint)
            for _ in range(episodes)]
    else:
        envs = [make_env(sim, observation_mode, reward=reward, robustness=robustness)
                for _ in range(episodes)]
    if isinstance(policy, EpisodicPolicy):
        policy.start(episodes)
    observations = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    active = np.ones(episodes, dtype=bool)
    returns = np.zeros(episodes)
    success = np.zeros(episodes, dtype=bool)
    steps_to_goal = np.zeros(episodes)
    history: list[list[npt.NDArray[np.float64]]] = [[] for _ in range(episodes)]
    changes: list[float] = []
    jerks: list[float] = []
    while active.any():
        index = np.flatnonzero(active)
        if isinstance(policy, EpisodicPolicy):
            actions = np.asarray(policy.act(observations[index], index), dtype=np.float32)
        else:
            actions = np.asarray(policy(observations[index]), dtype=np.float32)
        for row, i in enumerate(index):
            action = np.clip(actions[row].astype(np.float64), -1.0, 1.0)
            past = history[i]
            if past:
                changes.append(float(np.mean(np.abs(action - past[-1]))))
            if len(past) >= 2:
                second = action - 2.0 * past[-1] + past[-2]
                jerks.append(float(np.mean(np.abs(second))) * sim.geometry.max_joint_velocity
                             / sim.timing.dt ** 2)
            past.append(action)
            observation, step_reward, terminated, truncated, info = envs[i].step(actions[row])
            observations[i] = observation
            returns[i] += float(step_reward)
            if terminated or truncated:
                active[i] = False
                success[i] = bool(info['is_success'])
                steps_to_goal[i] = len(past)
    times = steps_to_goal[success] * sim.timing.dt
    return PolicyEvalResult(
        episodes=episodes, success_rate=float(success.mean()),
        mean_time_to_goal_s=float(times.mean()) if success.any() else float('nan'),
        mean_return=float(returns.mean()),
        mean_action_change=float(np.mean(changes)) if changes else 0.0,
        mean_jerk=float(np.mean(jerks)) if jerks else 0.0,
        wall_time_s=time.perf_counter() - start)


def torch_policy(actor: torch.nn.Module) -> PolicyFn:
    """Wrap a deterministic torch actor as a batched numpy policy."""
    def act(observations: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.no_grad():
            return actor(torch.as_tensor(observations, dtype=torch.float32)).numpy()
    return act


def sb3_policy(model: Any) -> PolicyFn:
    """Wrap an SB3 model's deterministic ``predict`` as a batched numpy policy."""
    def act(observations: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        actions, _ = model.predict(observations, deterministic=True)
        return np.asarray(actions, dtype=np.float32)
    return act


def random_policy(seed: int = 0) -> PolicyFn:
    """A uniform random policy (a floor for comparisons)."""
    rng = np.random.default_rng(seed)

    def act(observations: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return rng.uniform(-1.0, 1.0, (len(observations), 2)).astype(np.float32)
    return act


def load_policy(checkpoint: str, sim: SimConfig,
                allow_pickle: bool = False) -> tuple[PolicyFn, SimConfig]:
    """Load a .pt actor or an SB3 .zip model as a batched policy.

    :param checkpoint: path.
    :param sim: the task; a .pt checkpoint replaces its geometry and timing with the ones
        it was trained for.
    :param allow_pickle: load an SB3 .zip the SB3 way, unpickling its data (runs code
        from the file); by default only its actor's weights are read.
    :return: the policy and the task config to evaluate it on.
    :raises ValueError: for a file that cannot be read safely (naming ``--allow-pickle``).
    """
    from reacher_policy.checkpoint import load_actor
    if checkpoint.endswith('.zip'):
        if allow_pickle:
            from reacher_policy.training.sb3 import load_model
            return sb3_policy(load_model(checkpoint)), sim
        from reacher_policy.training.export import actor_from_state_dict
        from reacher_policy.training.sb3 import read_model_zip
        weights = read_model_zip(checkpoint).params['policy']
        return torch_policy(actor_from_state_dict(weights)), sim
    actor, meta = load_actor(checkpoint)
    sim = replace(sim, geometry=meta.geometry, timing=meta.timing)
    return torch_policy(actor), sim


def latent_input(checkpoint: str, latent_checkpoint: str) -> str | None:
    """What an actor checkpoint observes, as :func:`evaluate_policy`'s ``latent_checkpoint``.

    :param checkpoint: an actor .pt or an SB3 .zip (a .zip is taken to observe the state).
    :param latent_checkpoint: the SLAC perception checkpoint to filter frames with ('' =
        the shipped one).
    :return: None for a state actor; ``latent_checkpoint`` for an actor on the SLAC latent.
    :raises ValueError: when that latent model is not the one the actor was trained on.
    """
    if checkpoint.endswith('.zip'):
        return None
    from reacher_common.weights import latent_model_fingerprint
    from reacher_perception.slac.checkpoint import default_slac_checkpoint
    from reacher_policy.checkpoint import load_actor
    meta = load_actor(checkpoint)[1]
    if meta.observation != 'slac-latent':
        return None
    file = latent_checkpoint or str(default_slac_checkpoint())
    if latent_model_fingerprint(file) != meta.latent_fingerprint:
        raise ValueError(f"{checkpoint} was trained on another latent model than {file}'s "
                         f'(fingerprint {meta.latent_fingerprint})')
    return latent_checkpoint


def evaluate_checkpoint(checkpoint: str, sim: SimConfig, episodes: int = 500,
                        seed: int = 10_000, robustness: RobustnessConfig | None = None,
                        torch_threads: int = 1, allow_pickle: bool = False,
                        latent_checkpoint: str = '') -> dict[str, Any]:
    """Evaluate a checkpoint on fixed seeds (``reacher policy eval``).

    :param checkpoint: an actor .pt, an SB3 .zip or a SLAC agent .pt (``agent.pt`` of
        ``--algo slac``, evaluated on pixels).
    :param sim: the task; for a .pt checkpoint, the geometry and timing it was trained
        for replace sim's.
    :param episodes: episodes, >= 1.
    :param seed: seed of the first episode.
    :param robustness: noise and delay during evaluation; None for none.
    :param torch_threads: ``torch.set_num_threads``.
    :param allow_pickle: see :func:`load_policy`.
    :param latent_checkpoint: for an actor on the SLAC latent, the perception checkpoint
        that filters the frames ('' = the shipped one; its latent model must be the
        actor's, :func:`latent_input`).
    :return: the JSON-ready report: the inputs, the task used and the
        :class:`PolicyEvalResult` fields.
    """
    robustness = robustness or RobustnessConfig()
    torch.set_num_threads(torch_threads)
    from reacher_policy.training.slac.agent import is_agent_checkpoint
    if is_agent_checkpoint(checkpoint):
        from reacher_policy.training.slac.acting import SlacEvalPolicy
        from reacher_policy.training.slac.agent import REACHER_ENV_NAME, SlacAgent
        agent = SlacAgent.load(checkpoint, expected_env=REACHER_ENV_NAME)
        sim = replace(sim, geometry=agent.geometry, timing=agent.timing)
        result = evaluate_policy(SlacEvalPolicy(agent, agent.config.sequence_length), sim,
                                 episodes, seed, robustness, observation_mode='pixels')
    else:
        policy, sim = load_policy(checkpoint, sim, allow_pickle)
        result = evaluate_policy(policy, sim, episodes, seed, robustness,
                                 latent_checkpoint=latent_input(checkpoint, latent_checkpoint))
    return {'checkpoint': checkpoint, 'episodes': episodes, 'seed': seed,
            'sim': asdict(sim), 'robustness': asdict(robustness), **result.as_dict()}
