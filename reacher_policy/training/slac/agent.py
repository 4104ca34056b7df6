"""The SLAC agent (arXiv 1907.00953 sec. 5, algorithm 1), shaped like an SB3 algorithm.

Algorithm 1, as run by :meth:`SlacAgent.learn`: collect ``initial_collection_steps``
env steps with a uniform random policy; pretrain the latent model on them for
``initial_latent_steps`` updates; then at every env step act with the actor, store the
transition and (every ``update_interval`` steps) make ``latent_updates_per_step``
latent-model and ``sac_updates_per_step`` actor-critic updates, each on its own batch.

- Latent model (:meth:`update_latent`): minus the ELBO with the reward factor
  (:func:`reacher_policy.training.slac.networks.model_losses`), plus the state heads'
  loss in the privileged variant.
- Critic (:meth:`update_actor_critic`): Q(z_S, a_S) against
  ``r_S + gamma (1 - terminated) (min Q'(z_{S+1}, a') - alpha log pi(a' | ...))`` where
  ``z_S, z_{S+1}`` are one joint sample of the filtering **posterior**
  q(z_{1:S+1} | x_{1:S+1}, a_{1:S}) (:meth:`critic_latents`; paper eq. 10), not of the
  prior, and the latent model gets no gradient from the critic.
- Actor: pi(a | features of x_{1:S}, a_{1:S-1}), the encoder's features detached
  (paper eq. 11), against min Q(z_S, a); the entropy coefficient is tuned as in SAC.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from reacher_common.config_tools import config_from_dict
from reacher_common.geometry import (
    ArmGeometry,
    geometry_from_dict,
    geometry_to_dict,
    mismatches,
    Timing,
)
from reacher_common.weights import load_checkpoint_payload, load_weights
from reacher_perception.slac.checkpoint import timing_mismatches
from reacher_perception.slac.config import states_from_truth
from reacher_perception.slac.latent import LatentModel
from reacher_policy.training.slac.acting import frame_of, FrameHistory
from reacher_policy.training.slac.buffer import SlacReplayBuffer
from reacher_policy.training.slac.callback import SlacCallback
from reacher_policy.training.slac.config import SlacAgentConfig
from reacher_policy.training.slac.networks import (
    actor_inputs,
    model_losses,
    SlacActor,
    SlacCritic,
    SlacRewardModel,
)
from reacher_policy.training.symmetry import augment_sequences, GROUP_ORDER

SLAC_AGENT_FORMAT = 'reacher-slac-agent-1'
"""``metadata['format']`` of a SLAC agent checkpoint."""
REACHER_ENV_NAME = 'reacher'
"""``metadata['env']['name']`` of an agent trained on the reacher's pixel env (checkpoints
without ``env`` are of this kind; their geometry and ``dt`` are in ``geometry``)."""


def describe_env(env: Any) -> dict[str, Any]:
    """What a checkpoint records of its env (e.g. ``DmcPixelEnv.description()``).

    An unwrapped env's ``description()`` if it has one, else ``{'name': 'reacher'}``.
    """
    describe = getattr(env.unwrapped, 'description', None)
    return dict(describe()) if callable(describe) else {'name': REACHER_ENV_NAME}


def is_agent_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a readable SLAC agent checkpoint (a .pt with its format)."""
    if not str(path).endswith('.pt') or not Path(path).is_file():
        return False
    try:
        payload = load_weights(path, 'checkpoint')
    except ValueError:
        return False
    metadata = payload.get('metadata') if isinstance(payload, dict) else None
    return isinstance(metadata, dict) and metadata.get('format') == SLAC_AGENT_FORMAT


class SlacAgent:
    """Stochastic Latent Actor-Critic on the reacher's pixel env or DeepMind Control's.

    :param config: the hyperparameters.
    :param env: a gymnasium env with ``observation_mode='pixels'`` over a
        :class:`reacher_sim.env.ReacherEnv` (its geometry and ``dt`` are recorded in
        checkpoints), or a :class:`reacher_policy.training.dmc.DmcPixelEnv` (its
        ``description()`` is); None: build only, e.g. to load or to test the update steps
        on batches. Its (H, W, 3) uint8 frames must be ``config.model.image_size`` wide.
    :param seed: seeds torch, the replay sampling, the random actions and the env's first
        reset.
    :param geometry: the arm and camera, when there is no env (default: ``ArmGeometry()``).
    :param timing: the frame period, when there is no env (default: ``Timing()``).
    :param tensorboard_log: a folder for TensorBoard scalars (None: none).
    :param env_description: the env, when there is no env (default: the reacher's).
    :param symmetry_augmentation: map each sampled sequence by a random element of the
        task's D4 symmetry (:func:`reacher_policy.training.symmetry.augment_sequences`).
    :raises ValueError: for the privileged variant (only the reacher's env gives the true
        state) or ``symmetry_augmentation`` on an env other than the reacher's.
    """

    def __init__(self, config: SlacAgentConfig, env: Any = None, seed: int = 0,
                 geometry: ArmGeometry | None = None, timing: Timing | None = None,
                 tensorboard_log: str | None = None,
                 env_description: dict[str, Any] | None = None,
                 symmetry_augmentation: bool = False) -> None:
        self.config = config
        self.symmetry_augmentation = symmetry_augmentation
        self.env = env
        self.seed = seed
        self.env_description = (describe_env(env) if env is not None
                                else dict(env_description or {'name': REACHER_ENV_NAME}))
        reacher = self.env_description['name'] == REACHER_ENV_NAME
        if env is not None and reacher:
            sim = env.unwrapped.config
            geometry, timing = sim.geometry, sim.timing
        if not reacher and (config.privileged or symmetry_augmentation):
            raise ValueError(f'the privileged variant and symmetry_augmentation need the '
                             f'reacher env, not {self.env_description["name"]!r}')
        self.geometry = geometry or ArmGeometry()  # the reacher's (unused on other envs)
        self.timing = timing or Timing()
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        model = config.model
        latent_dim = model.z1_dim + model.z2_dim
        action_dim, steps = model.action_dim, config.sequence_length
        self.latent = LatentModel(model)
        self.reward_model = SlacRewardModel(latent_dim, action_dim, model.hidden_units)
        self.actor = SlacActor(steps * model.encoded_dim + (steps - 1) * action_dim,
                               action_dim, config.hidden_units)
        self.critic = SlacCritic(latent_dim, action_dim, config.hidden_units)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(config.initial_log_alpha, requires_grad=True)
        self.latent_optimizer = torch.optim.Adam(
            [*self.latent.parameters(), *self.reward_model.parameters()],
            lr=config.latent_learning_rate)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(),
                                                lr=config.sac_learning_rate)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(),
                                                 lr=config.sac_learning_rate)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.sac_learning_rate)
        size = self.geometry.image_size if reacher else config.model.image_size
        self.buffer = SlacReplayBuffer(
            capacity=config.buffer_size, frame_shape=(3, size, size), action_dim=action_dim,
            sequence_length=steps, state_dim=model.state_dim if config.privileged else 0)
        self.num_timesteps = 0
        self.latent_updates = 0
        self.sac_updates = 0
        self.writer: Any = None
        if tensorboard_log:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(tensorboard_log)

    # The two update steps (callable alone, on a given batch or a sampled one).

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Sequences from the replay (:meth:`SlacReplayBuffer.sample`), D4-mapped if on."""
        batch = self.buffer.sample(batch_size, self.rng)
        if not self.symmetry_augmentation:
            return batch
        return augment_sequences(batch, self.rng.integers(0, GROUP_ORDER, batch_size))

    def update_latent(self, batch: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """One Adam step of the latent model and reward factor on minus the ELBO.

        :param batch: sequences (B, S+1 frames); None samples ``latent_batch_size``.
        :return: the loss terms (``loss_kld``, ``loss_image``, ``loss_reward``,
            ``loss_state``, ``loss``), floats.
        """
        batch = batch if batch is not None else self.sample(self.config.latent_batch_size)
        losses = model_losses(self.latent, self.reward_model, batch,
                              reward_weight=self.config.reward_weight)
        self.latent_optimizer.zero_grad()
        losses.loss.backward()
        self.latent_optimizer.step()
        self.latent_updates += 1
        values = losses.as_floats()
        self._log('latent', values, self.latent_updates)
        return values

    def critic_latents(self, batch: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's features and one posterior sample of the latent, no gradient.

        :param batch: ``images`` (B, S+1, 3, H, W), ``actions`` (B, S, A).
        :return: (B, S+1, encoded_dim) features and (B, S+1, z1_dim + z2_dim) latents
            z_t = (z1_t, z2_t) drawn from q(z_{1:S+1} | x_{1:S+1}, a_{1:S}).
        """
        with torch.no_grad():
            features = self.latent.encoder(batch['images'])
            z1, z2, _ = self.latent.sample_posterior(features, batch['actions'])
        return features, torch.cat([z1, z2], dim=-1)

    def critic_loss(self, batch: dict[str, torch.Tensor], features: torch.Tensor,
                    latent: torch.Tensor) -> torch.Tensor:
        """The soft Bellman error of both critics on the batch's last transitions.

        :param batch: ``actions``, ``rewards`` and ``terminated`` of the sequences.
        :param features: (B, S+1, encoded_dim) from :meth:`critic_latents`.
        :param latent: (B, S+1, latent_dim) from :meth:`critic_latents`.
        :return: a scalar: mean squared error of Q1 plus that of Q2.
        """
        actions = batch['actions']
        with torch.no_grad():
            next_action, next_log_pi = self.actor.sample(
                actor_inputs(features[:, 1:], actions[:, 1:]))
            next_q = torch.min(*self.critic_target(latent[:, -1], next_action))
            soft = next_q - self.log_alpha.exp() * next_log_pi
            target = batch['rewards'][:, -1] + (
                self.config.gamma * (1.0 - batch['terminated'][:, -1]) * soft)
        q1, q2 = self.critic(latent[:, -2], actions[:, -1])
        return (q1 - target).pow(2).mean() + (q2 - target).pow(2).mean()

    def update_actor_critic(self, batch: dict[str, torch.Tensor] | None = None
                            ) -> dict[str, float]:
        """One SAC step: critics, actor, entropy coefficient, then the target critics.

        :param batch: sequences (B, S+1 frames); None samples ``sac_batch_size``.
        :return: ``loss_critic``, ``loss_actor``, ``loss_alpha``, ``alpha``, ``entropy``.
        """
        batch = batch if batch is not None else self.sample(self.config.sac_batch_size)
        features, latent = self.critic_latents(batch)
        loss_critic = self.critic_loss(batch, features, latent)
        self.critic_optimizer.zero_grad()
        loss_critic.backward()
        self.critic_optimizer.step()
        action, log_pi = self.actor.sample(
            actor_inputs(features[:, :-1], batch['actions'][:, :-1]))
        q = torch.min(*self.critic(latent[:, -2], action))
        alpha = self.log_alpha.exp().detach()
        loss_actor = (alpha * log_pi - q).mean()
        self.actor_optimizer.zero_grad()
        loss_actor.backward()
        self.actor_optimizer.step()
        loss_alpha = -(self.log_alpha * (log_pi.detach() + self.config.target_entropy)).mean()
        self.alpha_optimizer.zero_grad()
        loss_alpha.backward()
        self.alpha_optimizer.step()
        with torch.no_grad():
            for target, source in zip(self.critic_target.parameters(),
                                      self.critic.parameters(), strict=True):
                target.lerp_(source, self.config.tau)
        self.sac_updates += 1
        values = {'loss_critic': float(loss_critic.detach()),
                  'loss_actor': float(loss_actor.detach()),
                  'loss_alpha': float(loss_alpha.detach()), 'alpha': float(alpha),
                  'entropy': float(-log_pi.detach().mean())}
        self._log('sac', values, self.sac_updates)
        return values

    def _log(self, group: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None and step % 100 == 0:
            for name, value in values.items():
                self.writer.add_scalar(f'{group}/{name}', value, self.num_timesteps)

    # Acting.

    def encode(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The encoder's features of frames.

        :param frames: (..., 3, H, W) uint8.
        :return: (..., encoded_dim) float32.
        """
        with torch.no_grad():
            images = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
            return self.latent.encoder(images).numpy()

    def act_on_features(self, features: npt.NDArray[np.float32],
                        actions: npt.NDArray[np.float32],
                        deterministic: bool = True) -> npt.NDArray[np.float32]:
        """Actions from the features of the last S frames and the S - 1 actions between.

        :param features: (B, S, encoded_dim) float32, from :meth:`encode`.
        :param actions: (B, S - 1, action_dim) float32.
        :param deterministic: tanh of the mean (evaluation) or a sample (training).
        :return: (B, action_dim) float32 in [-1, 1].
        """
        with torch.no_grad():
            inputs = actor_inputs(torch.from_numpy(np.ascontiguousarray(features)),
                                  torch.from_numpy(np.ascontiguousarray(actions)))
            action = self.actor(inputs) if deterministic else self.actor.sample(inputs)[0]
        return action.numpy().astype(np.float32)

    def act(self, frames: npt.NDArray[np.uint8], actions: npt.NDArray[np.float32],
            deterministic: bool = True) -> npt.NDArray[np.float32]:
        """Actions from the last S frames and S - 1 actions of a batch of envs.

        :param frames: (B, S, 3, H, W) uint8 (encoded anew: the encoder keeps learning).
        :param actions: (B, S - 1, action_dim) float32.
        :param deterministic: as :meth:`act_on_features`.
        :return: (B, action_dim) float32 in [-1, 1].
        """
        return self.act_on_features(self.encode(frames), actions, deterministic)

    def _state(self, info: dict[str, Any]) -> npt.NDArray[np.float32] | None:
        """The privileged variant's true state of the frame ``info`` came with."""
        if not self.config.privileged:
            return None
        return states_from_truth(info['joint_positions'], info['fingertip'], info['goal'],
                                 self.geometry.reach_m)

    def learn(self, total_timesteps: int, callback: SlacCallback | None = None,
              reset_num_timesteps: bool = True) -> SlacAgent:
        """Run algorithm 1 for ``total_timesteps`` env steps (see the module docstring).

        Updates start once the replay holds ``initial_collection_steps`` transitions. A
        resumed agent (``reset_num_timesteps=False`` after :meth:`load`) with an empty
        replay acts with its actor and waits that long before updating again (with a
        restored replay, :meth:`SlacReplayBuffer.load`, it goes on at once); the
        pretraining is not repeated. The env's first reset is seeded with ``seed`` plus
        the steps done so far (so a resumed run does not replay its first episodes).

        :param total_timesteps: env steps to run (counted on from ``num_timesteps`` when
            ``reset_num_timesteps`` is False).
        :param callback: hooks; ``on_step`` returning False stops.
        :param reset_num_timesteps: start the count from 0.
        :return: self.
        :raises ValueError: without an env.
        """
        if self.env is None:
            raise ValueError('SlacAgent.learn needs an env (pass env= to the constructor)')
        config, env, steps = self.config, self.env, self.config.sequence_length
        if reset_num_timesteps:
            self.num_timesteps = 0
        end = self.num_timesteps + total_timesteps
        random_until = config.initial_collection_steps if self.latent_updates == 0 else 0
        observation, info = env.reset(seed=self.seed + self.num_timesteps)
        frame = frame_of(observation)
        history = FrameHistory(1, steps, frame.shape, config.model.action_dim)
        history.reset(0, frame)
        self.buffer.start_episode(frame, self._state(info))
        if callback is not None:
            callback.on_training_start(self)
        while self.num_timesteps < end:
            if self.num_timesteps < random_until:
                drawn = self.rng.uniform(-1.0, 1.0, config.model.action_dim)
            else:
                drawn = self.act(history.frames, history.actions, deterministic=False)[0]
            action = np.clip(drawn, -1.0, 1.0).astype(np.float32)
            observation, reward, terminated, truncated, info = env.step(action)
            frame = frame_of(observation)
            self.buffer.add(action, float(reward), bool(terminated), frame, self._state(info))
            self.num_timesteps += 1
            if terminated or truncated:
                observation, info = env.reset()
                frame = frame_of(observation)
                history.reset(0, frame)
                self.buffer.start_episode(frame, self._state(info))
            else:
                history.push(0, action, frame)
            if (self.buffer.transitions >= config.initial_collection_steps
                    and self.num_timesteps % config.update_interval == 0):
                if self.latent_updates == 0:
                    for _ in range(config.initial_latent_steps):
                        self.update_latent()
                for _ in range(config.latent_updates_per_step):
                    self.update_latent()
                for _ in range(config.sac_updates_per_step):
                    self.update_actor_critic()
            if callback is not None and not callback.on_step(self):
                break
        if callback is not None:
            callback.on_training_end(self)
        return self

    # Saving and loading.

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {'latent': self.latent, 'reward': self.reward_model, 'actor': self.actor,
                'critic': self.critic, 'critic_target': self.critic_target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'latent': self.latent_optimizer, 'actor': self.actor_optimizer,
                'critic': self.critic_optimizer, 'alpha': self.alpha_optimizer}

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write weights, optimiser states and metadata (no replay), atomically.

        The file is ``torch.save`` of plain types and tensors, read back with
        ``torch.load(weights_only=True)``: ``metadata`` holds ``format``
        (``SLAC_AGENT_FORMAT``), ``variant``, ``agent_config``, ``model_config`` (the
        latent model's, as the perception's checkpoints store it), ``env``
        (:func:`describe_env`), ``geometry`` (the reacher's: the flat geometry and
        ``dt``; absent for other envs), the step and update counts and ``extra``.

        :param path: the .pt file.
        :param extra: more metadata (plain types), e.g. the command line.
        :return: the path.
        """
        path = Path(path)
        metadata = {'format': SLAC_AGENT_FORMAT, 'variant': self.config.variant,
                    'agent_config': asdict(self.config),
                    'model_config': self.config.model.to_dict(),
                    'env': self.env_description,
                    'num_timesteps': self.num_timesteps,
                    'latent_updates': self.latent_updates, 'sac_updates': self.sac_updates,
                    **(extra or {})}
        if self.env_description['name'] == REACHER_ENV_NAME:
            metadata['geometry'] = geometry_to_dict(self.geometry, self.timing)
        payload: dict[str, Any] = {name: module.state_dict()
                                   for name, module in self._modules().items()}
        payload['log_alpha'] = self.log_alpha.detach().clone()
        payload['optimizers'] = {name: optimizer.state_dict()
                                 for name, optimizer in self._optimizers().items()}
        payload['metadata'] = metadata
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix('.partial')
        torch.save(payload, partial)
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, env: Any = None, config: SlacAgentConfig | None = None,
             expected_geometry: ArmGeometry | None = None,
             expected_timing: Timing | None = None, seed: int = 0,
             tensorboard_log: str | None = None,
             expected_env: str | dict[str, Any] | None = None,
             symmetry_augmentation: bool = False) -> SlacAgent:
        """Read an agent with ``weights_only=True``, refusing one that does not fit.

        :param path: the .pt file from :meth:`save`.
        :param env: the env to go on training in; its :func:`describe_env` (and for the
            reacher its geometry and ``dt``) must be the checkpoint's.
        :param config: the hyperparameters to go on with; its ``model``,
            ``sequence_length`` and ``hidden_units`` must be the checkpoint's (the rest,
            learning rates and schedule, may change). None: the checkpoint's.
        :param expected_geometry: without an env, the geometry it must have been trained on.
        :param expected_timing: without an env, the ``dt`` it must have been trained at.
        :param seed: as for the constructor.
        :param tensorboard_log: as for the constructor.
        :param symmetry_augmentation: as for the constructor (training only, not saved).
        :param expected_env: without an env, the env name (or whole description) it must
            have been trained on, e.g. ``'reacher'`` or ``'dmc/reacher_easy'``.
        :return: the agent, with its counts, optimiser states and weights.
        :raises FileNotFoundError: naming a missing file.
        :raises ValueError: naming the file and the differing fields, for a file that is
            not a SLAC agent checkpoint or was trained on another env (by name) or with
            another latent model, sequence length, network width, geometry or ``dt``.
        """
        payload, metadata = load_checkpoint_payload(path, 'SLAC agent checkpoint',
                                                    (SLAC_AGENT_FORMAT,))
        try:
            saved = config_from_dict(SlacAgentConfig, metadata['agent_config'])
            saved_env = dict(metadata.get('env') or {'name': REACHER_ENV_NAME})
            reacher = saved_env['name'] == REACHER_ENV_NAME
            geometry, timing = (geometry_from_dict(metadata['geometry']) if reacher
                                else (ArmGeometry(), Timing()))
        except (KeyError, TypeError) as error:
            raise ValueError(f'SLAC agent checkpoint {path} is damaged: metadata lacks '
                             f'{error}') from None
        config = config or saved
        differ = [f'model.{name}' for name, value in config.model.to_dict().items()
                  if saved.model.to_dict()[name] != value]
        differ += [name for name in ('sequence_length', 'hidden_units')
                   if getattr(saved, name) != getattr(config, name)]
        if differ:
            raise ValueError(f'checkpoint {path} was trained with another agent '
                             f'(differs in {", ".join(differ)})')
        if env is not None:
            expected_env = describe_env(env)
        if expected_env is not None:
            wanted = {'name': expected_env} if isinstance(expected_env, str) else expected_env
            if wanted['name'] != saved_env['name']:
                raise ValueError(f'checkpoint {path} was trained on env '
                                 f'{saved_env["name"]!r}, not {wanted["name"]!r}')
            differ = [f'{key}: checkpoint {saved_env.get(key)}, env {value}'
                      for key, value in wanted.items() if saved_env.get(key) != value]
            if differ:
                raise ValueError(f'checkpoint {path} was trained on another '
                                 f'{wanted["name"]} env ({"; ".join(differ)})')
        if env is not None and reacher:
            expected_geometry = env.unwrapped.config.geometry
            expected_timing = env.unwrapped.config.timing
        wrong = mismatches(geometry, expected_geometry) if expected_geometry else []
        wrong += timing_mismatches(timing, expected_timing) if expected_timing else []
        if wrong:
            raise ValueError(f'checkpoint {path} was trained on another geometry '
                             f'({"; ".join(wrong)})')
        agent = cls(config, env, seed=seed, geometry=geometry, timing=timing,
                    tensorboard_log=tensorboard_log, env_description=saved_env,
                    symmetry_augmentation=symmetry_augmentation)
        try:
            for name, module in agent._modules().items():
                module.load_state_dict(payload[name])
            agent.log_alpha.data.copy_(payload['log_alpha'])
            for name, optimizer in agent._optimizers().items():
                optimizer.load_state_dict(payload['optimizers'][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise ValueError(f'SLAC agent checkpoint {path} is damaged: '
                             f'{type(error).__name__}: {str(error).splitlines()[0][:200]}'
                             ) from None
        agent.num_timesteps = int(metadata.get('num_timesteps', 0))
        agent.latent_updates = int(metadata.get('latent_updates', 0))
        agent.sac_updates = int(metadata.get('sac_updates', 0))
        return agent
