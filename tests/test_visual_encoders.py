"""ML-Agents' visual encoders as SB3 features extractors, and the CLI choosing them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

import gymnasium as gym
import numpy as np
import torch
import yaml
from gymnasium import spaces
from stable_baselines3 import PPO
from torch import nn

from cli.main import main
from cli.sb3_translation import TranslationError, translate_behavior
from cli.training_config import parse_run_options
from sb3_ext.networks import (
    MIN_RESOLUTION,
    VISUAL_ENCODER_TYPES,
    ObservationEncoderExtractor,
    ResidualBlock,
    ResNetVisualEncoder,
    VisualEncoderExtractor,
    check_resolution,
    make_visual_encoder,
)
from tests.conftest import live_children
from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.players.gridworld import GridWorldTask
from unity_gym.spaces import SpaceConverter

CAMERA = (3, 64, 84)  # built-in GridWorld's image


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


# -- encoders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", VISUAL_ENCODER_TYPES)
def test_output_shape_on_a_camera_and_at_the_minimum_size(encoder: str) -> None:
    torch.manual_seed(0)
    network = make_visual_encoder(encoder, CAMERA, 16)
    assert network(torch.rand(2, *CAMERA)).shape == (2, 16)
    n = MIN_RESOLUTION[encoder]
    smallest = make_visual_encoder(encoder, (1, n, n), 8)
    assert smallest(torch.rand(5, 1, n, n)).shape == (5, 8)


def test_minimum_sizes_are_mlagents() -> None:
    assert MIN_RESOLUTION == {
        "simple": 20,
        "nature_cnn": 36,
        "resnet": 15,
        "match3": 5,
        "fully_connected": 1,
    }


@pytest.mark.parametrize("encoder", [e for e in VISUAL_ENCODER_TYPES if MIN_RESOLUTION[e] > 1])
def test_one_pixel_below_the_minimum_is_refused(encoder: str) -> None:
    n = MIN_RESOLUTION[encoder]
    for shape in ((3, n - 1, n + 10), (3, n + 10, n - 1)):
        with pytest.raises(ValueError, match=f"The {encoder} visual encoder needs images of at"):
            make_visual_encoder(encoder, shape, 8)


def test_too_small_error_names_encoder_size_minimum_and_alternatives() -> None:
    with pytest.raises(ValueError) as caught:
        make_visual_encoder("nature_cnn", (3, 30, 84), 8)
    assert str(caught.value) == (
        "The nature_cnn visual encoder needs images of at least 36x36 pixels; this visual "
        "observation is 30x84 (height x width). Use a larger camera or another "
        "network_settings.vis_encode_type: simple (>= 20x20), resnet (>= 15x15), "
        "match3 (>= 5x5), fully_connected (>= 1x1)."
    )
    check_resolution("simple", 20, 20)  # exactly the minimum is fine
    with pytest.raises(ValueError, match="Unknown visual encoder 'alexnet'"):
        make_visual_encoder("alexnet", CAMERA, 8)


@pytest.mark.parametrize(
    ("encoder", "convs", "activation"),
    [
        ("simple", [(16, 8, 4), (32, 4, 2)], nn.LeakyReLU),
        ("nature_cnn", [(32, 8, 4), (64, 4, 2), (64, 3, 1)], nn.LeakyReLU),
        ("match3", [(35, 3, 1), (144, 3, 1)], nn.LeakyReLU),
        ("fully_connected", [], nn.LeakyReLU),
    ],
)
def test_layers_are_mlagents(encoder: str, convs: list[tuple[int, int, int]], activation) -> None:
    shape = (3, 40, 44)
    network = make_visual_encoder(encoder, shape, 16)
    found = [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in _convs(network)]
    assert found == convs
    assert all(c.padding == (0, 0) for c in _convs(network))
    activations = [m for m in network.modules() if isinstance(m, nn.LeakyReLU | nn.ReLU)]
    assert len(activations) == len(convs) + 1
    assert all(type(m) is activation and m.negative_slope == 0.01 for m in activations)
    (dense,) = _linears(network)
    height, width = shape[1:]
    for _, kernel, stride in convs:
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    channels = convs[-1][0] if convs else shape[0]
    assert (dense.in_features, dense.out_features) == (channels * height * width, 16)


def test_resnet_stacks_pool_and_residual_blocks() -> None:
    network = make_visual_encoder("resnet", CAMERA, 16)
    assert isinstance(network, ResNetVisualEncoder)
    convs = _convs(network)
    assert len(convs) == 3 * (1 + 2 * 2)
    assert {(c.kernel_size, c.stride, c.padding) for c in convs} == {((3, 3), (1, 1), (1, 1))}
    assert [c.out_channels for c in convs[::5]] == [16, 32, 32]
    pools = [m for m in network.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2)] * 3
    assert sum(isinstance(m, ResidualBlock) for m in network.modules()) == 6
    height, width = CAMERA[1:]
    for _ in range(3):
        height, width = (height - 3) // 2 + 1, (width - 3) // 2 + 1
    (dense,) = _linears(network)
    assert dense.in_features == 32 * height * width
    x = torch.randn(4, 3, 40, 44)
    network = make_visual_encoder("resnet", (3, 40, 44), 16)
    assert torch.all(network(x) >= 0)  # ends with ReLU

    block = ResidualBlock(4)
    assert [type(m) for m in block.layers] == [nn.SiLU, nn.Conv2d, nn.SiLU, nn.Conv2d]
    x = torch.randn(2, 4, 6, 7)
    first, second = _convs(block)
    swish = x * torch.sigmoid(x)
    inner = first(swish)
    expected = x + second(inner * torch.sigmoid(inner))
    torch.testing.assert_close(block(x), expected)
    nn.init.zeros_(second.weight)
    nn.init.zeros_(second.bias)
    torch.testing.assert_close(block(x), x)  # the identity path


@pytest.mark.parametrize("encoder", VISUAL_ENCODER_TYPES)
def test_dense_is_kaiming_normal_times_1_41_and_convs_keep_torch_init(encoder: str) -> None:
    torch.manual_seed(1)
    network = make_visual_encoder(encoder, (3, 40, 44), 256)
    (dense,) = _linears(network)
    assert torch.count_nonzero(dense.bias) == 0
    weights = dense.weight.detach()
    assert abs(float(weights.mean())) < 0.02 * 1.41 / math.sqrt(dense.in_features)
    assert float(weights.std()) == pytest.approx(1.41 / math.sqrt(dense.in_features), rel=0.03)
    for conv in _convs(network):  # PyTorch's default: uniform within 1/sqrt(fan_in)
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert float(conv.weight.detach().abs().max()) <= 1 / math.sqrt(fan_in)
        assert torch.count_nonzero(conv.bias) > 0


# -- features extractors ----------------------------------------------------------------------


def _image(shape: tuple[int, int, int]) -> spaces.Box:
    return spaces.Box(0, 255, shape, np.uint8)


def test_image_extractor() -> None:
    extractor = VisualEncoderExtractor(_image(CAMERA), encoder="simple", output_size=24)
    assert extractor.features_dim == 24
    assert extractor(torch.rand(3, *CAMERA)).shape == (3, 24)
    assert _convs(extractor)[0].out_channels == 16
    floats = spaces.Box(0.0, 1.0, (1, 20, 20), np.float32)
    assert VisualEncoderExtractor(floats, normalized_image=True).features_dim == 128
    with pytest.raises(ValueError, match="one channel-first image Box"):
        VisualEncoderExtractor(floats)
    with pytest.raises(ValueError, match="one channel-first image Box"):
        VisualEncoderExtractor(spaces.Box(-1.0, 1.0, (8,), np.float32))
    with pytest.raises(ValueError, match="The resnet visual encoder needs"):
        VisualEncoderExtractor(_image((3, 14, 64)), encoder="resnet")


def test_dict_extractor_encodes_each_image_and_passes_vectors_through() -> None:
    space = spaces.Dict(
        {
            "camera": _image((3, 36, 40)),
            "depth": _image((1, 20, 24)),
            "grid": spaces.Box(-1.0, 1.0, (2, 3), np.float32),
            "speed": spaces.Box(-np.inf, np.inf, (4,), np.float32),
        }
    )
    extractor = ObservationEncoderExtractor(space, encoder="simple", output_size=10)
    assert extractor.features_dim == 2 * 10 + 6 + 4
    batch = {
        "camera": torch.rand(5, 3, 36, 40),
        "depth": torch.rand(5, 1, 20, 24),
        "grid": torch.randn(5, 2, 3),
        "speed": torch.randn(5, 4),
    }
    out = extractor(batch)
    assert out.shape == (5, 30)
    torch.testing.assert_close(out[:, 20:26], batch["grid"].reshape(5, 6))  # key order
    torch.testing.assert_close(out[:, 26:], batch["speed"])
    camera, depth = (m for m in extractor.modules() if type(m).__name__ == "SimpleVisualEncoder")
    assert _convs(camera)[0].in_channels == 3 and _convs(depth)[0].in_channels == 1
    assert camera.output_size == depth.output_size == 10
    with pytest.raises(ValueError, match="takes a Dict observation space"):
        ObservationEncoderExtractor(_image(CAMERA))  # type: ignore[arg-type]


def test_dict_keys_may_hold_dots() -> None:
    space = spaces.Dict({"Camera.0": _image((3, 20, 20)), "ray.1": spaces.Box(0, 1, (3,))})
    extractor = ObservationEncoderExtractor(space, output_size=4)
    out = extractor({"Camera.0": torch.rand(2, 3, 20, 20), "ray.1": torch.ones(2, 3)})
    assert out.shape == (2, 7)


class _SpaceEnv(gym.Env):
    def __init__(self, observation_space: spaces.Space[Any], action_space: spaces.Space[Any]):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.mark.parametrize(
    ("policy", "extractor", "encoder"),
    [("CnnPolicy", VisualEncoderExtractor, "resnet"), ("MultiInputPolicy", None, "match3")],
)
def test_ppo_with_the_extractor_saves_and_loads(
    tmp_path: Path, policy: str, extractor: type | None, encoder: str
) -> None:
    image = _image((3, 24, 28))
    space: spaces.Space[Any] = image
    if extractor is None:
        extractor = ObservationEncoderExtractor
        space = spaces.Dict({"camera": image, "vector": spaces.Box(-1.0, 1.0, (3,), np.float32)})
    env = _SpaceEnv(space, spaces.Discrete(3))
    kwargs = {
        "net_arch": [8],
        "features_extractor_class": extractor,
        "features_extractor_kwargs": {"encoder": encoder, "output_size": 12},
    }
    model = PPO(policy, env, n_steps=8, batch_size=8, policy_kwargs=kwargs, device="cpu", seed=0)
    model.learn(8)
    assert isinstance(model.policy.pi_features_extractor, extractor)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert type(loaded.policy.pi_features_extractor) is extractor
    assert loaded.policy_kwargs["features_extractor_kwargs"] == {
        "encoder": encoder,
        "output_size": 12,
    }
    obs = [space.sample() for _ in range(6)]
    batch: Any = (
        np.stack(obs)
        if extractor is VisualEncoderExtractor
        else {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    )
    want, _ = model.predict(batch, deterministic=True)
    got, _ = loaded.predict(batch, deterministic=True)
    np.testing.assert_array_equal(got, want)
    original = model.policy.state_dict()
    for key, value in loaded.policy.state_dict().items():
        torch.testing.assert_close(value, original[key])


# -- the CLI ------------------------------------------------------------------------------------

RESNET_GRIDWORLD = {
    "behaviors": {
        "GridWorld": {
            "trainer_type": "ppo",
            "network_settings": {"vis_encode_type": "resnet", "hidden_units": 48},
        }
    },
    "env_settings": {"env_path": "builtin:GridWorld"},
}


def _vector(size: int) -> ObservationSpec:
    return ObservationSpec((size,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "ray")


def test_translation_of_gridworld_builds_the_resnet_extractor() -> None:
    spec = GridWorldTask.behavior_spec
    assert spec.observation_specs[0].shape == CAMERA
    settings = parse_run_options(RESNET_GRIDWORLD).behaviors["GridWorld"]
    plan = translate_behavior("GridWorld", settings, spec, 4)
    assert (plan.algorithm, plan.policy) == ("MaskablePPO", "CnnPolicy")
    policy_kwargs = plan.kwargs["policy_kwargs"]
    assert policy_kwargs["features_extractor_class"] is VisualEncoderExtractor
    assert policy_kwargs["features_extractor_kwargs"] == {"encoder": "resnet", "output_size": 48}
    assert not any("vis_encode_type" in note for note in plan.notes)

    converter = SpaceConverter.for_behavior(spec)
    env = _SpaceEnv(converter.observation_space, converter.action_space)
    model = plan.algorithm_class()(plan.policy, env, device="cpu", **plan.kwargs)
    for extractor in (model.policy.pi_features_extractor, model.policy.vf_features_extractor):
        assert isinstance(extractor, VisualEncoderExtractor)
        assert isinstance(extractor.encoder, ResNetVisualEncoder)
        assert extractor.features_dim == 48
    assert model.policy.pi_features_extractor is not model.policy.vf_features_extractor


@pytest.mark.parametrize("trainer", ["ppo", "sac"])
@pytest.mark.parametrize("memory", [False, True])
def test_every_algorithm_gets_the_encoder(trainer: str, memory: bool) -> None:
    network: dict[str, Any] = {"vis_encode_type": "match3", "hidden_units": 20}
    if memory:
        network["memory"] = {"memory_size": 16}
    settings = parse_run_options(
        {"behaviors": {"B": {"trainer_type": trainer, "network_settings": network}}}
    ).behaviors["B"]
    camera = ObservationSpec((2, 8, 9), (DimensionProperty.NONE,) * 3, ObservationType.DEFAULT, "")
    for actions in (ActionSpec.create_continuous(2), ActionSpec.create_discrete((3,))):
        for observations, extractor, features in (
            ([camera], VisualEncoderExtractor, 20),
            ([camera, _vector(5)], ObservationEncoderExtractor, 20 + 5),
        ):
            spec = BehaviorSpec(observations, actions)
            plan = translate_behavior("B", settings, spec, 2)
            policy_kwargs = plan.kwargs["policy_kwargs"]
            assert policy_kwargs["features_extractor_class"] is extractor, plan.algorithm
            converter = SpaceConverter.for_behavior(spec)
            env = _SpaceEnv(converter.observation_space, converter.action_space)
            kwargs = {k: v for k, v in plan.kwargs.items() if k != "buffer_size"}
            if "buffer_size" in plan.kwargs:
                kwargs["buffer_size"] = 16
            model = plan.algorithm_class()(plan.policy, env, device="cpu", **kwargs)
            found = [m for m in model.policy.modules() if isinstance(m, extractor)]
            assert found and all(m.features_dim == features for m in found)


def test_translation_refuses_images_below_the_encoder_minimum() -> None:
    settings = parse_run_options(
        {"behaviors": {"B": {"network_settings": {"vis_encode_type": "simple"}}}}
    ).behaviors["B"]
    small = ObservationSpec((3, 16, 16), (DimensionProperty.NONE,) * 3, ObservationType.DEFAULT, "")
    spec = BehaviorSpec([small], ActionSpec.create_discrete((3,)))
    with pytest.raises(TranslationError, match=r"Behavior B: The simple visual encoder needs"):
        translate_behavior("B", settings, spec, 1)


def test_translate_command_prints_the_extractor(tmp_path: Path, port: int, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(RESNET_GRIDWORLD))
    before = live_children()
    assert main(["translate", str(config), "--format", "json", f"--base-port={port}"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)
    policy_kwargs = plan["kwargs"]["policy_kwargs"]
    assert policy_kwargs["features_extractor_class"] == (
        "sb3_ext.networks.visual_encoders.VisualEncoderExtractor"
    )
    assert policy_kwargs["features_extractor_kwargs"] == {"encoder": "resnet", "output_size": 48}
    assert live_children() <= before
