"""Reward signals inside SB3: PPO-family callback, SAC replay buffers, stats, learning."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from sb3_ext.algorithms import DiscreteSAC, MaskedReplayBuffer
from sb3_ext.algorithms.masked_replay_buffer import MaskedReplayBufferSamples
from sb3_ext.reward_signals import (
    CuriositySignal,
    OffPolicyRewardSignalsCallback,
    RewardNetworkSettings,
    RewardSignal,
    RewardSignalMaskedReplayBuffer,
    RewardSignalReplayBuffer,
    RewardSignalsCallback,
    RNDSignal,
    SignalValueHeads,
    Transitions,
    reward_signal_buffer_class,
)

SMALL = RewardNetworkSettings(hidden_units=16, num_layers=1)


class ChainEnv(gym.Env):
    """A 1-D chain: start at 0, step left/right, reward 1 and the end at the last cell
    (observed as a one-hot cell, or all zeros when ``blind``)."""

    def __init__(
        self, length: int = 4, max_steps: int = 6, dict_obs: bool = False, blind: bool = False
    ) -> None:
        self.length, self.max_steps, self.dict_obs = length, max_steps, dict_obs
        self.blind = blind
        onehot = spaces.Box(0.0, 1.0, (length,), np.float32)
        self.observation_space: spaces.Space = (
            spaces.Dict({"cell": onehot, "t": spaces.Box(0.0, 1.0, (1,), np.float32)})
            if dict_obs
            else onehot
        )
        self.action_space = spaces.Discrete(2)
        self.pos = self.t = 0

    def _obs(self) -> Any:
        onehot = np.eye(self.length, dtype=np.float32)[self.pos]
        if self.blind:
            onehot[:] = 0.0
        if self.dict_obs:
            return {"cell": onehot, "t": np.array([self.t / self.max_steps], np.float32)}
        return onehot

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.pos = self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        self.pos = int(np.clip(self.pos + (1 if int(action) == 1 else -1), 0, self.length - 1))
        terminated = self.pos == self.length - 1
        truncated = not terminated and self.t >= self.max_steps
        return self._obs(), float(terminated), terminated, truncated, {}

    def action_masks(self) -> np.ndarray:
        return np.ones(2, dtype=bool)


# ML-Agents' TensorBoard names with curiosity and RND (episode sums, then update losses).
SIGNAL_STATS = {
    "Policy/Extrinsic Reward",
    "Policy/Curiosity Reward",
    "Policy/Rnd Reward",
    "Losses/Curiosity Forward Loss",
    "Losses/Curiosity Inverse Loss",
    "Losses/RND Loss",
}


def _venv(n_envs: int = 2, **kwargs: Any) -> DummyVecEnv:
    return DummyVecEnv([lambda: ChainEnv(**kwargs) for _ in range(n_envs)])


def _flat(obs: Any) -> np.ndarray:
    if isinstance(obs, dict):
        return np.concatenate(
            [np.asarray(obs[k]).reshape(len(obs["t"]), -1) for k in sorted(obs)], 1
        )
    return np.asarray(obs)


class StubSignal(RewardSignal):
    """A known function of (s, a, s') that counts its updates."""

    name: ClassVar[str] = "Stub"

    def __init__(self, strength: float = 0.5, gamma: float = 0.99) -> None:
        super().__init__(strength, gamma, "cpu")
        self.dummy = nn.Linear(1, 1)
        self.optimizer = torch.optim.SGD(self.dummy.parameters(), lr=0.0)
        self.updates = 0
        self.batch_sizes: list[int] = []

    def modules(self) -> dict[str, nn.Module]:
        return {"dummy": self.dummy}

    @staticmethod
    def reward(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        weights = np.arange(1, obs.shape[1] + 1)
        return next_obs @ weights * 10 + obs @ weights + 100 * actions.reshape(-1)

    def evaluate(self, batch: Transitions) -> torch.Tensor:
        assert batch.next_observations is not None and batch.actions is not None

        def flat(o: Any) -> np.ndarray:
            return _flat({k: v.numpy() for k, v in o.items()} if isinstance(o, dict) else o.numpy())

        r = self.reward(
            flat(batch.observations), batch.actions.numpy(), flat(batch.next_observations)
        )
        return torch.as_tensor(r, dtype=torch.float32)

    def update(self, batch: Transitions) -> dict[str, float]:
        self.updates += 1
        self.batch_sizes.append(len(batch))
        return {"Losses/Stub Loss": float(self.updates)}


class Probe(BaseCallback):
    """Records the true transitions each step, and the rollout buffer at rollout end."""

    def __init__(self, at_end: Any = None) -> None:
        super().__init__()
        self.at_end = at_end
        self.obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.next_obs: list[np.ndarray] = []
        self.last_dones: np.ndarray | None = None
        self.dones: list[np.ndarray] = []
        self.truncated: list[np.ndarray] = []
        self.buffer: dict[str, np.ndarray] = {}

    def _on_step(self) -> bool:
        dones, infos = self.locals["dones"], self.locals["infos"]
        next_obs = _flat(self.locals["new_obs"]).copy()
        for i in np.flatnonzero(dones):
            terminal = infos[i]["terminal_observation"]
            if isinstance(terminal, dict):
                terminal = _flat({k: np.asarray(v)[None] for k, v in terminal.items()})[0]
            next_obs[i] = terminal
        self.obs.append(_flat(self.model._last_obs).copy())
        self.actions.append(np.asarray(self.locals["actions"]).reshape(len(dones)))
        self.next_obs.append(next_obs)
        self.last_dones = np.asarray(dones, dtype=np.float32)
        self.dones.append(np.asarray(dones, dtype=bool))
        self.truncated.append(
            np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos])
        )
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        self.buffer = {
            name: np.array(getattr(buffer, name))
            for name in ("rewards", "advantages", "returns", "values", "episode_starts")
        }
        if self.at_end is not None:
            self.at_end()


def _signal_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    dones: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
    ignore_done: bool,
) -> np.ndarray:
    """ML-Agents' per-signal GAE written out: bootstrap from V(s') unless the episode
    terminated and the signal does not ignore dones; the trace stops at every episode end."""
    advantages = np.zeros_like(rewards)
    for env in range(rewards.shape[1]):
        running = 0.0
        for t in reversed(range(len(rewards))):
            terminal = dones[t, env] and not truncated[t, env]
            bootstrap = 0.0 if terminal and not ignore_done else next_values[t, env]
            delta = rewards[t, env] + gamma * bootstrap - values[t, env]
            running = delta + (0.0 if dones[t, env] else gamma * lam * running)
            advantages[t, env] = running
    return advantages


class CutStubSignal(StubSignal):
    """The stub as a signal whose value stops at terminal states (like extrinsic or GAIL)."""

    name: ClassVar[str] = "CutStub"
    ignore_done: ClassVar[bool] = False


ALGORITHMS = {"PPO": PPO, "RecurrentPPO": RecurrentPPO, "MaskablePPO": MaskablePPO}


@pytest.mark.parametrize(
    ("algo", "dict_obs", "ignore_done"),
    [
        ("PPO", False, True),
        ("PPO", True, True),
        ("RecurrentPPO", False, True),
        ("MaskablePPO", False, False),
    ],
)
def test_on_policy_rollout_per_signal_advantages_and_update_count(
    algo: str, dict_obs: bool, ignore_done: bool
) -> None:
    policy = (
        "MultiInputPolicy"
        if dict_obs
        else ("MlpLstmPolicy" if algo == "RecurrentPPO" else "MlpPolicy")
    )
    kwargs: dict[str, Any] = {
        "n_steps": 16,
        "batch_size": 8,
        "n_epochs": 3,
        "gamma": 0.9,
        "gae_lambda": 0.8,
    }
    if algo == "RecurrentPPO":
        kwargs["policy_kwargs"] = {"lstm_hidden_size": 8, "net_arch": []}
    model = ALGORITHMS[algo](
        policy, _venv(length=3, max_steps=5, dict_obs=dict_obs), seed=0, **kwargs
    )
    stub = StubSignal(0.5, gamma=0.7) if ignore_done else CutStubSignal(0.5, gamma=0.7)
    # Learning rate 0: the heads' weights stay as they were when the rollout was evaluated.
    heads = SignalValueHeads(
        model.observation_space, [stub.name], SMALL, learning_rate=0.0, device="cpu"
    )
    before, after = Probe(), Probe()
    signals = RewardSignalsCallback([stub], stats=lambda k, v: None, value_heads=heads)
    model.learn(32, callback=CallbackList([before, signals, after]))

    obs, actions, next_obs = (np.stack(x) for x in (before.obs, before.actions, before.next_obs))
    dones, truncated = np.stack(before.dones), np.stack(before.truncated)
    assert dones.any() and (dones & ~truncated).any()
    expected = StubSignal.reward(obs.reshape(32, -1), actions.reshape(32), next_obs.reshape(32, -1))
    expected = expected.reshape(16, 2)
    np.testing.assert_allclose(signals.last_rewards[stub.name], expected, rtol=1e-6)
    values = signals.last_values[stub.name]
    next_values = signals.last_next_values[stub.name]
    if not dict_obs:  # V(s) and V(s') (the final observation at episode ends) of the head.
        for seen, inputs in ((values, obs), (next_values, next_obs)):
            direct = heads.values(torch.as_tensor(inputs.reshape(32, -1))).numpy()
            np.testing.assert_allclose(seen, direct.reshape(16, 2), rtol=1e-5, atol=1e-6)
    # The buffer keeps the extrinsic rewards and returns (SB3's value head learns those) ...
    for key in ("rewards", "returns", "values"):
        np.testing.assert_allclose(after.buffer[key], before.buffer[key], rtol=1e-6)
    # ... and its advantage becomes the mean of the extrinsic and the signal's advantages.
    signal_advantage = _signal_gae(
        0.5 * expected, values, next_values, dones, truncated, 0.7, 0.8, ignore_done
    )
    np.testing.assert_allclose(
        after.buffer["advantages"],
        (before.buffer["advantages"] + signal_advantage) / 2,
        rtol=1e-4,
        atol=1e-3,
    )
    # n_epochs x (n_steps * n_envs // batch_size) reward-model updates, each of batch_size.
    assert stub.updates == signals.n_updates == 3 * (32 // 8)
    assert stub.batch_sizes == [8] * 12


def test_value_heads_learn_an_intrinsic_return_that_ignores_episode_ends() -> None:
    """A reward of 1 per step with gamma 0.5 is worth 1 / (1 - 0.5) = 2 when the value
    bootstraps through episode ends (curiosity, RND); cut at terminal states it is less. The
    chain is observed blind (a constant observation), so one value serves every state."""
    results = {}
    for stub in (StubSignal(1.0, gamma=0.5), CutStubSignal(1.0, gamma=0.5)):
        stub.reward = staticmethod(lambda o, a, n: np.ones(len(o)))  # type: ignore[method-assign]
        # Learning rate 0 keeps the initial, near-uniform policy.
        model = PPO(
            "MlpPolicy",
            _venv(length=3, max_steps=8, blind=True),
            n_steps=64,
            batch_size=32,
            learning_rate=0.0,
            seed=0,
        )
        heads = SignalValueHeads(
            model.observation_space, [stub.name], SMALL, learning_rate=1e-2, device="cpu"
        )
        callback = RewardSignalsCallback([stub], stats=lambda k, v: None, value_heads=heads)
        model.learn(2048, callback=callback)
        results[stub.name] = float(heads.values(torch.zeros(1, 3))[0, 0])
    assert results["Stub"] == pytest.approx(2.0, abs=0.1)
    assert 1.0 < results["CutStub"] < 1.8


def test_on_policy_episode_ends_use_the_terminal_observation() -> None:
    model = PPO(
        "MlpPolicy", _venv(n_envs=1, length=2, max_steps=3), n_steps=8, batch_size=8, seed=0
    )
    probe = Probe()
    signals = RewardSignalsCallback([StubSignal()], stats=lambda k, v: None)
    seen: dict[str, np.ndarray] = {}

    def at_end() -> None:  # the rollout's transitions, read while the rollout buffer holds them
        batch = signals.transitions(np.arange(8))
        assert batch.next_observations is not None
        seen["next_obs"] = batch.next_observations.numpy()

    model.learn(8, callback=CallbackList([probe, signals, Probe(at_end)]))
    dones = np.array(
        [bool(d) for d in probe.buffer["episode_starts"][1:, 0]] + [bool(probe.last_dones[0])]
    )
    assert dones.any()
    # After an episode end s' is the final observation (the last cell), not the reset one.
    np.testing.assert_allclose(seen["next_obs"], np.stack(probe.next_obs)[:, 0])
    assert np.all(seen["next_obs"][dones][:, 1] == 1.0)


def test_ppo_with_curiosity_and_rnd_logs_mlagents_stat_names() -> None:
    torch.manual_seed(0)
    model = PPO(
        "MlpPolicy", _venv(length=3, max_steps=5), n_steps=16, batch_size=16, n_epochs=2, seed=0
    )
    curiosity = CuriositySignal(
        model.observation_space,
        model.action_space,
        strength=0.1,
        network_settings=SMALL,
        device="cpu",
    )
    rnd = RNDSignal(model.observation_space, strength=0.01, network_settings=SMALL, device="cpu")
    stats: list[tuple[str, float]] = []
    callback = RewardSignalsCallback([curiosity, rnd], stats=lambda k, v: stats.append((k, v)))
    model.learn(64, callback=callback)
    keys = {k for k, _ in stats}
    assert keys >= SIGNAL_STATS
    # The first rollout is evaluated before curiosity's first update: its reward is 0 there.
    assert curiosity.has_updated_once and callback.last_rewards["Curiosity"].max() > 0
    # Default stats go to SB3's logger as running means.
    written: list[dict[str, Any]] = []

    class Capture(KVWriter):
        def write(self, key_values: dict[str, Any], key_excluded: Any, step: int = 0) -> None:
            written.append(dict(key_values))

    model.set_logger(Logger(None, [Capture()]))
    model.learn(32, callback=RewardSignalsCallback([rnd]), reset_num_timesteps=False)
    assert any("Losses/RND Loss" in values for values in written)


# -- SAC ------------------------------------------------------------------------------------------


def _filled_buffer(cls: type[ReplayBuffer] = RewardSignalReplayBuffer) -> ReplayBuffer:
    obs_space = spaces.Box(-1, 1, (3,), np.float32)
    buffer = cls(64, obs_space, spaces.Discrete(2), device="cpu", n_envs=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        buffer.add(
            rng.uniform(-1, 1, (2, 3)).astype(np.float32),
            rng.uniform(-1, 1, (2, 3)).astype(np.float32),
            rng.integers(0, 2, (2, 1)),
            rng.uniform(0, 1, 2).astype(np.float32),
            np.zeros(2),
            [{}, {}],
        )
    return buffer


def test_replay_samples_are_rewarded_with_the_current_weights() -> None:
    buffer = _filled_buffer()
    torch.manual_seed(0)
    signal = CuriositySignal(
        buffer.observation_space,
        buffer.action_space,
        strength=0.3,
        network_settings=SMALL,
        device="cpu",
    )
    signal.has_updated_once = True
    buffer.attach_reward_signals([signal])
    np.random.seed(3)
    first = buffer.sample(16)
    np.random.seed(3)
    raw = buffer.sample_extrinsic(16)
    batch = Transitions(raw.observations, raw.next_observations, raw.actions)
    torch.testing.assert_close(
        first.rewards, raw.rewards + 0.3 * signal.evaluate(batch).reshape(-1, 1)
    )
    with torch.no_grad():
        signal.network.forward_model[2].bias.add_(0.5)
    np.random.seed(3)
    second = buffer.sample(16)
    torch.testing.assert_close(second.observations, first.observations)
    assert not torch.allclose(second.rewards, first.rewards)
    torch.testing.assert_close(
        second.rewards, raw.rewards + 0.3 * signal.evaluate(batch).reshape(-1, 1)
    )


class CustomBuffer(ReplayBuffer):
    """A user's buffer class, wrapped by reward_signal_buffer_class."""


def test_buffers_pickle_without_signals() -> None:
    buffer = _filled_buffer()
    buffer.attach_reward_signals([StubSignal()])
    restored = pickle.loads(pickle.dumps(buffer))
    assert type(restored) is RewardSignalReplayBuffer and restored.reward_signals == ()
    np.testing.assert_array_equal(restored.observations, buffer.observations)

    made = reward_signal_buffer_class(CustomBuffer)
    assert reward_signal_buffer_class(CustomBuffer) is made
    assert reward_signal_buffer_class(MaskedReplayBuffer) is RewardSignalMaskedReplayBuffer
    custom = _filled_buffer(made)
    custom.attach_reward_signals([StubSignal()])
    again = pickle.loads(pickle.dumps(custom))
    assert type(again) is made and again.reward_signals == ()


def test_discrete_sac_with_curiosity_follows_the_reward_signal_schedule() -> None:
    torch.manual_seed(0)
    env = _venv(n_envs=1, length=4, max_steps=8)
    model = DiscreteSAC(
        "MlpPolicy",
        env,
        learning_starts=10,
        batch_size=16,
        replay_buffer_class=RewardSignalMaskedReplayBuffer,
        policy_kwargs={"net_arch": [16]},
        seed=0,
    )
    curiosity = CuriositySignal(
        model.observation_space,
        model.action_space,
        strength=0.5,
        network_settings=SMALL,
        device="cpu",
    )
    stats: list[tuple[str, float]] = []
    callback = OffPolicyRewardSignalsCallback([curiosity], stats=lambda k, v: stats.append((k, v)))
    model.learn(40, callback=callback)
    # ML-Agents' loop, run after every step once the model trains (steps > learning_starts):
    updates, expected = 1, 0
    for step in range(11, 41):
        while (step - 10) / updates > 1.0:
            updates, expected = updates + 1, expected + 1
    assert callback.n_updates == expected > 0 and callback.update_steps == updates
    sample = model.replay_buffer.sample(8)
    assert isinstance(sample, MaskedReplayBufferSamples)
    assert {"Losses/Curiosity Forward Loss", "Policy/Curiosity Reward"} <= {k for k, _ in stats}


def test_sac_replay_buffer_save_load_and_reattach(tmp_path: Path) -> None:
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    model = SAC(
        "MlpPolicy",
        env,
        learning_starts=10,
        batch_size=8,
        replay_buffer_class=RewardSignalReplayBuffer,
        policy_kwargs={"net_arch": [16]},
        seed=0,
    )
    rnd = RNDSignal(
        model.observation_space,
        model.action_space,
        strength=0.1,
        network_settings=SMALL,
        device="cpu",
    )
    callback = OffPolicyRewardSignalsCallback([rnd], steps_per_update=2)
    model.learn(30, callback=callback)
    assert model.replay_buffer.reward_signals == (rnd,)
    assert callback.n_updates > 0
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.load_replay_buffer(tmp_path / "buffer.pkl")
    assert isinstance(model.replay_buffer, RewardSignalReplayBuffer)
    assert model.replay_buffer.reward_signals == ()
    model.learn(10, callback=callback, reset_num_timesteps=False)
    assert model.replay_buffer.reward_signals == (rnd,)


def test_off_policy_callback_needs_a_reward_signal_buffer() -> None:
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, seed=0)
    with pytest.raises(TypeError, match="replay_buffer_class=RewardSignalReplayBuffer"):
        model.learn(5, callback=OffPolicyRewardSignalsCallback([StubSignal()]))
    with pytest.raises(TypeError, match="OffPolicyRewardSignalsCallback"):
        PPO("MlpPolicy", _venv(), n_steps=8, batch_size=8).learn(
            8, callback=OffPolicyRewardSignalsCallback([])
        )


# -- learning --------------------------------------------------------------------------------

LOCK_PATTERN = (1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0)


class LockChain(gym.Env):
    """A combination lock (a "deep sea" chain): in cell k only action ``LOCK_PATTERN[k]``
    moves on (and costs 0.001), the other sends the agent back to cell 0; the last cell pays
    1 and ends the episode. Random play opens it with probability ~2^-15 per try, and the
    cost teaches a reward-greedy agent to stop trying."""

    def __init__(self, length: int = 16) -> None:
        self.length, self.max_steps = length, 2 * length
        self.observation_space = spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.pos = self.t = self.successes = 0

    def _obs(self) -> np.ndarray:
        return np.eye(self.length, dtype=np.float32)[self.pos]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.pos = self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        forward = int(action) == LOCK_PATTERN[self.pos]
        self.pos = self.pos + 1 if forward else 0
        done = self.pos == self.length - 1
        self.successes += int(done)
        reward = float(done) - 0.001 * forward
        return self._obs(), reward, done, not done and self.t >= self.max_steps, {}


def _train_on_lock(with_rnd: bool, seed: int = 0, steps: int = 10_000) -> tuple[int, bool]:
    """Training episodes that opened the lock, and whether the greedy policy opens it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        env = DummyVecEnv([LockChain for _ in range(8)])
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=32,
            batch_size=64,
            n_epochs=4,
            learning_rate=1e-3,
            policy_kwargs={"net_arch": [32]},
            seed=seed,
        )
        callback = None
        if with_rnd:
            rnd = RNDSignal(
                model.observation_space,
                strength=0.5,
                learning_rate=1e-3,
                network_settings=RewardNetworkSettings(hidden_units=32, num_layers=2),
                device="cpu",
            )
            callback = RewardSignalsCallback([rnd], stats=lambda k, v: None)
        model.learn(steps, callback=callback)
    finally:
        torch.set_num_threads(threads)
    lock = LockChain()
    obs, _ = lock.reset()
    for _ in range(lock.max_steps):
        action, _ = model.predict(obs, deterministic=True)
        obs, _, done, truncated, _ = lock.step(action)
        if done or truncated:
            break
    return sum(env.get_attr("successes")), bool(lock.successes)


def test_rnd_opens_a_combination_lock_that_extrinsic_ppo_does_not() -> None:
    extrinsic_successes, extrinsic_greedy = _train_on_lock(with_rnd=False)
    rnd_successes, rnd_greedy = _train_on_lock(with_rnd=True)
    assert (extrinsic_successes, extrinsic_greedy) == (0, False)
    assert rnd_greedy and rnd_successes >= 20


def test_value_heads_normalizer_merges_each_rollout_once() -> None:
    model = PPO("MlpPolicy", _venv(length=3, max_steps=5), n_steps=16, batch_size=16, seed=0)
    settings = RewardNetworkSettings(hidden_units=8, num_layers=1, normalize=True)
    callback = RewardSignalsCallback(
        [StubSignal()], stats=lambda k, v: None, value_network=settings
    )
    model.learn(64, callback=callback)
    assert callback.value_heads is not None
    normalizer = callback.value_heads.network.body.inputs[0].normalizer
    assert int(normalizer.normalization_steps) == 1 + 64  # 2 rollouts of 16 steps x 2 envs
