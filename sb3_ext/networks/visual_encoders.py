"""ML-Agents' visual encoders (``network_settings.vis_encode_type``) as SB3 features extractors.

Release 21 has five encoders; each takes channel-first float images ``[B, C, H, W]`` and
returns ``[B, output_size]`` (ML-Agents' ``output_size`` is ``network_settings.hidden_units``):

- ``simple``: conv 16 (8x8, stride 4), conv 32 (4x4, stride 2), dense; LeakyReLU after each.
- ``nature_cnn``: conv 32 (8x8, stride 4), conv 64 (4x4, stride 2), conv 64 (3x3), dense;
  LeakyReLU after each.
- ``resnet``: three stacks (16, 32, 32 channels) of a 3x3 conv, a 3x3 max-pool of stride 2 and
  two residual blocks; Swish, dense, ReLU.
- ``match3``: conv 35 (3x3), conv 144 (3x3), dense; LeakyReLU after each.
- ``fully_connected``: the flattened image through one dense layer and LeakyReLU.

Each final dense layer is Kaiming-normal initialised (``std = 1/sqrt(fan_in)``) times 1.41
with a zero bias; convolutions keep PyTorch's default initialisation. Images smaller than the
encoder's minimum (ML-Agents' ``MIN_RESOLUTION_FOR_ENCODER``) are refused.

:class:`VisualEncoderExtractor` encodes one image observation; :class:`ObservationEncoderExtractor`
encodes every image of a ``Dict`` observation with its own encoder and passes the other
entries through flattened, as ML-Agents' ``ObservationEncoder`` does.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

VisualEncoderType = Literal["simple", "nature_cnn", "resnet", "match3", "fully_connected"]
VISUAL_ENCODER_TYPES: tuple[str, ...] = get_args(VisualEncoderType)

# ML-Agents' gain on the Kaiming-normal weights of each encoder's final dense layer.
DENSE_GAIN = 1.41


def _dense(in_features: int, out_features: int) -> nn.Linear:
    """A Linear layer initialised as ML-Agents' encoders' last layer."""
    layer = nn.Linear(in_features, out_features)
    nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
    with torch.no_grad():
        layer.weight.mul_(DENSE_GAIN)
    nn.init.zeros_(layer.bias)
    return layer


def _flat_size(layers: nn.Module, channels: int, height: int, width: int) -> int:
    with torch.no_grad():
        return int(layers(torch.zeros(1, channels, height, width)).flatten(1).shape[1])


class VisualEncoder(nn.Module):
    """Base of the five encoders: ``[B, C, H, W]`` floats -> ``[B, output_size]``."""

    encoder_type: ClassVar[str]
    min_resolution: ClassVar[int]

    def __init__(self, channels: int, height: int, width: int, output_size: int) -> None:
        super().__init__()
        check_resolution(self.encoder_type, height, width)
        self.output_size = output_size


class _ConvEncoder(VisualEncoder):
    """Convolutions, flatten, then the dense layer and its activation."""

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        output_size: int,
        convs: nn.Sequential,
        final_activation: nn.Module,
    ) -> None:
        super().__init__(channels, height, width, output_size)
        self.convs = convs
        self.flatten = nn.Flatten()
        self.dense = _dense(_flat_size(convs, channels, height, width), output_size)
        self.activation = final_activation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.activation(self.dense(self.flatten(self.convs(images))))
        return out


class SimpleVisualEncoder(_ConvEncoder):
    """``simple``: two convolutions (16 8x8/4, 32 4x4/2), dense, LeakyReLU. Images >= 20x20."""

    encoder_type = "simple"
    min_resolution = 20

    def __init__(self, channels: int, height: int, width: int, output_size: int) -> None:
        convs = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=8, stride=4),
            nn.LeakyReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2),
            nn.LeakyReLU(),
        )
        super().__init__(channels, height, width, output_size, convs, nn.LeakyReLU())


class NatureVisualEncoder(_ConvEncoder):
    """``nature_cnn``: convolutions 32 8x8/4, 64 4x4/2, 64 3x3/1, dense, LeakyReLU.

    Images >= 36x36. Unlike SB3's ``NatureCNN``, LeakyReLU activations.
    """

    encoder_type = "nature_cnn"
    min_resolution = 36

    def __init__(self, channels: int, height: int, width: int, output_size: int) -> None:
        convs = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4),
            nn.LeakyReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.LeakyReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.LeakyReLU(),
        )
        super().__init__(channels, height, width, output_size, convs, nn.LeakyReLU())


class Match3VisualEncoder(_ConvEncoder):
    """``match3`` (small grids): convolutions 35 3x3, 144 3x3, dense, LeakyReLU. >= 5x5."""

    encoder_type = "match3"
    min_resolution = 5

    def __init__(self, channels: int, height: int, width: int, output_size: int) -> None:
        convs = nn.Sequential(
            nn.Conv2d(channels, 35, kernel_size=3, stride=1),
            nn.LeakyReLU(),
            nn.Conv2d(35, 144, kernel_size=3, stride=1),
            nn.LeakyReLU(),
        )
        super().__init__(channels, height, width, output_size, convs, nn.LeakyReLU())


class ResidualBlock(nn.Module):
    """``x + conv(swish(conv(swish(x))))`` with 3x3 convolutions that keep the size."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.SiLU(),
            nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.layers(x)
        return out


class ResNetVisualEncoder(_ConvEncoder):
    """``resnet``: per stack (16, 32, 32 channels) conv 3x3, max-pool 3x3/2, two residual
    blocks; then Swish, dense, ReLU. Images >= 15x15."""

    encoder_type = "resnet"
    min_resolution = 15
    stack_channels: ClassVar[tuple[int, ...]] = (16, 32, 32)
    blocks_per_stack: ClassVar[int] = 2

    def __init__(self, channels: int, height: int, width: int, output_size: int) -> None:
        layers: list[nn.Module] = []
        last = channels
        for out_channels in self.stack_channels:
            layers.append(nn.Conv2d(last, out_channels, kernel_size=3, stride=1, padding=1))
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            layers.extend(ResidualBlock(out_channels) for _ in range(self.blocks_per_stack))
            last = out_channels
        layers.append(nn.SiLU())
        super().__init__(channels, height, width, output_size, nn.Sequential(*layers), nn.ReLU())


class FullyConnectedVisualEncoder(VisualEncoder):
    """``fully_connected``: the flattened image, dense, LeakyReLU. Any size."""

    encoder_type = "fully_connected"
    min_resolution = 1

    def __init__(self, channels: int, height: int, width: int, output_size: int) -> None:
        super().__init__(channels, height, width, output_size)
        self.flatten = nn.Flatten()
        self.dense = _dense(channels * height * width, output_size)
        self.activation = nn.LeakyReLU()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.activation(self.dense(self.flatten(images)))
        return out


ENCODER_CLASSES: dict[str, type[VisualEncoder]] = {
    cls.encoder_type: cls
    for cls in (
        SimpleVisualEncoder,
        NatureVisualEncoder,
        ResNetVisualEncoder,
        Match3VisualEncoder,
        FullyConnectedVisualEncoder,
    )
}
MIN_RESOLUTION: dict[str, int] = {name: cls.min_resolution for name, cls in ENCODER_CLASSES.items()}


def _encoder_class(encoder: str) -> type[VisualEncoder]:
    try:
        return ENCODER_CLASSES[encoder]
    except KeyError:
        known = ", ".join(VISUAL_ENCODER_TYPES)
        raise ValueError(f"Unknown visual encoder {encoder!r}; use one of {known}.") from None


def check_resolution(encoder: str, height: int, width: int) -> None:
    """Raise ValueError, naming encoders that fit, when ``encoder`` cannot take the image."""
    minimum = _encoder_class(encoder).min_resolution
    if height >= minimum and width >= minimum:
        return
    fitting = [
        f"{name} (>= {size}x{size})"
        for name, size in MIN_RESOLUTION.items()
        if height >= size and width >= size
    ]
    raise ValueError(
        f"The {encoder} visual encoder needs images of at least {minimum}x{minimum} pixels; "
        f"this visual observation is {height}x{width} (height x width). Use a larger camera or "
        f"another network_settings.vis_encode_type: {', '.join(fitting)}."
    )


def make_visual_encoder(encoder: str, shape: tuple[int, ...], output_size: int) -> VisualEncoder:
    """The ``encoder`` network for channel-first images of ``shape`` ``(C, H, W)``."""
    if len(shape) != 3:
        raise ValueError(f"Visual encoders take (channels, height, width) images, not {shape}.")
    channels, height, width = (int(n) for n in shape)
    return _encoder_class(encoder)(channels, height, width, output_size)


def _is_image(space: spaces.Space[Any], normalized_image: bool) -> bool:
    return is_image_space(space, check_channels=False, normalized_image=normalized_image)


class VisualEncoderExtractor(BaseFeaturesExtractor):
    """SB3 features extractor for one channel-first image ``Box``: an ML-Agents encoder.

    :param observation_space: the image space (``uint8`` in [0, 255], as SB3's CNN policies
        take it, or any 3-D ``Box`` with ``normalized_image=True``).
    :param encoder: ``vis_encode_type``: simple, nature_cnn, resnet, match3 or fully_connected.
    :param output_size: features out (ML-Agents uses ``network_settings.hidden_units``).
    :param normalized_image: the images are already floats (SB3's flag of the same name).
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        encoder: VisualEncoderType = "simple",
        output_size: int = 128,
        normalized_image: bool = False,
    ) -> None:
        if not _is_image(observation_space, normalized_image):
            raise ValueError(
                f"VisualEncoderExtractor takes one channel-first image Box, not "
                f"{observation_space} (uint8 in [0, 255], or pass normalized_image=True for "
                "float images); use ObservationEncoderExtractor for Dict observations."
            )
        assert observation_space.shape is not None
        super().__init__(observation_space, output_size)
        self.encoder = make_visual_encoder(encoder, observation_space.shape, output_size)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoder(observations)
        return out


class ObservationEncoderExtractor(BaseFeaturesExtractor):
    """SB3 features extractor for ``Dict`` observations, as ML-Agents' ``ObservationEncoder``.

    Every image entry (SB3's ``is_image_space``) gets its own ``encoder`` network with
    ``output_size`` features; every other entry is flattened as it is. The features are
    concatenated in the space's key order: ``features_dim`` is ``images * output_size`` plus
    the flattened sizes of the rest.

    :param observation_space: a ``Dict`` of ``Box`` spaces.
    :param encoder: ``vis_encode_type`` of every image entry.
    :param output_size: features out per image (ML-Agents: ``network_settings.hidden_units``).
    :param normalized_image: image entries are already floats (any 3-D ``Box`` is an image).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        encoder: VisualEncoderType = "simple",
        output_size: int = 128,
        normalized_image: bool = False,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(
                f"ObservationEncoderExtractor takes a Dict observation space, not "
                f"{observation_space}; use VisualEncoderExtractor for one image."
            )
        extractors: list[nn.Module] = []
        size = 0
        for subspace in observation_space.spaces.values():
            if _is_image(subspace, normalized_image):
                assert subspace.shape is not None
                extractors.append(make_visual_encoder(encoder, subspace.shape, output_size))
                size += output_size
            else:
                extractors.append(nn.Flatten())
                size += get_flattened_obs_dim(subspace)
        super().__init__(observation_space, size)
        # A list, not a ModuleDict: sensor names may hold dots, which module names cannot.
        self.keys: tuple[str, ...] = tuple(observation_space.spaces)
        self.extractors = nn.ModuleList(extractors)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [
            extractor(observations[key])
            for key, extractor in zip(self.keys, self.extractors, strict=True)
        ]
        return torch.cat(parts, dim=1)
