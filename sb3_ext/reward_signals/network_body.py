"""The observation encoder every reward model is built on: ML-Agents' ``NetworkBody``.

ML-Agents (release 21) encodes a reward signal's observations with ``NetworkBody``: each
vector observation passes through as it is (optionally through a running normaliser clipped
to +-5), each visual observation through the ``vis_encode_type`` CNN with ``hidden_units``
outputs; the pieces are concatenated, an optional unencoded input (e.g. an action) is
appended, and ``num_layers`` dense layers of ``hidden_units`` with Swish follow. Each dense
layer is Kaiming-normal initialised for a linear activation (``std = 1/sqrt(fan_in)``, gain 1)
with a zero bias.

Here the observations come from a Gymnasium space as SB3 sees it: a ``Box`` (a vector, or a
channel-first image), or a ``Dict`` of those. ``uint8`` images are scaled by 1/255 as SB3's
``preprocess_obs`` does; float images are taken as already scaled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from torch import nn

from sb3_ext.networks.visual_encoders import VISUAL_ENCODER_TYPES, make_visual_encoder

# ML-Agents' ``Normalizer`` clips normalised values to this magnitude.
NORMALIZER_CLIP = 5.0

ObsTensor = th.Tensor | Mapping[str, th.Tensor]


@dataclass
class RewardNetworkSettings:
    """A reward signal's ``network_settings`` (ML-Agents' ``NetworkSettings`` defaults).

    ``memory`` is absent: ML-Agents drops it (with a warning) for curiosity, RND and GAIL.
    """

    hidden_units: int = 128
    num_layers: int = 2
    normalize: bool = False
    vis_encode_type: str = "simple"

    def __post_init__(self) -> None:
        if self.hidden_units < 1 or self.num_layers < 1:
            raise ValueError(
                f"network_settings needs hidden_units >= 1 and num_layers >= 1, got "
                f"hidden_units={self.hidden_units}, num_layers={self.num_layers}."
            )
        if self.vis_encode_type not in VISUAL_ENCODER_TYPES:
            raise ValueError(
                f"Unknown vis_encode_type {self.vis_encode_type!r}; use one of "
                f"{', '.join(VISUAL_ENCODER_TYPES)}."
            )


def kaiming_linear(in_features: int, out_features: int) -> nn.Linear:
    """ML-Agents' ``LinearEncoder`` layer: Kaiming-normal (linear gain, so ``std =
    1/sqrt(fan_in)``) weights, zero bias."""
    layer = nn.Linear(in_features, out_features)
    nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
    nn.init.zeros_(layer.bias)
    return layer


def xavier_linear(in_features: int, out_features: int) -> nn.Linear:
    """ML-Agents' ``linear_layer`` with its defaults: Xavier-uniform weights, zero bias."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def dense_stack(input_size: int, num_layers: int, hidden_units: int) -> nn.Sequential:
    """ML-Agents' ``LinearEncoder``: ``num_layers`` x (Kaiming linear, Swish)."""
    layers: list[nn.Module] = []
    size = input_size
    for _ in range(num_layers):
        layers += [kaiming_linear(size, hidden_units), nn.SiLU()]
        size = hidden_units
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """ML-Agents' running mean/variance normaliser of one vector observation.

    It starts as one pseudo-sample (``steps = 1``, mean 0, summed squares 1), is updated
    batch-wise with the exact parallel mean/variance merge, and maps ``x`` to
    ``clip((x - mean) / sqrt(M2 / steps), -5, 5)``.
    """

    normalization_steps: th.Tensor
    running_mean: th.Tensor
    running_variance: th.Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("normalization_steps", th.tensor(1, dtype=th.int64))
        self.register_buffer("running_mean", th.zeros(size))
        self.register_buffer("running_variance", th.ones(size))

    def forward(self, x: th.Tensor) -> th.Tensor:
        std = th.sqrt(self.running_variance / self.normalization_steps)
        return th.clamp((x - self.running_mean) / std, -NORMALIZER_CLIP, NORMALIZER_CLIP)

    @th.no_grad()
    def update(self, x: th.Tensor) -> None:
        """Merge the rows of ``x`` (``[B, size]``) into the running statistics."""
        total = self.normalization_steps + x.shape[0]
        to_old_mean = x - self.running_mean
        new_mean = self.running_mean + (to_old_mean / total).sum(0)
        to_new_mean = x - new_mean
        self.running_variance.add_((to_new_mean * to_old_mean).sum(0))
        self.running_mean.copy_(new_mean)
        self.normalization_steps.copy_(total)


class VectorInput(nn.Module):
    """A vector observation, flattened, through an optional :class:`Normalizer`."""

    def __init__(self, size: int, normalize: bool) -> None:
        super().__init__()
        self.output_size: int = size
        self.normalizer = Normalizer(size) if normalize else None

    def flat(self, x: th.Tensor) -> th.Tensor:
        return x.reshape(x.shape[0], -1).float()

    def forward(self, x: th.Tensor) -> th.Tensor:
        flat = self.flat(x)
        return flat if self.normalizer is None else self.normalizer(flat)

    def update_normalization(self, x: th.Tensor) -> None:
        if self.normalizer is not None:
            self.normalizer.update(self.flat(x))


class ImageInput(nn.Module):
    """A channel-first image through an ML-Agents visual encoder (``uint8`` scaled 1/255)."""

    def __init__(self, shape: tuple[int, ...], scale: bool, encoder: str, output_size: int):
        super().__init__()
        self.output_size: int = output_size
        self.scale = scale
        self.encoder = make_visual_encoder(encoder, shape, output_size)

    def forward(self, x: th.Tensor) -> th.Tensor:
        images = x.float()
        if self.scale:
            images = images / 255.0
        out: th.Tensor = self.encoder(images)
        return out

    def update_normalization(self, x: th.Tensor) -> None:
        """Images are never normalised (as in ML-Agents)."""


SUPPORTED_SPACES = (
    "a Box vector (any shape but 3-D, flattened), a channel-first image Box (3-D, uint8 in "
    "[0, 255] or floating point), or a Dict of those"
)


def _unsupported(space: spaces.Space[Any], where: str, why: str) -> ValueError:
    return ValueError(
        f"Reward signals cannot encode the observation space {space}{where}: {why}. "
        f"They take {SUPPORTED_SPACES}, as ML-Agents' reward networks take vector and visual "
        "observations. Wrap the environment so that it observes such a space (for example "
        "gymnasium's FlattenObservation, or a one-hot Box instead of Discrete), or train "
        "without curiosity/RND."
    )


def _input_for(
    space: spaces.Space[Any], settings: RewardNetworkSettings, where: str = ""
) -> VectorInput | ImageInput:
    if not isinstance(space, spaces.Box):
        raise _unsupported(space, where, "only Box observations (or a Dict of them) are encoded")
    shape = tuple(int(n) for n in space.shape)
    if len(shape) != 3:
        return VectorInput(int(np.prod(shape, dtype=np.int64)), settings.normalize)
    if is_image_space(space, check_channels=False, normalized_image=False):
        return ImageInput(shape, True, settings.vis_encode_type, settings.hidden_units)
    if np.issubdtype(space.dtype, np.floating):
        return ImageInput(shape, False, settings.vis_encode_type, settings.hidden_units)
    raise _unsupported(
        space,
        where,
        "a 3-D Box is taken as a channel-first image, which must be uint8 in [0, 255] or "
        "floating point",
    )


class NetworkBody(nn.Module):
    """ML-Agents' ``NetworkBody`` without memory, for a Gymnasium observation space.

    :param observation_space: ``Box`` or ``Dict`` of ``Box`` (see :data:`SUPPORTED_SPACES`);
        images must be channel-first, so pass ``model.observation_space`` (SB3 transposes
        channel-last images before the model sees them).
    :param settings: hidden units, layers, normalisation, visual encoder.
    :param extra_input_size: width of an unencoded input appended to the observation
        encoding before the dense layers (ML-Agents' ``encoded_act_size``).
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        settings: RewardNetworkSettings | None = None,
        extra_input_size: int = 0,
    ) -> None:
        super().__init__()
        self.settings = settings = settings or RewardNetworkSettings()
        self.observation_space = observation_space
        self.keys: tuple[str, ...] | None
        if isinstance(observation_space, spaces.Dict):
            if not observation_space.spaces:
                raise _unsupported(observation_space, "", "the Dict is empty")
            self.keys = tuple(observation_space.spaces)
            inputs = [
                _input_for(sub, settings, f" (entry {key!r})")
                for key, sub in observation_space.spaces.items()
            ]
        else:
            self.keys = None
            inputs = [_input_for(observation_space, settings)]
        self.inputs = nn.ModuleList(inputs)
        self.encoded_size = sum(m.output_size for m in inputs)
        self.extra_input_size = extra_input_size
        self.output_size = settings.hidden_units
        self.body = dense_stack(
            self.encoded_size + extra_input_size, settings.num_layers, settings.hidden_units
        )

    def _parts(self, observations: ObsTensor) -> list[th.Tensor]:
        if self.keys is None:
            if isinstance(observations, Mapping):
                raise TypeError("This NetworkBody takes one tensor, not a dict of tensors.")
            return [observations]
        if not isinstance(observations, Mapping):
            raise TypeError(f"This NetworkBody takes a dict of tensors with keys {self.keys}.")
        return [observations[key] for key in self.keys]

    def forward(self, observations: ObsTensor, extra: th.Tensor | None = None) -> th.Tensor:
        """``[B, hidden_units]`` encoding of a batch (``extra``: ``[B, extra_input_size]``)."""
        encoded = [
            module(part)
            for module, part in zip(self.inputs, self._parts(observations), strict=True)
        ]
        if extra is not None:
            encoded.append(extra.float())
        out: th.Tensor = self.body(th.cat(encoded, dim=1))
        return out

    def update_normalization(self, observations: ObsTensor) -> None:
        """Merge a batch into every vector normaliser (no-op without ``normalize``)."""
        for module, part in zip(self.inputs, self._parts(observations), strict=True):
            module.update_normalization(part)  # type: ignore[operator]
