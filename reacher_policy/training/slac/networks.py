"""The SLAC agent's networks around the perception's latent model, and its ELBO.

The reward factor, the actor, the twin critic, and the ELBO with the reward term.

Lee, Nagabandi, Abbeel, Levine, arXiv 1907.00953: the reward factor
p(r_t | z_t, a_t, z_{t+1}) is part of the generative model (sec. 4, eq. 6 with the
reward's log-likelihood, appendix B: a gaussian whose mean and std an MLP gives); the
critic Q(z_t, a_t) reads latent samples (sec. 5, eq. 10); the actor pi(a_t | x_{1:t},
a_{1:t-1}) reads the encoder's features of the last frames and the actions between them
(eq. 11; the features are detached: the actor's loss does not train the encoder).
The pieces reuse :mod:`reacher_perception.slac.network` (``Gaussian``, ``mlp``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Normal

from reacher_perception.slac.latent import LatentModel
from reacher_perception.slac.network import Gaussian, mlp

_LOG_STD_MIN, _LOG_STD_MAX = -20.0, 2.0  # the SAC actor's clamp (reference code)


class SlacRewardModel(nn.Module):
    """p(r_t | z_t, a_t, z_{t+1}): a gaussian whose mean and std an MLP reads.

    :param latent_dim: z1_dim + z2_dim.
    :param action_dim: size of an action.
    :param hidden_units: width of the MLP's hidden layers (the latent model's).
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden_units: int) -> None:
        super().__init__()
        self.factor = Gaussian(2 * latent_dim + action_dim, 1, hidden_units)

    def forward(self, latent: torch.Tensor, action: torch.Tensor,
                next_latent: torch.Tensor) -> Normal:
        """The reward's distribution.

        :param latent: (..., latent_dim) z_t.
        :param action: (..., action_dim) a_t.
        :param next_latent: (..., latent_dim) z_{t+1}.
        :return: ``Normal`` of shape (..., 1).
        """
        return self.factor(latent, action, next_latent)


@dataclass
class SlacModelLosses:
    """The terms of one latent-model update, each a scalar tensor (mean over the batch).

    Minus the ELBO (with reward), and the state heads' loss of the privileged variant.

    :param loss_kld: sum over steps of KL(q(z1_t | ...) || p(z1_t | z2_{t-1}, a_{t-1})),
        the prior evaluated on the **posterior** samples of z2 (paper eq. 6), nats.
    :param loss_image: -sum_t log p(x_t | z_t), nats.
    :param loss_reward: -sum_t log p(r_t | z_t, a_t, z_{t+1}) over real transitions.
    :param loss_state: ``state_weight`` times the state heads' squared error (0 for the
        faithful agent).
    :param loss: their sum, what the optimiser minimises.
    """

    loss_kld: torch.Tensor
    loss_image: torch.Tensor
    loss_reward: torch.Tensor
    loss_state: torch.Tensor
    loss: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """The terms as python floats, keyed by name (logged under latent/)."""
        return {name: float(value.detach()) for name, value in vars(self).items()}


def model_losses(model: LatentModel, reward_model: SlacRewardModel,
                 batch: dict[str, torch.Tensor], reward_weight: float = 1.0) -> SlacModelLosses:
    """Minus the ELBO of a batch of sequences, with the reward factor.

    One posterior sample per sequence (reparameterised); the KL's priors are
    p(z1_{t+1} | z2_t, a_t) at the posterior's z2_t (``LatentModel.z1_priors``), not at a
    rollout of the prior, which is what the paper's objective says (the reference
    PyTorch code once rolled the prior out: toshikwa/slac.pytorch issue 9).

    :param model: the perception's latent model.
    :param reward_model: the reward factor.
    :param batch: from :meth:`SlacReplayBuffer.sample`: ``images`` (B, S+1, 3, H, W),
        ``actions`` (B, S, A), ``rewards`` and ``real`` (B, S), ``states`` (B, S+1, 8).
    :param reward_weight: scale of the reward factor's term (1: the ELBO;
        ``SlacAgentConfig.reward_weight``).
    :return: the terms (``loss_reward`` scaled by ``reward_weight``).
    """
    images, actions = batch['images'], batch['actions']
    features = model.encoder(images)
    loss_kld, loss_image, latent, _ = model.elbo_terms(features, actions, images)
    reward = reward_model(latent[:, :-1], actions, latent[:, 1:])
    reward_log_likelihood = reward.log_prob(batch['rewards'][..., None]).squeeze(-1)
    loss_reward = -reward_weight * (reward_log_likelihood * batch['real']).sum(dim=1).mean()
    loss_state = latent.new_zeros(())
    if model.config.state_weight > 0.0:
        # the privileged term, as LatentModel.losses computes it: heads on the mean filter
        error = model.state_error(features, actions, batch['states'])
        loss_state = model.config.state_weight * error.sum(dim=(1, 2)).mean()
    total = loss_kld + loss_image + loss_reward + loss_state
    return SlacModelLosses(loss_kld, loss_image, loss_reward, loss_state, total)


def actor_inputs(features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The actor's input: S frames' features and the S - 1 actions between them, flat.

    :param features: (B, S, encoded_dim).
    :param actions: (B, S - 1, action_dim).
    :return: (B, S * encoded_dim + (S - 1) * action_dim).
    """
    return torch.cat([features.flatten(1), actions.flatten(1)], dim=-1)


class SlacActor(nn.Module):
    """pi(a | features of the last S frames, the last S - 1 actions): tanh-gaussian.

    :param input_dim: ``S * encoded_dim + (S - 1) * action_dim``.
    :param action_dim: size of an action.
    :param hidden_units: width of the two hidden layers.
    """

    def __init__(self, input_dim: int, action_dim: int, hidden_units: int) -> None:
        super().__init__()
        self.net = mlp(input_dim, 2 * action_dim, hidden_units)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The deterministic action: tanh of the mean, (B, action_dim) in [-1, 1]."""
        return torch.tanh(self.net(inputs).chunk(2, dim=-1)[0])

    def sample(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action and its log-probability (tanh-corrected, SAC eq. 21).

        :param inputs: (B, input_dim).
        :return: (B, action_dim) actions in (-1, 1) and (B,) log pi(a | inputs).
        """
        mean, log_std = self.net(inputs).chunk(2, dim=-1)
        std = log_std.clamp(_LOG_STD_MIN, _LOG_STD_MAX).exp()
        normal = Normal(mean, std)
        raw = normal.rsample()
        action = torch.tanh(raw)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable
        correction = 2.0 * (torch.log(torch.tensor(2.0)) - raw
                            - nn.functional.softplus(-2.0 * raw))
        return action, (normal.log_prob(raw) - correction).sum(dim=-1)


class SlacCritic(nn.Module):
    """Twin soft Q-functions Q_i(z_t, a_t) on the latent (z1, z2) (paper eq. 10).

    :param latent_dim: z1_dim + z2_dim.
    :param action_dim: size of an action.
    :param hidden_units: width of the two hidden layers.
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden_units: int) -> None:
        super().__init__()
        self.q1 = mlp(latent_dim + action_dim, 1, hidden_units)
        self.q2 = mlp(latent_dim + action_dim, 1, hidden_units)

    def forward(self, latent: torch.Tensor, action: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both Q-values, each (B,)."""
        inputs = torch.cat([latent, action], dim=-1)
        return self.q1(inputs).squeeze(-1), self.q2(inputs).squeeze(-1)
