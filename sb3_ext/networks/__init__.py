"""Networks ML-Agents has and Stable-Baselines3 lacks, as SB3 building blocks.

- ``visual_encoders``: ML-Agents' five visual encoders (``network_settings.vis_encode_type``:
  simple, nature_cnn, resnet, match3, fully_connected) and the SB3 features extractors built
  on them: :class:`VisualEncoderExtractor` for one image, :class:`ObservationEncoderExtractor`
  for ``Dict`` observations (images encoded, the rest passed through flattened).
"""

from sb3_ext.networks.visual_encoders import (
    MIN_RESOLUTION,
    VISUAL_ENCODER_TYPES,
    FullyConnectedVisualEncoder,
    Match3VisualEncoder,
    NatureVisualEncoder,
    ObservationEncoderExtractor,
    ResidualBlock,
    ResNetVisualEncoder,
    SimpleVisualEncoder,
    VisualEncoder,
    VisualEncoderExtractor,
    VisualEncoderType,
    check_resolution,
    make_visual_encoder,
)

__all__ = [
    "MIN_RESOLUTION",
    "VISUAL_ENCODER_TYPES",
    "FullyConnectedVisualEncoder",
    "Match3VisualEncoder",
    "NatureVisualEncoder",
    "ObservationEncoderExtractor",
    "ResNetVisualEncoder",
    "ResidualBlock",
    "SimpleVisualEncoder",
    "VisualEncoder",
    "VisualEncoderExtractor",
    "VisualEncoderType",
    "check_resolution",
    "make_visual_encoder",
]
