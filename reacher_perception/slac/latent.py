"""SLAC's latent variable model: factors, evidence lower bound, state heads and filter.

Lee, Nagabandi, Abbeel, Levine, "Stochastic Latent Actor-Critic", arXiv 1907.00953,
sec. 4 and appendix B; the PyTorch reference is toshikwa/slac.pytorch
(``slac/network/latent.py``), whose structure this follows. The latent state of step t
is ``z_t = (z1_t, z2_t)``; actions ``a_t`` are the joint velocity commands applied
between frames t and t+1, divided by ``max_joint_velocity`` (so in [-1, 1]).

Generative model (prior)::

    p(z1_1) = N(0, I)
    p(z2_1 | z1_1)
    p(z1_{t+1} | z2_t, a_t)
    p(z2_{t+1} | z1_{t+1}, z2_t, a_t)
    p(x_t | z1_t, z2_t)                 gaussian, fixed std

Inference model (filtering posterior)::

    q(z1_1 | x_1)
    q(z2_1 | z1_1)                      = p(z2_1 | z1_1)            (shared)
    q(z1_{t+1} | x_{t+1}, z2_t, a_t)
    q(z2_{t+1} | z1_{t+1}, z2_t, a_t)   = p(z2_{t+1} | z1_{t+1}, z2_t, a_t)   (shared)

Because the z2 factors are shared, the KL term of the ELBO (paper eq. 8-9) involves z1
only: ``ELBO = sum_t E_q[log p(x_t | z_t)] - KL(q(z1_t | ...) || p(z1_t | ...))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import kl_divergence, Normal

from reacher_perception.slac.config import SlacModelConfig
from reacher_perception.slac.network import Decoder, Encoder, Gaussian, mlp, StandardGaussian


@dataclass
class LatentLosses:
    """The terms of one latent-model update, each a scalar tensor (mean over the batch).

    :param loss_kld: sum over steps of KL(q(z1_t | ...) || p(z1_t | ...)), nats.
    :param loss_image: minus the summed log-likelihood of the frames under the decoder,
        nats (the ELBO is ``-(loss_image + loss_kld)``).
    :param loss_state: ``state_weight`` times the state heads' squared error on the
        mean-filtered latent, summed over steps and outputs.
    :param loss: what the optimiser minimises: the sum of the three.
    :param state_mse: (state_dim,) the state heads' mean squared error per output.
    """

    loss_kld: torch.Tensor
    loss_image: torch.Tensor
    loss_state: torch.Tensor
    loss: torch.Tensor
    state_mse: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """The scalar terms as python floats, keyed by name (logged under train/)."""
        return {name: float(value.detach()) for name, value in vars(self).items()
                if value.dim() == 0}


FOREGROUND_THRESHOLD = 0.15
"""How far (any channel, [0, 1] scale) a pixel's colour must be from its frame's median
colour to count as foreground in :func:`foreground_mask`."""


def foreground_mask(frames: torch.Tensor) -> torch.Tensor:
    """The pixels that differ from their frame's median colour: the arm and the goal.

    The median colour of a top-down frame is the table's (the arm and goal cover a few
    percent of it), so this picks the small objects a reconstruction loss summed over all
    pixels would neglect: the goal is ~30 of 4096 pixels. Used by
    ``SlacModelConfig.foreground_weight``; it reads pixels only (no simulator state).

    :param frames: (..., 3, H, W) float in [0, 1].
    :return: (..., 1, H, W) bool.
    """
    median = frames.flatten(-2).median(dim=-1).values[..., None, None]
    return (frames - median).abs().amax(dim=-3, keepdim=True) > FOREGROUND_THRESHOLD


class LatentModel(nn.Module):
    """Encoder, two-level latent dynamics, decoder, and state heads on the latent.

    Deviations from the paper, each for our task: sizes scaled down (see
    :mod:`reacher_perception.slac.config`); no reward model (perception has no reward to
    predict); and state heads that read (z1_t, z2_t) and predict sin/cos of the joint
    angles, the fingertip and the goal (``STATE_NAMES``).

    The heads are trained **jointly** with the ELBO (their squared error, weighted by
    ``state_weight``, is added to the loss and its gradient reaches the encoder and the
    latent factors) rather than as probes on a frozen latent. Why: with the few thousand
    updates one CPU core allows, a latent shaped by pixel reconstruction alone encodes the
    pose but not to the millimetre the closed loop needs (the goal square is 6 px of 4096,
    so its position is a small part of the reconstruction error); the supervised term makes
    the latent carry exactly the state we read out. ``state_weight=0`` gives the frozen
    alternative (train the ELBO, then fit the heads only: ``train --heads-only-from CKPT``).

    Measured (same data, seed and 1500 updates each, no keypoints, the clean rows of
    ``benchmarks/slac_vs_classical.py --sequences 10 --seed 1000``): joint training, joint
    MAE 2.78 deg, fingertip 8.9 mm, goal 34.2 mm; heads fitted for 1500 updates on the
    frozen ELBO-only latent, 58.9 deg, 153 mm, 123 mm, i.e. chance. The ELBO-only latent
    had nearly collapsed (KL 4 nats against 214 for the joint run) and reconstructed worse
    (image term -65.2 k against -72.5 k nats): the arm is a few hundred pixels of the
    4096, so at this budget reconstruction alone had not made z encode the pose.

    :param config: the sizes.
    """

    config: SlacModelConfig

    def __init__(self, config: SlacModelConfig) -> None:
        super().__init__()
        self.config = config
        z1, z2, action = config.z1_dim, config.z2_dim, config.action_dim
        feature, hidden = config.encoded_dim, config.hidden_units
        # p(z1_1) = N(0, I)
        self.z1_prior_init = StandardGaussian(z1)
        # p(z2_1 | z1_1)
        self.z2_prior_init = Gaussian(z1, z2, hidden)
        # p(z1_{t+1} | z2_t, a_t)
        self.z1_prior = Gaussian(z2 + action, z1, hidden)
        # p(z2_{t+1} | z1_{t+1}, z2_t, a_t)
        self.z2_prior = Gaussian(z1 + z2 + action, z2, hidden)
        # q(z1_1 | x_1), through the feature of x_1
        self.z1_posterior_init = Gaussian(feature, z1, hidden)
        # q(z1_{t+1} | x_{t+1}, z2_t, a_t)
        self.z1_posterior = Gaussian(feature + z2 + action, z1, hidden)
        # feature of x_t
        self.encoder = Encoder(config.image_size, config.base_depth, config.feature_dim,
                               config.keypoints, config.input_normalization)
        # p(x_t | z1_t, z2_t), mean only: the std is fixed
        self.decoder = Decoder(config.image_size, config.base_depth, z1 + z2)
        # state heads on (z1_t, z2_t)
        self.state_head = mlp(z1 + z2, config.state_dim, hidden)

    @property
    def z2_posterior_init(self) -> Gaussian:
        """q(z2_1 | z1_1): the prior's factor p(z2_1 | z1_1), shared as in the paper."""
        return self.z2_prior_init

    @property
    def z2_posterior(self) -> Gaussian:
        """q(z2_{t+1} | z1_{t+1}, z2_t, a_t): the prior's factor, shared as in the paper."""
        return self.z2_prior

    def sample_posterior(self, features: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, list[Normal]]:
        """Sample the filtering posterior along sequences (reparameterised).

        :param features: (B, S+1, encoded_dim) float32, the encoded frames.
        :param actions: (B, S, action_dim) float32 in [-1, 1]; ``actions[:, t]`` leads from
            frame t to frame t+1.
        :return: ``(z1, z2, z1_posteriors)``: (B, S+1, z1_dim) and (B, S+1, z2_dim) samples,
            and the S+1 distributions q(z1_t | ...) that produced them.
        """
        distribution = self.z1_posterior_init(features[:, 0])
        z1 = distribution.rsample()
        z2 = self.z2_posterior_init(z1).rsample()
        z1s, z2s, posteriors = [z1], [z2], [distribution]
        for step in range(actions.shape[1]):
            distribution = self.z1_posterior(features[:, step + 1], z2, actions[:, step])
            z1 = distribution.rsample()
            z2 = self.z2_posterior(z1, z2, actions[:, step]).rsample()
            z1s.append(z1)
            z2s.append(z2)
            posteriors.append(distribution)
        return torch.stack(z1s, dim=1), torch.stack(z2s, dim=1), posteriors

    def z1_priors(self, z2: torch.Tensor, actions: torch.Tensor) -> list[Normal]:
        """The prior's z1 factors along posterior samples of z2.

        :param z2: (B, S+1, z2_dim) posterior samples.
        :param actions: (B, S, action_dim).
        :return: S+1 distributions: p(z1_1), then p(z1_{t+1} | z2_t, a_t).
        """
        priors = [self.z1_prior_init(z2[:, 0])]
        priors += [self.z1_prior(z2[:, step], actions[:, step])
                   for step in range(actions.shape[1])]
        return priors

    def losses(self, images: torch.Tensor, actions: torch.Tensor, states: torch.Tensor,
               targets: torch.Tensor | None = None) -> tuple[LatentLosses, torch.Tensor]:
        """Minus the ELBO, split into its terms, plus the state heads' loss.

        :param images: (B, S+1, 3, H, W) float32 in [0, 1], the frames the encoder sees
            (augmented during training).
        :param actions: (B, S, action_dim) float32 in [-1, 1].
        :param states: (B, S+1, state_dim) float32, the true ``STATE_NAMES`` values.
        :param targets: (B, S+1, 3, H, W) float32 in [0, 1], the frames the decoder must
            reproduce; ``images`` if None. Passing the clean frames while ``images`` are
            corrupted makes the image term a denoising one: it teaches q(z1 | x, z2, a) to
            lean on the dynamics when a frame is noisy, occluded or blank.
        :return: the losses and the (B, S+1, 3, H, W) reconstructed frame means.
        """
        targets = images if targets is None else targets
        features = self.encoder(images)
        loss_kld, loss_image, _, reconstruction = self.elbo_terms(features, actions, targets)
        squared_error = self.state_error(features, actions, states)
        loss_state = self.config.state_weight * squared_error.sum(dim=(1, 2)).mean()
        state_mse = squared_error.detach().mean(dim=(0, 1))
        total = loss_kld + loss_image + loss_state
        return LatentLosses(loss_kld, loss_image, loss_state, total, state_mse), reconstruction

    def elbo_terms(self, features: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Minus the ELBO's two terms on one posterior sample per sequence (paper eq. 8-9).

        The KL's priors are p(z1_{t+1} | z2_t, a_t) at the posterior's z2_t
        (:meth:`z1_priors`), not at a rollout of the prior. Shared by the perception's
        training and the SLAC agent (reacher_policy.training.slac), which adds its reward
        factor.

        :param features: (B, S+1, encoded_dim), the encoded frames.
        :param actions: (B, S, action_dim) float32 in [-1, 1].
        :param targets: (B, S+1, 3, H, W) float32 in [0, 1], the frames to reproduce.
        :return: ``(loss_kld, loss_image, latent, reconstruction)``: the summed KL over
            steps (nats, mean over the batch), minus the frames' log-likelihood (nats), the
            (B, S+1, z1_dim + z2_dim) posterior sample and the (B, S+1, 3, H, W) decoded
            means.
        """
        z1, z2, posteriors = self.sample_posterior(features, actions)
        priors = self.z1_priors(z2, actions)
        # KL(q(z1_t | ...) || p(z1_t | ...)), summed over dims and steps, mean over batch.
        loss_kld = torch.stack([kl_divergence(q, p).sum(dim=-1)
                                for q, p in zip(posteriors, priors, strict=True)],
                               dim=1).sum(dim=1).mean()
        latent = torch.cat([z1, z2], dim=-1)
        reconstruction = self.decoder(latent)
        # -log p(x_t | z1_t, z2_t): gaussian with fixed std, summed over pixels and steps.
        log_likelihood = Normal(reconstruction, self.config.decoder_std).log_prob(targets)
        if self.config.foreground_weight > 0.0:
            log_likelihood = log_likelihood * (1.0 + self.config.foreground_weight
                                               * foreground_mask(targets).float())
        loss_image = -log_likelihood.sum(dim=(1, 2, 3, 4)).mean()
        return loss_kld, loss_image, latent, reconstruction

    def state_error(self, features: torch.Tensor, actions: torch.Tensor,
                    states: torch.Tensor) -> torch.Tensor:
        """The state heads' squared error on the mean-filtered latent.

        The heads are trained on the mean-filtered latent, exactly what the backend runs
        (``filter_first`` / ``filter_next``), not on the samples: read from samples, the
        heads first had to wait for the posterior stds to shrink and, in a trial of 650
        updates, had not started learning the goal (RMS error 93 mm, chance ~100 mm).

        :param features: (B, S+1, encoded_dim).
        :param actions: (B, S, action_dim).
        :param states: (B, S+1, state_dim), the true ``STATE_NAMES`` values.
        :return: (B, S+1, state_dim) squared errors.
        """
        filtered = torch.cat(self.filter_sequence(features, actions), dim=-1)
        return (self.state_head(filtered) - states).pow(2)

    # Inference: the filter run by the perception backend, on posterior means.

    def filter_sequence(self, features: torch.Tensor, actions: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean filter along whole sequences (the backend's, batched).

        :param features: (B, S+1, encoded_dim).
        :param actions: (B, S, action_dim).
        :return: ``(z1, z2)``, (B, S+1, z1_dim) and (B, S+1, z2_dim).
        """
        z1, z2 = self.filter_first(features[:, 0])
        z1s, z2s = [z1], [z2]
        for step in range(actions.shape[1]):
            z1, z2 = self.filter_next(features[:, step + 1], z2, actions[:, step])
            z1s.append(z1)
            z2s.append(z2)
        return torch.stack(z1s, dim=1), torch.stack(z2s, dim=1)

    def filter_first(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent of the first frame: means of q(z1_1 | x_1) and q(z2_1 | z1_1).

        :param feature: (..., encoded_dim) the first frame's feature.
        :return: ``(z1, z2)``, (..., z1_dim) and (..., z2_dim).
        """
        z1 = self.z1_posterior_init(feature).mean
        return z1, self.z2_posterior_init(z1).mean

    def filter_next(self, feature: torch.Tensor, z2: torch.Tensor, action: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent of the next frame: means of q(z1_{t+1} | x_{t+1}, z2_t, a_t), q(z2_{t+1} ...).

        :param feature: (..., encoded_dim) the new frame's feature.
        :param z2: (..., z2_dim) the previous step's z2.
        :param action: (..., action_dim) the command applied since the previous frame.
        :return: ``(z1, z2)`` of the new step.
        """
        z1 = self.z1_posterior(feature, z2, action).mean
        return z1, self.z2_posterior(z1, z2, action).mean

    def state(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The state heads' read-out.

        :param z1: (..., z1_dim).
        :param z2: (..., z2_dim).
        :return: (..., state_dim) in ``STATE_NAMES`` order.
        """
        return self.state_head(torch.cat([z1, z2], dim=-1))
