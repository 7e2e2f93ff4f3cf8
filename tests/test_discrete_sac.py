"""DiscreteSAC: ML-Agents' discrete SAC on SB3 (masks, per-branch losses, save/load)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_ext.algorithms import DiscreteSAC, MaskedReplayBuffer
from sb3_ext.algorithms.discrete_sac_losses import (
    entropy_coef_loss,
    masked_branch_policy,
    policy_loss,
    q_target,
    taken_action_q,
    value_target,
)
from sb3_ext.algorithms.masked_replay_buffer import MaskedReplayBufferSamples

TINY = {"net_arch": [16]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class MaskedEnv(gym.Env):
    """Random observations and rewards, random action masks (at least one action allowed per
    branch); counts actions that were masked when taken."""

    def __init__(self, branches: tuple[int, ...] = (3, 4, 2), obs_space: Any = None) -> None:
        self.branches = branches
        self.action_space = (
            spaces.Discrete(branches[0]) if len(branches) == 1 else spaces.MultiDiscrete(branches)
        )
        self.observation_space = obs_space or spaces.Box(-1.0, 1.0, (5,), np.float32)
        self.rng = np.random.default_rng(0)
        self.mask = self._new_mask()
        self.masks_seen: list[np.ndarray] = []
        self.violations = 0
        self.steps = 0

    def _new_mask(self) -> np.ndarray:
        parts = []
        for n in self.branches:
            allowed = self.rng.random(n) < 0.5
            allowed[self.rng.integers(n)] = True
            parts.append(allowed)
        return np.concatenate(parts)

    def action_masks(self) -> np.ndarray:
        return self.mask

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        chosen = np.atleast_1d(np.asarray(action))
        offsets = np.cumsum((0, *self.branches[:-1]))
        self.violations += int((~self.mask[offsets + chosen]).sum())
        self.masks_seen.append(self.mask.copy())
        self.steps += 1
        self.mask = self._new_mask()
        done = self.steps % 20 == 0
        return self.observation_space.sample(), float(self.rng.normal()), done, False, {}


def make(env: gym.Env, policy: str = "MlpPolicy", **kwargs: Any) -> DiscreteSAC:
    torch.manual_seed(0)
    kwargs.setdefault("policy_kwargs", dict(TINY))
    kwargs.setdefault("learning_starts", 0)
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("buffer_size", 2000)
    return DiscreteSAC(policy, env, device="cpu", seed=0, **kwargs)


# -- acting under masks ------------------------------------------------------------------


def test_masked_actions_are_never_taken_before_or_after_learning_starts() -> None:
    env = MaskedEnv()
    model = make(env, learning_starts=500, train_freq=4)
    model.learn(1000)
    assert env.steps == 1000 and env.violations == 0
    # Each transition keeps the mask its action was chosen under.
    buffer = model.replay_buffer
    assert isinstance(buffer, MaskedReplayBuffer)
    np.testing.assert_array_equal(buffer.action_masks[:1000, 0], np.stack(env.masks_seen))
    assert model.num_timesteps == 1000 and model._n_updates > 0


@pytest.mark.parametrize("deterministic", [False, True])
def test_predict_never_returns_a_masked_action(deterministic: bool) -> None:
    branches = (3, 4, 2)
    env = MaskedEnv(branches)
    model = make(env)
    n = 1000
    masks = np.stack([env._new_mask() for _ in range(n)])
    obs = np.random.default_rng(1).uniform(-1, 1, (n, 5)).astype(np.float32)
    actions, _ = model.predict(obs, deterministic=deterministic, action_masks=masks)
    assert actions.shape == (n, 3)
    offsets = np.array([0, 3, 7])
    assert masks[np.arange(n)[:, None], offsets + actions].all()
    # Without masks the near-uniform initial policy does pick those actions.
    free, _ = model.predict(obs, deterministic=deterministic)
    assert not masks[np.arange(n)[:, None], offsets + free].all()


# -- loss math against hand-computed values ----------------------------------------------

BRANCHES = (2, 3)
LOGITS = [[0.5, -0.2, 1.0, 0.3, -0.7]]
MASKS = [[1.0, 1.0, 1.0, 0.0, 1.0]]  # action 1 of branch 1 is masked
Q1 = [[0.2, 0.6, 0.1, 1000.0, 0.4]]  # ... and has a huge Q value
Q2 = [[0.3, 0.5, 0.2, 1000.0, 0.1]]
ALPHAS = [0.5, 0.2]
TARGETS = [0.2 * math.log(2), 0.2 * math.log(3)]


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def _hand_policy(masks: list[float]) -> tuple[list[list[float]], list[list[float]]]:
    """Per branch: ML-Agents' weights p = probs + 1e-7 and log p = log(probs + 1e-7)."""
    weights, logs = [], []
    start = 0
    for n in BRANCHES:
        logits = [
            LOGITS[0][start + a] * masks[start + a] - 1e8 * (1 - masks[start + a]) for a in range(n)
        ]
        probs = _softmax(logits)
        logs.append([math.log(p + 1e-7) for p in probs])
        weights.append([math.exp(lp) for lp in logs[-1]])
        start += n
    return weights, logs


def _branch_q(q: list[float]) -> list[list[float]]:
    return [q[:2], q[2:]]


def _hand_value_target(masks: list[float], q1: list[float], q2: list[float]) -> float:
    weights, logs = _hand_policy(masks)

    def expected(q: list[float]) -> float:
        per_branch = [
            sum(p * v for p, v in zip(w, qb, strict=True))
            for w, qb in zip(weights, _branch_q(q), strict=True)
        ]
        return sum(per_branch) / len(per_branch)

    entropies = [
        -sum(p * lp for p, lp in zip(w, lg, strict=True))
        for w, lg in zip(weights, logs, strict=True)
    ]
    bonus = sum(a * h for a, h in zip(ALPHAS, entropies, strict=True)) / len(BRANCHES)
    return min(expected(q1), expected(q2)) + bonus


def _tensor(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _policy(masks: list[list[float]]):
    return masked_branch_policy(_tensor(LOGITS), _tensor(masks), BRANCHES)


def test_value_target_matches_hand_computation_and_ignores_masked_q() -> None:
    alphas = torch.tensor(ALPHAS)
    got = value_target(_tensor(Q1), _tensor(Q2), _policy(MASKS), alphas)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(_hand_value_target(MASKS[0], Q1[0], Q2[0]), abs=1e-5)
    # The masked action's Q of 1000 enters only with ML-Agents' 1e-7 weight: setting it to 0
    # moves the target by 1e-7 * 1000 / 2 branches, not by its policy share.
    q1_zero, q2_zero = [*Q1[0][:3], 0.0, Q1[0][4]], [*Q2[0][:3], 0.0, Q2[0][4]]
    without = value_target(_tensor([q1_zero]), _tensor([q2_zero]), _policy(MASKS), alphas)
    assert abs(got.item() - without.item()) < 1e-4
    # Unmasked, the same action would dominate the target.
    unmasked = value_target(_tensor(Q1), _tensor(Q2), _policy([[1.0] * 5]), alphas)
    assert unmasked.item() > 100


def test_q_target_and_taken_action_q_match_hand_computation() -> None:
    rewards, dones = torch.tensor([0.5, -1.0]), torch.tensor([0.0, 1.0])
    next_values = torch.tensor([2.0, 7.0])
    expected = [0.5 + 0.9 * 2.0, -1.0]
    assert q_target(rewards, dones, next_values, 0.9).tolist() == pytest.approx(expected)
    q = _tensor([Q1[0], Q2[0]])
    actions = torch.tensor([[1, 2], [0, 0]])
    # Mean over branches of the taken action's column.
    expected = [(Q1[0][1] + Q1[0][4]) / 2, (Q2[0][0] + Q2[0][2]) / 2]
    assert taken_action_q(q, actions, BRANCHES).tolist() == pytest.approx(expected)


def test_policy_loss_uses_q1_summed_over_branches() -> None:
    weights, logs = _hand_policy(MASKS[0])
    hand = 0.0
    for branch, (w, lg, qb) in enumerate(zip(weights, logs, _branch_q(Q1[0]), strict=True)):
        hand += sum(p * (ALPHAS[branch] * lp - v) for p, lp, v in zip(w, lg, qb, strict=True))
    got = policy_loss(_tensor(Q1), _policy(MASKS), torch.tensor(ALPHAS))
    assert got.item() == pytest.approx(hand, abs=1e-5)


def test_entropy_coefficient_loss_matches_hand_computation() -> None:
    weights, logs = _hand_policy(MASKS[0])
    entropies = [
        -sum(p * lp for p, lp in zip(w, lg, strict=True))
        for w, lg in zip(weights, logs, strict=True)
    ]
    log_alphas = torch.tensor([math.log(a) for a in ALPHAS], requires_grad=True)
    loss = entropy_coef_loss(log_alphas, _policy(MASKS), torch.tensor(TARGETS))
    hand = sum(
        la * (h - t) for la, h, t in zip(log_alphas.tolist(), entropies, TARGETS, strict=True)
    )
    assert loss.item() == pytest.approx(hand / 2, abs=1e-5)
    loss.backward()
    # Branch 0 (two allowed actions near uniform) is above its target: alpha_0 goes down.
    assert log_alphas.grad is not None
    assert log_alphas.grad.tolist() == pytest.approx(
        [(h - t) / 2 for h, t in zip(entropies, TARGETS, strict=True)], abs=1e-6
    )
    assert log_alphas.grad[0] > 0


def test_the_update_wires_networks_into_the_losses() -> None:
    """DiscreteSAC's losses on a hand-built batch equal the formulas applied to its networks'
    own outputs: backup from the target V, policy loss from Q1 only, current masks."""
    env = MaskedEnv((2, 3))
    model = make(env, ent_coef="auto_0.3", gamma=0.8)
    rng = np.random.default_rng(3)
    obs = torch.as_tensor(rng.uniform(-1, 1, (4, 5)), dtype=torch.float32)
    next_obs = torch.as_tensor(rng.uniform(-1, 1, (4, 5)), dtype=torch.float32)
    masks = torch.tensor([[1, 1, 1, 0, 1], [0, 1, 1, 1, 0], [1, 1, 0, 0, 1], [1, 0, 1, 1, 1.0]])
    actions = torch.tensor([[0, 2], [1, 0], [1, 2], [0, 1]])
    rewards, dones = (
        torch.tensor([[1.0], [0.0], [-0.5], [0.2]]),
        torch.tensor([[0.0], [1], [0], [0]]),
    )
    # Make the target V differ from V, so that using the wrong one shows.
    with torch.no_grad():
        for p in model.value_target.parameters():
            p.add_(0.3)
    data = MaskedReplayBufferSamples(obs, actions, next_obs, dones, rewards, masks)
    losses = model._losses(data)
    with torch.no_grad():
        actor = model.actor
        logits = actor.action_net(actor.latent_pi(obs)).numpy().astype(np.float64)
        q1, q2 = (net(obs).numpy().astype(np.float64) for net in model.critic.q_networks)
        v = model.critic.value(obs).numpy()[:, 0].astype(np.float64)
        v_next = model.value_target(next_obs).numpy()[:, 0].astype(np.float64)
    m = masks.numpy().astype(np.float64)
    alpha = np.array([0.3, 0.3])
    logits = logits * m - 1e8 * (1 - m)
    splits = [slice(0, 2), slice(2, 5)]
    probs = np.concatenate(
        [np.exp(logits[:, s] - logits[:, s].max(1, keepdims=True)) for s in splits], axis=1
    )
    probs = np.concatenate([probs[:, s] / probs[:, s].sum(1, keepdims=True) for s in splits], 1)
    logp = np.log(probs + 1e-7)
    w = np.exp(logp)
    ent = np.stack([-(w * logp)[:, s].sum(1) for s in splits], 1)
    y = rewards.numpy()[:, 0] + 0.8 * (1 - dones.numpy()[:, 0]) * v_next
    taken = lambda q: (q[np.arange(4), actions[:, 0]] + q[np.arange(4), 2 + actions[:, 1]]) / 2  # noqa: E731
    expected_q = lambda q: np.stack([(w * q)[:, s].sum(1) for s in splits], 1).mean(1)  # noqa: E731
    v_target = np.minimum(expected_q(q1), expected_q(q2)) + (alpha * ent).mean(1)
    pi = sum(((w * (a * logp - q1))[:, s]).sum(1) for a, s in zip(alpha, splits, strict=True))
    targets = np.array([0.2 * math.log(2), 0.2 * math.log(3)])
    expected = {
        "q1": 0.5 * np.mean((taken(q1) - y) ** 2),
        "q2": 0.5 * np.mean((taken(q2) - y) ** 2),
        "value": 0.5 * np.mean((v - v_target) ** 2),
        "actor": np.mean(pi),
        "ent_coef": np.mean((np.log(alpha) * (ent - targets)).mean(1)),
    }
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-4, abs=1e-5), key


# -- entropy targets and settings ------------------------------------------------------------


def test_target_entropy_is_per_branch_and_can_be_overridden() -> None:
    env = MaskedEnv((3, 5))
    model = make(env)
    assert model.target_entropies.tolist() == pytest.approx([0.2197, 0.3219], abs=1e-4)
    assert model.entropy_coefficients.tolist() == pytest.approx([1.0, 1.0])  # "auto" starts at 1
    assert make(env, target_entropy=0.1).target_entropies.tolist() == pytest.approx([0.1, 0.1])
    custom = make(env, target_entropy=[0.05, 0.4], ent_coef="auto_0.25")
    assert custom.target_entropies.tolist() == pytest.approx([0.05, 0.4])
    assert custom.entropy_coefficients.tolist() == pytest.approx([0.25, 0.25])
    with pytest.raises(ValueError, match=r"target_entropy=\[0.1\].*2 branches \[3, 5\]"):
        make(env, target_entropy=[0.1])
    with pytest.raises(ValueError, match=r"ent_coef='auto_x'.*auto_0\.5"):
        make(env, ent_coef="auto_x")
    with pytest.raises(ValueError, match=r"replay_buffer_class=ReplayBuffer.*MaskedReplayBuffer"):
        make(env, replay_buffer_class=ReplayBuffer)


def test_fixed_entropy_coefficient_stays_and_auto_ones_move() -> None:
    fixed = make(MaskedEnv((3, 5)), ent_coef=0.05)
    fixed.learn(120)
    assert fixed.entropy_coefficients.tolist() == pytest.approx([0.05, 0.05])
    tuned = make(MaskedEnv((3, 5)), ent_coef="auto_0.5")
    tuned.learn(120)
    after = tuned.entropy_coefficients.tolist()
    assert all(abs(a - 0.5) > 1e-3 for a in after) and after[0] != after[1]


# -- shapes, observation kinds ---------------------------------------------------------------


def test_single_and_multi_branch_shapes() -> None:
    single = make(MaskedEnv((4,)))
    obs = np.zeros((6, 5), np.float32)
    assert single.predict(obs)[0].shape == (6,)
    assert single.predict(obs[0])[0].shape == ()
    assert single.critic.q_values(torch.zeros(2, 5))[0].shape == (2, 4)
    multi = make(MaskedEnv((3, 4, 2)))
    assert multi.predict(obs)[0].shape == (6, 3)
    assert multi.predict(obs[0], action_masks=np.ones(9, bool))[0].shape == (3,)
    assert [q.shape for q in multi.critic.q_values(torch.zeros(2, 5))] == [(2, 9), (2, 9)]
    assert multi.critic.value(torch.zeros(2, 5)).shape == (2, 1)
    multi.learn(40)
    assert multi.replay_buffer is not None and multi.replay_buffer.actions.shape[-1] == 3


def test_dict_and_visual_observations_train() -> None:
    image = spaces.Box(0, 255, (3, 36, 36), np.uint8)
    dict_space = spaces.Dict({"camera": image, "state": spaces.Box(-1, 1, (3,), np.float32)})
    cnn = {"features_extractor_kwargs": {"features_dim": 8}, "net_arch": [8]}
    for policy, space, kwargs in (
        ("CnnPolicy", image, cnn),
        ("MultiInputPolicy", dict_space, {"net_arch": [8]}),
    ):
        env = MaskedEnv((3, 2), obs_space=space)
        model = make(env, policy, policy_kwargs=kwargs, batch_size=8)
        model.learn(48)
        assert env.violations == 0 and model._n_updates > 0
        assert model.replay_buffer is not None
        assert model.replay_buffer.action_masks.shape[-1] == 5
        assert model.predict(space.sample(), deterministic=True)[0].shape == (2,)


# -- save / load -----------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    env = MaskedEnv((3, 5))
    model = make(env, ent_coef="auto_0.5", learning_rate=1e-3)
    model.learn(150)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")

    loaded = DiscreteSAC.load(tmp_path / "model.zip", env=MaskedEnv((3, 5)), device="cpu")
    obs = np.random.default_rng(4).uniform(-1, 1, (20, 5)).astype(np.float32)
    masks = np.stack([env._new_mask() for _ in range(20)])
    for kwargs in ({}, {"action_masks": masks}):
        np.testing.assert_array_equal(
            loaded.predict(obs, deterministic=True, **kwargs)[0],
            model.predict(obs, deterministic=True, **kwargs)[0],
        )
    assert loaded.entropy_coefficients.tolist() == pytest.approx(
        model.entropy_coefficients.tolist()
    )
    assert loaded.entropy_coefficients[0].item() != pytest.approx(0.5)  # trained, then restored
    for name in ("actor.optimizer", "critic.optimizer", "ent_coef_optimizer"):
        ours = _optimizer_state(model, name)
        theirs = _optimizer_state(loaded, name)
        assert ours.keys() == theirs.keys() and ours, name
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), (name, key)
    for mine, theirs in zip(
        model.value_target.parameters(), loaded.value_target.parameters(), strict=True
    ):
        assert torch.equal(mine, theirs)

    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert isinstance(loaded.replay_buffer, MaskedReplayBuffer)
    assert model.replay_buffer is not None
    assert loaded.replay_buffer.size() == model.replay_buffer.size() == 150
    np.testing.assert_array_equal(
        loaded.replay_buffer.action_masks, model.replay_buffer.action_masks
    )
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.num_timesteps == 170


def _optimizer_state(model: DiscreteSAC, name: str) -> dict[str, torch.Tensor]:
    optimizer = model.ent_coef_optimizer if name == "ent_coef_optimizer" else None
    if optimizer is None:
        owner = model.actor if name.startswith("actor") else model.critic
        optimizer = owner.optimizer
    state = optimizer.state_dict()["state"]
    return {f"{i}.{k}": v for i, s in state.items() for k, v in s.items() if k != "step"}
