"""GAIL/VAIL and behavioral cloning against hand-computed values, and learning from a .demo."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from sb3_ext.imitation import (
    BehavioralCloning,
    BehavioralCloningCallback,
    ExpertTransitions,
    load_expert_transitions,
    pretrain,
)
from sb3_ext.reward_signals import GAILSignal, RewardNetworkSettings, Transitions
from tests.conftest import FIXTURES
from unity_gym.exception import UnityDemoException

DEMOS = FIXTURES / "demos"
SMALL = RewardNetworkSettings(hidden_units=4, num_layers=1)
VECTOR = spaces.Box(-np.inf, np.inf, (3,), np.float32)


def _expert(n: int = 8, value: float = 1.0, dones: bool = False) -> ExpertTransitions:
    return ExpertTransitions(
        observations=np.full((n, 3), value, np.float32),
        actions=np.full((n, 1), 2, np.int64),
        dones=np.full(n, dones),
        action_masks=None,
        episode_returns=np.zeros(0, np.float32),
    )


def _constant_discriminator(signal: GAILSignal, probability: float) -> None:
    """D(x) = probability everywhere: the estimator ignores its input."""
    estimator = signal.network.estimator[0]
    with torch.no_grad():
        estimator.weight.zero_()
        estimator.bias.fill_(math.log(probability / (1 - probability)))


def _policy_batch(n: int = 8, value: float = 0.0) -> Transitions:
    return Transitions.from_numpy(
        np.full((n, 3), value, np.float32),
        None,
        np.zeros((n, 1), np.int64),
        dones=np.zeros(n),
    )


# -- GAIL / VAIL -----------------------------------------------------------------------------


def test_gail_reward_and_losses_for_a_known_discriminator() -> None:
    signal = GAILSignal(VECTOR, spaces.Discrete(3), _expert(), network_settings=SMALL, device="cpu")
    _constant_discriminator(signal, 0.75)
    # r = -log(1 - D (1 - 1e-7)) = -log(0.25...) = ln 4
    reward = signal.evaluate(_policy_batch())
    np.testing.assert_allclose(reward.numpy(), math.log(4.0), rtol=1e-6)
    stats = signal.update(_policy_batch())
    assert stats["Policy/GAIL Policy Estimate"] == pytest.approx(0.75, rel=1e-6)
    assert stats["Policy/GAIL Expert Estimate"] == pytest.approx(0.75, rel=1e-6)
    # -(log(0.75 + 1e-7) + log(0.25 + 1e-7))
    assert stats["Losses/GAIL Loss"] == pytest.approx(
        -(math.log(0.75 + 1e-7) + math.log(0.25 + 1e-7)), rel=1e-5
    )
    # D does not depend on the input: |g| = sqrt(0 + 1e-7), penalty 10 (sqrt(1e-7) - 1)^2.
    assert stats["Policy/GAIL Grad Mag Loss"] == pytest.approx(
        10 * (math.sqrt(1e-7) - 1) ** 2, rel=1e-5
    )
    assert "Policy/GAIL Beta" not in stats


def test_gradient_penalty_looks_at_the_first_observation_only() -> None:
    """ML-Agents differentiates D with respect to the first observation tensor only."""
    space = spaces.Dict(
        {
            "first": spaces.Box(-1, 1, (2,), np.float32),
            "second": spaces.Box(-1, 1, (2,), np.float32),
        }
    )
    expert = ExpertTransitions(
        observations={"first": np.zeros((4, 2), np.float32), "second": np.ones((4, 2), np.float32)},
        actions=np.zeros((4, 1), np.int64),
        dones=np.zeros(4, bool),
        action_masks=None,
        episode_returns=np.zeros(0, np.float32),
    )
    signal = GAILSignal(space, spaces.Discrete(2), expert, network_settings=SMALL, device="cpu")
    first_layer = signal.network.encoder.body[0]
    with torch.no_grad():  # the encoder reads "second" only
        first_layer.weight[:, :2] = 0.0
    policy = Transitions.from_numpy(
        {"first": np.zeros((4, 2), np.float32), "second": -np.ones((4, 2), np.float32)},
        None,
        np.zeros((4, 1), np.int64),
        dones=np.zeros(4),
    )
    penalty = signal.gradient_penalty(policy, signal.expert_batch(4))
    assert float(penalty.detach()) == pytest.approx((math.sqrt(1e-7) - 1) ** 2, rel=1e-5)
    with torch.no_grad():  # now it reads "first" too: the gradient is no longer zero
        first_layer.weight[:, :2] = 1.0
    assert float(signal.gradient_penalty(policy, signal.expert_batch(4)).detach()) != pytest.approx(
        (math.sqrt(1e-7) - 1) ** 2, rel=1e-5
    )


def test_vail_beta_steps_with_the_kl_term() -> None:
    signal = GAILSignal(
        VECTOR,
        spaces.Discrete(3),
        _expert(),
        network_settings=SMALL,
        use_vail=True,
        device="cpu",
    )
    network = signal.network
    with torch.no_grad():  # mu = 0 for every input, sigma = 2
        network.z_mu.weight.zero_()
        network.z_mu.bias.zero_()
        network.z_sigma.fill_(2.0)
    assert float(network.beta) == 0.0
    stats = signal.update(_policy_batch())
    # KL = -sum_dims(1 + ln sigma^2 - sigma^2) = 128 (3 - ln 4); beta = 0.0005 (KL - 0.5)
    kl = 128 * (3 - math.log(4))
    assert stats["Losses/GAIL KL Loss"] == pytest.approx(kl, rel=1e-5)
    assert stats["Policy/GAIL Beta"] == pytest.approx(0.0005 * (kl - 0.5), rel=1e-5)
    # beta never goes below 0: with sigma = 1 and mu = 0, KL = 0 and beta steps down.
    with torch.no_grad():
        network.z_sigma.fill_(1.0)
        network.z_mu.weight.zero_()
        network.z_mu.bias.zero_()
        network.beta.fill_(0.0001)
    stats = signal.update(_policy_batch())
    assert stats["Policy/GAIL Beta"] == 0.0


def test_expert_batches_are_drawn_with_replacement_and_only_they_normalize() -> None:
    settings = RewardNetworkSettings(hidden_units=4, num_layers=1, normalize=True)
    signal = GAILSignal(
        VECTOR, spaces.Discrete(3), _expert(n=3, value=2.0), network_settings=settings, device="cpu"
    )
    assert len(signal.expert_batch(10)) == 10  # more rows than the demonstration has
    signal.update(_policy_batch(n=10, value=-50.0))
    normalizer = signal.network.encoder.inputs[0].normalizer
    assert int(normalizer.normalization_steps) == 11
    np.testing.assert_allclose(normalizer.running_mean.numpy(), 2.0 * 10 / 11, rtol=1e-6)


def test_gail_with_actions_reads_actions_and_dones() -> None:
    signal = GAILSignal(
        VECTOR,
        spaces.Discrete(3),
        _expert(dones=True),
        network_settings=SMALL,
        use_actions=True,
        device="cpu",
    )
    assert signal.network.encoder.extra_input_size == 3 + 1
    batch = _policy_batch()
    with pytest.raises(ValueError, match="actions and dones"):
        signal.evaluate(Transitions(batch.observations, None, batch.actions, None))
    flipped = Transitions(batch.observations, None, batch.actions, torch.ones(len(batch)))
    assert not torch.allclose(signal.evaluate(batch), signal.evaluate(flipped))
    assert set(signal.update(batch)) >= {"Losses/GAIL Loss", "Policy/GAIL Grad Mag Loss"}


# -- expert transitions from .demo -----------------------------------------------------------


def test_demo_transitions_in_the_models_spaces_and_mismatches_named() -> None:
    expert = load_expert_transitions(
        DEMOS / "ExpertBasic.demo", spaces.Box(-1, 1, (20,)), spaces.Discrete(3)
    )
    assert len(expert) == 72 and expert.actions.shape == (72, 1)
    assert expert.dones.sum() == 10
    assert expert.mean_episode_return == pytest.approx(0.93, abs=1e-5)
    with pytest.raises(ValueError) as error:
        load_expert_transitions(
            DEMOS / "ExpertBasic.demo", spaces.Box(-1, 1, (8,)), spaces.Discrete(3)
        )
    message = str(error.value)
    assert "ExpertBasic.demo" in message and "(20,)" in message and "(8,)" in message
    with pytest.raises(ValueError) as error:
        load_expert_transitions(
            DEMOS / "ExpertBasic.demo", spaces.Box(-1, 1, (20,)), spaces.Discrete(4)
        )
    message = str(error.value)
    assert "discrete branches [3]" in message and "discrete branches [4]" in message
    continuous = load_expert_transitions(
        DEMOS / "Expert3DBall.demo", spaces.Box(-1, 1, (8,)), spaces.Box(-1, 1, (2,))
    )
    assert continuous.actions.dtype == np.float32 and continuous.actions.shape[1] == 2


def test_empty_folder_missing_and_truncated_demos_are_explained(tmp_path: Path) -> None:
    space, actions = spaces.Box(-1, 1, (20,)), spaces.Discrete(3)
    with pytest.raises(UnityDemoException, match=r"no \.demo"):
        load_expert_transitions(tmp_path, space, actions)
    with pytest.raises(UnityDemoException, match=r"missing\.demo"):
        load_expert_transitions(tmp_path / "missing.demo", space, actions)
    data = (DEMOS / "ExpertBasic.demo").read_bytes()
    (tmp_path / "cut.demo").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnityDemoException, match=r"cut\.demo"):
        load_expert_transitions(tmp_path / "cut.demo", space, actions)


# -- behavioral cloning ----------------------------------------------------------------------


class _Env:
    """A one-step environment factory for policies (only the spaces matter here)."""

    @staticmethod
    def make(observation_space: spaces.Space, action_space: spaces.Space) -> DummyVecEnv:
        import gymnasium as gym

        class Env(gym.Env):
            def __init__(self) -> None:
                self.observation_space, self.action_space = observation_space, action_space

            def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
                return self.observation_space.sample(), {}

            def step(self, action: Any) -> Any:
                return self.observation_space.sample(), 0.0, True, False, {}

            def action_masks(self) -> np.ndarray:
                return np.ones(int(getattr(self.action_space, "n", 1)), bool)

        return DummyVecEnv([Env])


def test_bc_continuous_loss_is_the_mse_of_a_sample_to_the_expert_action() -> None:
    env = _Env.make(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32))
    model = PPO("MlpPolicy", env, seed=0)
    with torch.no_grad():
        model.policy.log_std.fill_(-30.0)  # the sample is the mean
    expert = ExpertTransitions(
        observations=np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32),
        actions=np.full((5, 2), 0.5, np.float32),
        dones=np.zeros(5, bool),
        action_masks=None,
        episode_returns=np.zeros(0, np.float32),
    )
    cloning = BehavioralCloning(model.policy, expert, 1e-3)
    obs = torch.as_tensor(expert.observations)
    mean = model.policy.get_distribution(obs).distribution.mean
    expected = torch.mean((mean - 0.5) ** 2)
    loss = cloning.loss(obs, torch.as_tensor(expert.actions), None)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_bc_discrete_loss_is_the_cross_entropy_with_masks_applied() -> None:
    env = _Env.make(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(3))
    model = MaskablePPO("MlpPolicy", env, seed=0)
    expert = _expert(n=4)  # action 2 everywhere
    obs = torch.as_tensor(expert.observations)
    masks = torch.tensor([[True, False, True]] * 4)
    cloning = BehavioralCloning(model.policy, expert, 1e-3)
    logits = model.policy.action_net(model.policy.mlp_extractor.forward_actor(obs))
    masked = logits.masked_fill(~masks, -1e8)
    expected = -torch.log_softmax(masked, dim=1)[:, 2].mean()
    loss = cloning.loss(obs, torch.as_tensor(expert.actions), masks)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    unmasked = cloning.loss(obs, torch.as_tensor(expert.actions), None)
    assert unmasked.item() > loss.item()


def test_bc_learning_rate_decays_linearly_then_cloning_stops() -> None:
    env = _Env.make(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(3))
    model = PPO("MlpPolicy", env, seed=0)
    cloning = BehavioralCloning(model.policy, _expert(), 1e-3, strength=0.5, steps=100)
    assert cloning.learning_rate_at(0) == pytest.approx(5e-4)
    assert cloning.learning_rate_at(50) == pytest.approx((5e-4 - 1e-10) * 0.5 + 1e-10)
    assert cloning.learning_rate_at(500) == pytest.approx(1e-10)
    first = cloning.update(step=50)["Losses/Pretraining Loss"]
    assert first > 0 and cloning.optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-4, rel=1e-6)
    cloning.update(step=100)  # runs at 2.5e-4, then the rate reaches its floor
    weights = [p.detach().clone() for p in model.policy.parameters()]
    assert not cloning.active
    assert cloning.update(step=101) == {"Losses/Pretraining Loss": 0.0}
    for before, after in zip(weights, model.policy.parameters(), strict=True):
        torch.testing.assert_close(before, after)
    # A run resumed past ``steps`` starts switched off (ML-Agents would clone once more).
    resumed = BehavioralCloning(model.policy, _expert(), 1e-3, steps=100)
    resumed.resume_at(150)
    assert not resumed.active


def test_bc_touches_the_actor_not_the_value_function() -> None:
    env = _Env.make(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(3))
    model = PPO("MlpPolicy", env, seed=0)
    value = [p.detach().clone() for p in model.policy.value_net.parameters()]
    action = model.policy.action_net.weight.detach().clone()
    pretrain(model, _expert(), updates=2)
    for before, after in zip(value, model.policy.value_net.parameters(), strict=True):
        torch.testing.assert_close(before, after)
    assert not torch.allclose(action, model.policy.action_net.weight)


def test_bc_callback_runs_after_every_ppo_update_and_every_sac_gradient_step() -> None:
    env = _Env.make(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(3))
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=8, n_epochs=2, seed=0)
    cloning = BehavioralCloning(model.policy, _expert(), 1e-3, batch_size=4, num_epoch=1)
    stats: list[tuple[str, float]] = []
    model.learn(
        48, callback=BehavioralCloningCallback(cloning, stats=lambda k, v: stats.append((k, v)))
    )
    assert cloning.n_updates == 3  # one per PPO update (3 rollouts of 16 steps)
    assert [k for k, _ in stats] == ["Losses/Pretraining Loss"] * 3
    box = _Env.make(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (1,), np.float32))
    sac = SAC("MlpPolicy", box, learning_starts=10, gradient_steps=2, train_freq=4, seed=0)
    expert = ExpertTransitions(
        observations=np.zeros((8, 3), np.float32),
        actions=np.full((8, 1), 0.3, np.float32),
        dones=np.zeros(8, bool),
        action_masks=None,
        episode_returns=np.zeros(0, np.float32),
    )
    sac_cloning = BehavioralCloning(sac.policy, expert, 1e-3, batch_size=4, num_epoch=1)
    sac.learn(30, callback=BehavioralCloningCallback(sac_cloning, stats=lambda k, v: None))
    assert sac_cloning.n_updates == sac._n_updates > 0


# -- learning from ExpertBasic.demo on built-in Basic ----------------------------------------


@pytest.mark.protocol
def test_bc_pretraining_alone_reaches_the_demonstrations_return() -> None:
    from unity_gym.sb3_vec_env import UnityVecEnv

    torch.manual_seed(0)
    env = VecMonitor(UnityVecEnv("builtin:Basic", num_areas=1, seed=0))
    try:
        model = PPO("MlpPolicy", env, seed=0)
        expert = load_expert_transitions(
            DEMOS / "ExpertBasic.demo", model.observation_space, model.action_space
        )
        before, _ = evaluate_policy(model, env, n_eval_episodes=5, deterministic=True)
        pretrain(model, expert, updates=20)
        after, _ = evaluate_policy(model, env, n_eval_episodes=5, deterministic=True)
    finally:
        env.close()
    assert before < 0.5
    assert after >= 0.9 * expert.mean_episode_return


def test_demonstrations_fill_sac_and_discrete_sac_replay_buffers() -> None:
    from sb3_ext.algorithms import DiscreteSAC
    from sb3_ext.imitation import add_demonstrations

    box = _Env.make(spaces.Box(-np.inf, np.inf, (8,), np.float32), spaces.Box(-1, 1, (2,)))
    sac = SAC("MlpPolicy", box, buffer_size=1000, seed=0)
    expert = load_expert_transitions(
        DEMOS / "Expert3DBall.demo", sac.observation_space, sac.action_space
    )
    assert add_demonstrations(sac.replay_buffer, expert) == len(expert)
    buffer = sac.replay_buffer
    assert buffer.size() == len(expert)
    np.testing.assert_array_equal(buffer.observations[: len(expert), 0], expert.observations)
    np.testing.assert_array_equal(
        buffer.next_observations[: len(expert), 0], expert.next_observations
    )
    np.testing.assert_array_equal(buffer.actions[: len(expert), 0], expert.actions)
    np.testing.assert_allclose(buffer.rewards[: len(expert), 0], expert.rewards)
    np.testing.assert_array_equal(buffer.dones[: len(expert), 0], expert.dones)
    # DiscreteSAC keeps the recorded action masks beside each transition.
    grid = spaces.Box(0, 255, (3, 64, 84), np.uint8)
    dsac = DiscreteSAC("CnnPolicy", _Env.make(grid, spaces.Discrete(5)), buffer_size=100, seed=0)
    expert = load_expert_transitions(
        DEMOS / "ExpertGridWorld.demo", dsac.observation_space, dsac.action_space
    )
    assert expert.action_masks is not None and not expert.action_masks.all()
    assert add_demonstrations(dsac.replay_buffer, expert) == len(expert)
    stored = dsac.replay_buffer.action_masks[: len(expert), 0]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(stored, expert.action_masks)


def test_gail_with_actions_trains_sac_on_replay_samples() -> None:
    from sb3_ext.reward_signals import OffPolicyRewardSignalsCallback, RewardSignalReplayBuffer

    box = _Env.make(spaces.Box(-np.inf, np.inf, (8,), np.float32), spaces.Box(-1, 1, (2,)))
    sac = SAC(
        "MlpPolicy",
        box,
        replay_buffer_class=RewardSignalReplayBuffer,
        learning_starts=20,
        batch_size=16,
        seed=0,
    )
    expert = load_expert_transitions(
        DEMOS / "Expert3DBall.demo", sac.observation_space, sac.action_space
    )
    gail = GAILSignal(
        sac.observation_space,
        sac.action_space,
        expert,
        use_actions=True,
        network_settings=SMALL,
        device="cpu",
    )
    stats: list[tuple[str, float]] = []
    callback = OffPolicyRewardSignalsCallback([gail], stats=lambda k, v: stats.append((k, v)))
    sac.learn(60, callback=callback)
    keys = {k for k, _ in stats}
    assert {"Policy/Gail Reward", "Losses/GAIL Loss", "Policy/GAIL Expert Estimate"} <= keys


@pytest.mark.parametrize("algo", ["RecurrentPPO", "SAC", "DiscreteSAC"])
def test_bc_pretraining_fits_every_policy_family(algo: str) -> None:
    from sb3_contrib import RecurrentPPO

    from sb3_ext.algorithms import DiscreteSAC

    torch.manual_seed(0)
    if algo == "SAC":
        env = _Env.make(spaces.Box(-np.inf, np.inf, (8,), np.float32), spaces.Box(-1, 1, (2,)))
        model: Any = SAC("MlpPolicy", env, seed=0)
        demo = DEMOS / "Expert3DBall.demo"
    else:
        env = _Env.make(spaces.Box(-np.inf, np.inf, (20,), np.float32), spaces.Discrete(3))
        cls: Any = RecurrentPPO if algo == "RecurrentPPO" else DiscreteSAC
        model = cls("MlpLstmPolicy" if algo == "RecurrentPPO" else "MlpPolicy", env, seed=0)
        demo = DEMOS / "ExpertBasic.demo"
    losses = pretrain(model, demo, updates=15, learning_rate=1e-3)  # a path is read for the model
    assert losses[-1] < 0.7 * losses[0]
