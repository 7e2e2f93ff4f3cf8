"""Curiosity and RND reward models (sb3_ext.reward_signals): ML-Agents' math and networks."""

from __future__ import annotations

import copy
import io
import math

import pytest

pytest.importorskip("stable_baselines3")

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from sb3_ext.reward_signals import (
    ActionLayout,
    CuriositySettings,
    CuriositySignal,
    NetworkBody,
    Normalizer,
    RewardNetworkSettings,
    RNDSettings,
    RNDSignal,
    Transitions,
    value_head_caveats,
)
from sb3_ext.reward_signals.curiosity import FORWARD_LOSS_WEIGHT, LOSS_MULTIPLIER

VEC = spaces.Box(-1.0, 1.0, (3,), np.float32)


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _swish(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _np(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    return layer.weight.detach().numpy().astype(np.float64), layer.bias.detach().numpy()


def _set_fixed_weights(module: nn.Module, scale: float = 0.3) -> None:
    """Deterministic, distinct weights: a smooth pattern per layer."""
    with torch.no_grad():
        for i, layer in enumerate(_linears(module)):
            n = layer.weight.numel()
            pattern = torch.sin(torch.arange(n, dtype=torch.float32) * 0.7 + i)
            layer.weight.copy_(scale * pattern.reshape(layer.weight.shape))
            layer.bias.copy_(0.05 * torch.cos(torch.arange(layer.bias.numel()) + i * 1.0))


def _tiny_curiosity(action_space: spaces.Space, strength: float = 1.0) -> CuriositySignal:
    torch.manual_seed(0)
    signal = CuriositySignal(
        VEC,
        action_space,
        strength=strength,
        network_settings=RewardNetworkSettings(hidden_units=4, num_layers=1),
        device="cpu",
    )
    _set_fixed_weights(signal.network)
    return signal


def _batch(n: int = 5, action_space: spaces.Space | None = None, seed: int = 1) -> Transitions:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    next_obs = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    space = action_space or spaces.MultiDiscrete([3, 2])
    actions = np.stack([space.sample() for _ in range(n)])
    return Transitions.from_numpy(obs, next_obs, actions)


# -- hand computation (numpy, from the layer weights) -------------------------------------------


def _hand_curiosity(signal: CuriositySignal, batch: Transitions) -> tuple[np.ndarray, float, float]:
    """Unclipped reward, forward loss and inverse loss of ML-Agents' ICM, in numpy."""
    net = signal.network
    (w1, b1) = _np(net.state_encoder.body[0])

    def phi(x: np.ndarray) -> np.ndarray:
        return _swish(x @ w1.T + b1)

    s = phi(batch.observations.numpy().astype(np.float64))
    s2 = phi(batch.next_observations.numpy().astype(np.float64))
    actions = batch.actions.numpy()
    branches = signal.action_layout.discrete_branches
    one_hot = np.concatenate([np.eye(n)[actions[:, i]] for i, n in enumerate(branches)], axis=1)
    (fw1, fb1), (fw2, fb2) = _np(net.forward_model[0]), _np(net.forward_model[2])
    predicted = _swish(np.concatenate([s, one_hot], 1) @ fw1.T + fb1) @ fw2.T + fb2
    reward = np.sum(0.5 * (s2 - predicted) ** 2, axis=1)
    (iw, ib), (dw, db) = _np(net.inverse_hidden[0]), _np(net.discrete_head)
    logits = _swish(np.concatenate([s, s2], 1) @ iw.T + ib) @ dw.T + db
    probs, start = [], 0
    for n in branches:
        part = np.exp(logits[:, start : start + n])
        probs.append(part / part.sum(1, keepdims=True))
        start += n
    cross_entropy = np.sum(-np.log(np.concatenate(probs, 1) + 1e-10) * one_hot, axis=1)
    return reward, float(reward.mean()), float(cross_entropy.mean())


def test_curiosity_reward_and_losses_match_a_hand_computation() -> None:
    signal = _tiny_curiosity(spaces.MultiDiscrete([3, 2]), strength=0.01)
    batch = _batch()
    reward, forward, inverse = _hand_curiosity(signal, batch)
    assert reward.max() < 1 / 0.01  # no clipping here
    assert np.all(signal.evaluate(batch).numpy() == 0.0)  # before the first update
    signal.has_updated_once = True
    np.testing.assert_allclose(signal.evaluate(batch).numpy(), reward, rtol=1e-5)
    stats = signal.update(batch)  # losses are of the weights before the step
    assert set(stats) == {"Losses/Curiosity Forward Loss", "Losses/Curiosity Inverse Loss"}
    assert stats["Losses/Curiosity Forward Loss"] == pytest.approx(forward, rel=1e-5)
    assert stats["Losses/Curiosity Inverse Loss"] == pytest.approx(inverse, rel=1e-5)


def test_curiosity_continuous_inverse_loss_is_the_summed_squared_error() -> None:
    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    signal = _tiny_curiosity(box)
    batch = _batch(action_space=box)
    net = signal.network
    with torch.no_grad():
        state, next_state = net.encode(batch)
        hidden = net.inverse_hidden(torch.cat([state, next_state], 1))
        predicted = net.continuous_head(hidden)
    expected = float(torch.mean(torch.sum((batch.actions - predicted) ** 2, 1)))
    assert signal.update(batch)["Losses/Curiosity Inverse Loss"] == pytest.approx(expected, 1e-5)


def test_curiosity_total_loss_weights_forward_0_2_inverse_0_8_times_10() -> None:
    signal = _tiny_curiosity(spaces.MultiDiscrete([3, 2]))
    batch = _batch()
    reference = copy.deepcopy(signal.network)
    signal.update(batch)  # leaves each parameter's gradient of the total loss in .grad
    state = reference.state_encoder(batch.observations)
    next_state = reference.state_encoder(batch.next_observations)
    forward = torch.mean(reference.prediction_error(state, next_state, batch.actions))
    inverse = reference.inverse_loss(state, next_state, batch.actions)
    (10.0 * (0.2 * forward + 0.8 * inverse)).backward()
    assert (LOSS_MULTIPLIER, FORWARD_LOSS_WEIGHT) == (10.0, 0.2)
    for trained, ref in zip(signal.network.parameters(), reference.parameters(), strict=True):
        assert trained.grad is not None and ref.grad is not None
        torch.testing.assert_close(trained.grad, ref.grad, rtol=1e-5, atol=1e-7)
    # The target phi(s') is not detached: the encoder gets forward-loss gradient through it.
    encoder_weight = reference.state_encoder.body[0].weight
    reference.zero_grad()
    state = reference.state_encoder(batch.observations).detach()
    torch.mean(
        reference.prediction_error(
            state, reference.state_encoder(batch.next_observations), batch.actions
        )
    ).backward()
    assert encoder_weight.grad is not None and encoder_weight.grad.abs().sum() > 0


def test_curiosity_reward_is_clipped_at_one_over_strength_and_zero_before_the_first_update() -> (
    None
):
    signal = _tiny_curiosity(spaces.MultiDiscrete([3, 2]), strength=4.0)
    with torch.no_grad():
        signal.network.forward_model[2].bias.add_(3.0)  # large prediction errors
    batch = _batch(n=8)
    assert torch.all(signal.evaluate(batch) == 0)
    signal.update(batch)
    assert signal.has_updated_once
    reward = signal.evaluate(batch)
    assert torch.all(reward > 0)
    assert torch.all(reward <= 0.25) and torch.all(reward == 0.25)
    assert signal.reward_clip == 0.25
    assert (4.0 * reward).max() <= 1.0 + 1e-6  # a scaled curiosity reward is at most 1


def test_curiosity_network_layers_and_initialisation_follow_mlagents() -> None:
    torch.manual_seed(0)
    signal = CuriositySignal(
        spaces.Box(-1, 1, (8,), np.float32),
        ActionLayout.hybrid(2, (3, 2)),
        device="cpu",
    )
    net = signal.network
    h = 128
    shapes = [tuple(m.weight.shape) for m in _linears(net.state_encoder)]
    assert shapes == [(h, 8), (h, h)]
    assert tuple(net.inverse_hidden[0].weight.shape) == (256, 2 * h)
    assert tuple(net.continuous_head.weight.shape) == (2, 256)
    assert tuple(net.discrete_head.weight.shape) == (5, 256)
    assert [tuple(m.weight.shape) for m in _linears(net.forward_model)] == [
        (256, h + 2 + 5),
        (h, 256),
    ]
    assert isinstance(net.inverse_hidden[1], nn.SiLU) and isinstance(net.forward_model[1], nn.SiLU)
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in _linears(net))
    # LinearEncoder layers: Kaiming normal with linear gain (std 1/sqrt(fan_in)).
    for layer in (net.inverse_hidden[0], net.forward_model[0]):
        fan_in = layer.weight.shape[1]
        assert float(layer.weight.detach().std()) == pytest.approx(1 / math.sqrt(fan_in), rel=0.05)
    # linear_layer defaults: Xavier uniform, bound sqrt(6 / (fan_in + fan_out)).
    for layer in (net.forward_model[2], net.discrete_head, net.continuous_head):
        bound = math.sqrt(6 / sum(layer.weight.shape))
        assert float(layer.weight.detach().abs().max()) <= bound
    assert float(net.forward_model[2].weight.detach().abs().max()) > 0.9 * math.sqrt(6 / (256 + h))
    assert signal.optimizer.defaults["lr"] == 3e-4
    assert CuriositySettings().learning_rate == 3e-4 and RNDSettings().learning_rate == 1e-4


# -- network body ---------------------------------------------------------------------------------


def test_network_body_dense_layers_sizes_init_and_swish() -> None:
    torch.manual_seed(0)
    body = NetworkBody(spaces.Box(-1, 1, (400,), np.float32), RewardNetworkSettings(256, 3), 7)
    layers = _linears(body)
    assert [tuple(m.weight.shape) for m in layers] == [(256, 407), (256, 256), (256, 256)]
    assert sum(isinstance(m, nn.SiLU) for m in body.body) == 3
    for layer in layers:
        assert float(layer.weight.detach().std()) == pytest.approx(
            1 / math.sqrt(layer.weight.shape[1]), rel=0.05
        )
        assert float(layer.bias.detach().abs().max()) == 0.0
    out = body(torch.zeros(5, 400), torch.ones(5, 7))
    assert out.shape == (5, 256)
    assert RewardNetworkSettings() == RewardNetworkSettings(128, 2, False, "simple")


def test_network_body_encodes_images_and_dicts() -> None:
    torch.manual_seed(0)
    image = spaces.Box(0, 255, (3, 20, 24), np.uint8)
    space = spaces.Dict({"camera": image, "ray": spaces.Box(-1, 1, (2, 3), np.float32)})
    body = NetworkBody(space, RewardNetworkSettings(hidden_units=16, num_layers=1))
    assert body.encoded_size == 16 + 6
    pixels = torch.randint(0, 256, (4, 3, 20, 24), dtype=torch.uint8)
    ray = torch.randn(4, 2, 3)
    out = body({"camera": pixels, "ray": ray})
    camera_input = body.inputs[0]
    expected = body.body(
        torch.cat([camera_input.encoder(pixels.float() / 255), ray.reshape(4, 6)], 1)
    )
    torch.testing.assert_close(out, expected)
    # A float image is taken as already scaled.
    float_body = NetworkBody(spaces.Box(0, 1, (1, 20, 20), np.float32))
    assert not float_body.inputs[0].scale
    with pytest.raises(ValueError, match="at least 20x20"):
        NetworkBody(spaces.Box(0, 255, (3, 10, 10), np.uint8))


@pytest.mark.parametrize(
    ("space", "named"),
    [
        (spaces.Discrete(4), "Discrete"),
        (spaces.MultiBinary(3), "MultiBinary"),
        (spaces.Box(0, 10, (2, 8, 8), np.int32), "3-D Box"),
        (spaces.Dict({"ok": VEC, "bad": spaces.Discrete(2)}), "entry 'bad'"),
    ],
)
def test_unsupported_observation_spaces_are_refused_with_an_explanation(
    space: spaces.Space, named: str
) -> None:
    with pytest.raises(ValueError, match="Reward signals cannot encode") as error:
        NetworkBody(space)
    message = str(error.value)
    assert named in message and "Box" in message and "Dict" in message


def test_normalizer_follows_mlagents_running_statistics() -> None:
    norm = Normalizer(2)
    rng = np.random.default_rng(0)
    data = rng.normal([3.0, -1.0], [2.0, 0.5], (200, 2)).astype(np.float32)
    norm.update(torch.as_tensor(data[:50]))
    norm.update(torch.as_tensor(data[50:]))
    # Batched updates merge exactly: one pseudo-sample at 0 (M2 = 1), then the data.
    steps = 201
    mean = data.sum(0) / steps
    m2 = 1.0 + ((data - mean) ** 2).sum(0) + (0 - mean) ** 2
    assert int(norm.normalization_steps) == steps
    np.testing.assert_allclose(norm.running_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(norm.running_variance.numpy(), m2, rtol=1e-4)
    x = torch.tensor([[3.0, 100.0]])
    expected = np.clip((x.numpy() - mean) / np.sqrt(m2 / steps), -5, 5)
    np.testing.assert_allclose(norm(x).numpy(), expected, rtol=1e-5)
    assert float(norm(x)[0, 1]) == 5.0


# -- actions ---------------------------------------------------------------------------------------


def test_action_flattening_continuous_discrete_branches_and_hybrid() -> None:
    multi = ActionLayout.from_space(spaces.MultiDiscrete([3, 2]))
    assert (multi.discrete_branches, multi.flattened_size) == ((3, 2), 5)
    flat = multi.flatten(torch.tensor([[2, 1], [0, 0]]))
    assert flat.tolist() == [[0, 0, 1, 0, 1], [1, 0, 0, 1, 0]]
    one = ActionLayout.from_space(spaces.Discrete(3))
    assert one.flatten(torch.tensor([2, 0])).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert one.flatten(torch.tensor([[1]])).tolist() == [[0, 1, 0]]
    shifted = ActionLayout.from_space(spaces.Discrete(3, start=-1))
    assert shifted.flatten(torch.tensor([-1, 1])).tolist() == [[1, 0, 0], [0, 0, 1]]
    box = ActionLayout.from_space(spaces.Box(-1, 1, (2,), np.float32))
    assert box.flatten(torch.tensor([[0.5, -3.0]])).tolist() == [[0.5, -3.0]]  # raw, unclipped
    hybrid = ActionLayout.hybrid(2, (3,))
    assert hybrid.flatten(torch.tensor([[0.1, 0.2, 2.0]]))[0].tolist() == pytest.approx(
        [0.1, 0.2, 0, 0, 1]
    )
    with pytest.raises(ValueError, match="do not fit"):
        multi.flatten(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="Box, Discrete or one-dimensional MultiDiscrete"):
        ActionLayout.from_space(spaces.MultiBinary(2))


# -- RND -------------------------------------------------------------------------------------------


def _rnd(normalize: bool = False) -> RNDSignal:
    torch.manual_seed(0)
    settings = RewardNetworkSettings(hidden_units=32, num_layers=2, normalize=normalize)
    return RNDSignal(VEC, strength=0.5, learning_rate=1e-3, network_settings=settings, device="cpu")


def test_rnd_reward_formula_and_target_is_frozen() -> None:
    signal = _rnd()
    obs = torch.rand(6, 3)
    batch = Transitions(obs)
    expected = torch.sum((signal.predictor(obs) - signal.target(obs)) ** 2, 1)
    torch.testing.assert_close(signal.evaluate(batch), expected.detach())
    target_before = copy.deepcopy(signal.target.state_dict())
    predictor_before = copy.deepcopy(signal.predictor.state_dict())
    loss = signal.update(batch)["Losses/RND Loss"]
    assert loss == pytest.approx(float(expected.detach().mean()), rel=1e-5)
    for key, value in signal.target.state_dict().items():
        torch.testing.assert_close(value, target_before[key])
    assert any(
        not torch.equal(value, predictor_before[key])
        for key, value in signal.predictor.state_dict().items()
    )
    assert not any(p.requires_grad for p in signal.target.parameters())
    optimised = {id(p) for group in signal.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in signal.predictor.parameters()}


def test_rnd_reward_falls_on_trained_observations_not_on_unseen_ones() -> None:
    signal = _rnd()
    rng = np.random.default_rng(0)
    seen = torch.as_tensor(rng.uniform(-1, -0.5, (64, 3)), dtype=torch.float32)
    unseen = torch.as_tensor(rng.uniform(0.5, 1, (64, 3)), dtype=torch.float32)
    before = float(signal.evaluate(Transitions(seen)).mean())
    for _ in range(150):
        signal.update(Transitions(seen))
    after_seen = float(signal.evaluate(Transitions(seen)).mean())
    after_unseen = float(signal.evaluate(Transitions(unseen)).mean())
    assert after_seen < 0.1 * before
    assert after_unseen > 5 * after_seen


def test_rnd_normaliser_is_updated_on_every_forward_curiosity_never() -> None:
    rnd = _rnd(normalize=True)
    batch = Transitions(
        torch.rand(10, 3) + 2.0, torch.rand(10, 3), torch.zeros(10, 2, dtype=torch.long)
    )
    norms = [body.inputs[0].normalizer for body in (rnd.target, rnd.predictor)]
    rnd.evaluate(batch)
    assert [int(n.normalization_steps) for n in norms] == [11, 11]
    rnd.update(batch)
    assert [int(n.normalization_steps) for n in norms] == [21, 21]
    torch.manual_seed(0)
    curiosity = CuriositySignal(
        VEC,
        spaces.MultiDiscrete([3, 2]),
        network_settings=RewardNetworkSettings(hidden_units=8, normalize=True),
        device="cpu",
    )
    curiosity.update(batch)
    curiosity.evaluate(batch)
    normalizer = curiosity.network.state_encoder.inputs[0].normalizer
    assert normalizer is not None and int(normalizer.normalization_steps) == 1


# -- checkpoints and settings ----------------------------------------------------------------


def _roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("kind", ["curiosity", "rnd"])
def test_state_dict_round_trip_keeps_weights_optimizer_and_warmup_flag(kind: str) -> None:
    def make(seed: int) -> CuriositySignal | RNDSignal:
        torch.manual_seed(seed)
        settings = RewardNetworkSettings(hidden_units=16, normalize=True)
        if kind == "curiosity":
            return CuriositySettings(network_settings=settings).build(
                VEC, spaces.Discrete(3), device="cpu"
            )
        return RNDSettings(network_settings=settings).build(VEC, device="cpu")

    batch = Transitions(torch.rand(8, 3), torch.rand(8, 3), torch.randint(0, 3, (8,)))
    original = make(0)
    for _ in range(3):
        original.update(batch)
    restored = make(1)
    restored.load_state_dict(_roundtrip(original.state_dict()))
    if isinstance(restored, CuriositySignal):
        assert restored.has_updated_once
    torch.testing.assert_close(restored.evaluate(batch), original.evaluate(batch))
    # Same Adam moments and step counts: the next update is identical.
    original.update(batch)
    restored.update(batch)
    for a, b in zip(original.parameters(), restored.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_value_head_caveats_name_gamma_and_ignore_done() -> None:
    curiosity = CuriositySignal(VEC, spaces.Discrete(2), gamma=0.9, device="cpu")
    notes = value_head_caveats([curiosity], gamma=0.99)
    assert len(notes) == 2 and "gamma 0.9" in notes[0] and "terminal" in notes[1]
    assert curiosity.reward_stat == "Policy/Curiosity Reward"
    assert RNDSignal(VEC, device="cpu").reward_stat == "Policy/Rnd Reward"
    assert CuriositySignal.ignore_done and RNDSignal.ignore_done
