"""The networks of the latent model: frame encoder, image decoder, gaussian factors.

Follows the architecture of arXiv 1907.00953 appendix B (and toshikwa/slac.pytorch,
``slac/network/latent.py``): a conv encoder whose stride-2 layers halve the frame down to
4x4 and a last 4x4 conv to the feature; a decoder that mirrors it with transposed convs;
MLPs with two hidden layers and leaky ReLUs giving a diagonal gaussian's mean and std.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Normal

from reacher_perception.slac.config import INPUT_NORMALIZATIONS

_LEAK = 0.2  # negative slope of the leaky ReLUs, as in the paper's reference code

STANDARDIZE_EPS = 0.02
"""Added to a frame's std before dividing by it, [0, 1] pixel units (~5/255): a blank
or flat frame comes out ~0, not amplified noise."""


def normalize_frames(images: torch.Tensor, mode: str) -> torch.Tensor:
    """A frame's photometric normalisation, each frame on its own.

    ``'standardize'``: subtract each channel's mean over the frame (mostly the
    background's colour, so the arm's and goal's pixels shift with a new table), then
    divide by the frame's standard deviation over all channels and pixels plus
    :data:`STANDARDIZE_EPS` (a global light gain g scales every pixel's offset from the
    mean and that std alike, so it cancels). A per-channel gain (colour balance) and an
    uneven light (gradient) are not undone. ``'none'``: the frame unchanged.

    :param images: (N, 3, H, W) float32 on the [0, 1] scale.
    :param mode: one of :data:`INPUT_NORMALIZATIONS`.
    :return: (N, 3, H, W) float32; with 'standardize' zero mean per channel and std
        ~1 over the frame (exactly ``std / (std + eps)``).
    :raises ValueError: for an unknown ``mode``.
    """
    if mode == 'none':
        return images
    if mode != 'standardize':
        raise ValueError(f'unknown input normalisation {mode!r}; one of '
                         f'{", ".join(INPUT_NORMALIZATIONS)}')
    centred = images - images.mean(dim=(2, 3), keepdim=True)
    std = centred.square().mean(dim=(1, 2, 3), keepdim=True).sqrt()
    return centred / (std + STANDARDIZE_EPS)


def _halvings(image_size: int) -> int:
    """Stride-2 layers that take ``image_size`` down to 4 (64 -> 4 layers)."""
    return int(round(math.log2(image_size // 4)))


class SpatialSoftmax(nn.Module):
    """Feature maps -> expected image coordinates of each channel (keypoints).

    Levine, Finn, Darrell, Abbeel, "End-to-End Training of Deep Visuomotor Policies" (JMLR
    2016, sec. 4.2) and Finn et al., "Deep Spatial Autoencoders" (arXiv 1509.06113, eq. 1):
    for channel c with activations a_cij, ``s_cij = softmax_ij(a_cij / temperature_c)``
    and the keypoint is ``(sum_ij s_cij x_ij, sum_ij s_cij y_ij)``, with x, y the pixel
    centres in [-1, 1]. An expectation over the whole grid moves continuously with the
    activations, so it locates a feature to a fraction of a pixel, which a stack of
    stride-2 convs down to 4x4 does not.

    The temperature is learned per channel (the paper learns one), stored as its log and
    initialised to 1.

    :param channels: K, the number of keypoints.
    :param height: rows of the feature map.
    :param width: columns of the feature map.
    """

    grid_x: torch.Tensor
    grid_y: torch.Tensor

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        xs = torch.linspace(-1.0, 1.0, width)
        ys = torch.linspace(-1.0, 1.0, height)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        self.register_buffer('grid_x', grid_x.reshape(-1), persistent=False)
        self.register_buffer('grid_y', grid_y.reshape(-1), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(channels))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Expected coordinates of every channel.

        :param maps: (N, K, H, W) float32 activations.
        :return: (N, 2K) float32: x of the K keypoints, then their y, each in [-1, 1]
            (x grows to the right, y downwards, as columns and rows).
        """
        flat = maps.flatten(2) / self.log_temperature.exp()[:, None]
        weights = torch.softmax(flat, dim=-1)
        return torch.cat([weights @ self.grid_x, weights @ self.grid_y], dim=-1)


class Encoder(nn.Module):
    """Frame -> feature, the paper's conv encoder scaled by ``base_depth``.

    At 64x64 and depth d: (3 + 2, 64, 64) -> (d, 32, 32) [5x5 s2] -> (2d, 16, 16) ->
    (4d, 8, 8) -> (8d, 4, 4) [3x3 s2 each] -> (feature_dim, 1, 1) [4x4 valid].

    Frames are normalised first when ``input_normalization`` says so
    (:func:`normalize_frames`). One deviation: two constant channels holding each pixel's
    x and y in [-1, 1] are appended to the frame (CoordConv, Liu et al. 2018, arXiv
    1807.03247). Our state is positions, which plain convolutions learn to regress
    slowly: in a trial without them the goal's RMS error had not left chance level
    (~90 mm) after 650 updates.

    With ``keypoints`` K > 0, a second branch reads the first layer's (d, H/2, W/2) map:
    two 3x3 stride-1 convs (d -> 2d -> K, the first with a leaky ReLU) keep the half
    resolution, and a :class:`SpatialSoftmax` turns the K maps into K expected (x, y)
    positions, appended to the global feature: the output is then
    ``feature_dim + 2K`` long. With K = 0 the module (and its state_dict) is the
    original one.

    :param image_size: frame width = height, a power of two >= 16.
    :param base_depth: channels of the first layer.
    :param feature_dim: size of the global feature.
    :param keypoints: K, spatial-softmax keypoints (0: none).
    :param input_normalization: applied to each frame before the first conv
        (:func:`normalize_frames`; 'none' is the original encoder); it has no weights, so
        the state_dict is the same either way.
    """

    coordinates: torch.Tensor

    def __init__(self, image_size: int, base_depth: int, feature_dim: int,
                 keypoints: int = 0, input_normalization: str = 'none') -> None:
        super().__init__()
        if input_normalization not in INPUT_NORMALIZATIONS:
            raise ValueError(f'unknown input normalisation {input_normalization!r}')
        self.input_normalization = input_normalization
        ramp = torch.linspace(-1.0, 1.0, image_size)
        # (2, H, W): x grows to the right, y downwards, as pixel columns and rows
        self.register_buffer('coordinates', torch.stack(torch.meshgrid(ramp, ramp,
                                                                       indexing='xy')),
                             persistent=False)
        layers: list[nn.Module] = []
        channels = 5
        for index in range(_halvings(image_size)):
            out = base_depth * 2 ** index
            kernel = 5 if index == 0 else 3
            layers += [nn.Conv2d(channels, out, kernel, 2, kernel // 2),
                       nn.LeakyReLU(_LEAK)]
            channels = out
        layers += [nn.Conv2d(channels, feature_dim, 4), nn.LeakyReLU(_LEAK)]
        self.net = nn.Sequential(*layers)
        self.keypoints = keypoints
        self.keypoint_net: nn.Sequential | None = None
        self.spatial_softmax: SpatialSoftmax | None = None
        if keypoints > 0:
            half = image_size // 2
            self.keypoint_net = nn.Sequential(
                nn.Conv2d(base_depth, 2 * base_depth, 3, 1, 1), nn.LeakyReLU(_LEAK),
                nn.Conv2d(2 * base_depth, keypoints, 3, 1, 1))
            self.spatial_softmax = SpatialSoftmax(keypoints, half, half)

    @property
    def output_dim(self) -> int:
        """Size of the feature: ``feature_dim + 2 * keypoints``."""
        last = self.net[-2]
        assert isinstance(last, nn.Conv2d)
        return last.out_channels + 2 * self.keypoints

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode frames.

        :param images: (..., 3, H, W) float32 in [0, 1].
        :return: (..., feature_dim + 2 * keypoints) float32: the global feature, then
            the keypoints' x and y in [-1, 1] when there are any.
        """
        batch_shape = images.shape[:-3]
        flat = normalize_frames(images.reshape(-1, *images.shape[-3:]),
                                self.input_normalization)
        coordinates = self.coordinates.expand(flat.shape[0], -1, -1, -1)
        inputs = torch.cat([flat, coordinates], dim=1)
        if self.keypoint_net is None or self.spatial_softmax is None:
            return self.net(inputs).reshape(*batch_shape, -1)
        first = self.net[:2](inputs)
        feature = self.net[2:](first).flatten(1)
        points = self.spatial_softmax(self.keypoint_net(first))
        return torch.cat([feature, points], dim=-1).reshape(*batch_shape, -1)


class Decoder(nn.Module):
    """Latent (z1, z2) -> mean of the frame, the encoder mirrored.

    At 64x64 and depth d: (z1 + z2, 1, 1) -> (8d, 4, 4) [4x4 transposed] -> (4d, 8, 8)
    -> (2d, 16, 16) -> (d, 32, 32) -> (3, 64, 64) [4x4 s2 transposed each; the last has
    no activation].

    :param image_size: frame width = height, a power of two >= 16.
    :param base_depth: channels of the last hidden layer.
    :param input_dim: z1_dim + z2_dim.
    """

    def __init__(self, image_size: int, base_depth: int, input_dim: int) -> None:
        super().__init__()
        halvings = _halvings(image_size)
        channels = base_depth * 2 ** (halvings - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(input_dim, channels, 4),
                                   nn.LeakyReLU(_LEAK)]
        for index in reversed(range(halvings)):
            out = 3 if index == 0 else base_depth * 2 ** (index - 1)
            layers.append(nn.ConvTranspose2d(channels, out, 4, 2, 1))
            if index > 0:
                layers.append(nn.LeakyReLU(_LEAK))
            channels = out
        self.net = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Decode latents to frame means.

        :param latent: (..., z1_dim + z2_dim) float32.
        :return: (..., 3, H, W) float32, the mean of p(x | z1, z2) on the [0, 1] scale.
        """
        batch_shape = latent.shape[:-1]
        flat = latent.reshape(-1, latent.shape[-1], 1, 1)
        images = self.net(flat)
        return images.reshape(*batch_shape, *images.shape[1:])


def mlp(input_dim: int, output_dim: int, hidden_units: int) -> nn.Sequential:
    """Two hidden layers of ``hidden_units`` with leaky ReLUs, linear output."""
    return nn.Sequential(nn.Linear(input_dim, hidden_units), nn.LeakyReLU(_LEAK),
                         nn.Linear(hidden_units, hidden_units), nn.LeakyReLU(_LEAK),
                         nn.Linear(hidden_units, output_dim))


class Gaussian(nn.Module):
    """A diagonal gaussian whose mean and std an MLP reads from the concatenated inputs.

    :param input_dim: total size of the inputs.
    :param output_dim: size of the random variable.
    :param hidden_units: width of the MLP's hidden layers.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden_units: int) -> None:
        super().__init__()
        self.net = mlp(input_dim, 2 * output_dim, hidden_units)

    def forward(self, *inputs: torch.Tensor) -> Normal:
        """The distribution given the inputs.

        :param inputs: tensors (..., d_i) concatenated on the last axis.
        :return: ``Normal`` with (..., output_dim) mean and std (softplus + 1e-5, as in
            the reference code, so the std is positive and the KL finite).
        """
        mean, raw_std = self.net(torch.cat(inputs, dim=-1)).chunk(2, dim=-1)
        return Normal(mean, nn.functional.softplus(raw_std) + 1e-5)


class StandardGaussian(nn.Module):
    """The fixed prior N(0, I) of p(z1_1), with the batch shape of its input.

    :param output_dim: size of the random variable.
    """

    def __init__(self, output_dim: int) -> None:
        super().__init__()
        self.output_dim = output_dim

    def forward(self, like: torch.Tensor) -> Normal:
        """N(0, I) of shape (..., output_dim), batch shape from ``like`` (..., any)."""
        zeros = like.new_zeros(*like.shape[:-1], self.output_dim)
        return Normal(zeros, torch.ones_like(zeros))
