"""Reward signals for SB3's on-policy algorithms (PPO, RecurrentPPO, MaskablePPO).

:class:`RewardSignalsCallback` hooks into SB3's rollout through callback events only:

- every step it records what the rollout buffer lacks: the actions as the environment
  received them, where episodes ended (and whether by a time limit), and their final
  observations (``infos[i]["terminal_observation"]``), so ``s'`` of every transition is known;
- at the end of the rollout (SB3 has already run ``compute_returns_and_advantage`` on the
  extrinsic reward) it evaluates every signal once on the whole rollout with the current
  weights (as ML-Agents evaluates a trajectory when it is collected), computes each signal's
  GAE with its own ``gamma`` and value head (:class:`SignalValueHeads`; curiosity and RND
  bootstrap through episode ends, ``ignore_done``), and replaces the buffer's advantages by
  the mean of the extrinsic and per-signal advantages, as ML-Agents does. The buffer's
  rewards and returns stay extrinsic: SB3's own value head learns the extrinsic return;
- then it trains every signal and the value heads ``n_epochs x (n_steps * n_envs //
  batch_size)`` times on minibatches of ``batch_size`` shuffled from this rollout. ML-Agents
  calls ``update`` after each PPO minibatch; this rollout's rewards are already computed, so
  training at rollout end gives the same number of steps on the same data before the next
  rollout is evaluated.

Differences from ML-Agents: the intrinsic heads have their own body and optimiser (ML-Agents
shares one critic body and one Adam with the actor), and no memory under RecurrentPPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from sb3_ext.reward_signals.base import ObsArray, RewardSignal, Transitions, obs_from_numpy
from sb3_ext.reward_signals.callback_base import (
    RewardSignalsCallbackBase,
    copy_obs,
    set_row,
    take_rows,
)
from sb3_ext.reward_signals.network_body import RewardNetworkSettings
from sb3_ext.reward_signals.stats import StatsSink, UpdateStats
from sb3_ext.reward_signals.value_heads import SignalValueHeads, signal_advantages


class RewardSignalsCallback(RewardSignalsCallbackBase):
    """Adds curiosity/RND rewards to an on-policy rollout and trains the signals.

    :param signals: the signals (built for ``model.observation_space`` / ``action_space``).
    :param n_epochs: passes over each rollout (default: the model's ``n_epochs``).
    :param batch_size: reward-model minibatch size (default: the model's ``batch_size``).
    :param eval_batch_size: transitions per forward pass when evaluating a rollout.
    :param stats: where ML-Agents' stats go, ``(name, value)``; default SB3's logger.
    :param log_extrinsic: also report ``Policy/Extrinsic Reward`` per episode.
    :param value_heads: the signals' value heads (columns in the order of ``signals``);
        default: built at the start of training for the model's observation space.
    :param value_network: the default heads' shared body (default ``RewardNetworkSettings()``).
    :param extrinsic: the environment reward is a signal too (its advantage, from SB3's value
        head, joins the mean); False when a configuration has no ``extrinsic`` signal, as
        with GAIL alone.
    """

    def __init__(
        self,
        signals: Sequence[RewardSignal],
        n_epochs: int | None = None,
        batch_size: int | None = None,
        eval_batch_size: int = 1024,
        stats: StatsSink | None = None,
        log_extrinsic: bool = True,
        value_heads: SignalValueHeads | None = None,
        value_network: RewardNetworkSettings | None = None,
        extrinsic: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(signals, stats, log_extrinsic, verbose)
        names = [s.name for s in self.signals]
        if value_heads is not None and list(value_heads.names) != names:
            raise ValueError(
                f"value_heads are for signals {list(value_heads.names)}, the callback has "
                f"{names}; build SignalValueHeads with the same names in the same order."
            )
        self.value_heads = value_heads
        self.value_network = value_network
        self.extrinsic = extrinsic
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.eval_batch_size = int(eval_batch_size)
        # Raw (unscaled) reward of each signal in the last rollout, [n_steps, n_envs].
        self.last_rewards: dict[str, np.ndarray] = {}
        # Reward-model update() calls per signal so far, and in the last rollout.
        self.n_updates = 0
        self.last_update_count = 0
        self.last_update_stats: dict[str, float] = {}
        # Value estimates of each signal's head in the last rollout, V(s) and V(s'), and the
        # heads' mean loss in the last update.
        self.last_values: dict[str, np.ndarray] = {}
        self.last_next_values: dict[str, np.ndarray] = {}
        self.last_value_loss = float("nan")
        self._returns = np.zeros((0, 0), dtype=np.float32)
        self._old_values = np.zeros((0, 0), dtype=np.float32)
        self._truncated = np.zeros((0, 0), dtype=bool)
        self._actions: np.ndarray | None = None
        self._dones = np.zeros((0, 0), dtype=bool)
        self._terminal: dict[tuple[int, int], Any] = {}
        self._last_new_obs: ObsArray | None = None

    # -- setup ---------------------------------------------------------------------------

    def _init_callback(self) -> None:
        if not isinstance(self.model, OnPolicyAlgorithm):
            raise TypeError(
                f"RewardSignalsCallback works with on-policy algorithms (PPO, RecurrentPPO, "
                f"MaskablePPO), not {type(self.model).__name__}; use "
                "OffPolicyRewardSignalsCallback for SAC and DiscreteSAC."
            )
        if self.signals and self.value_heads is None:
            self.value_heads = SignalValueHeads(
                self.model.observation_space,
                [s.name for s in self.signals],
                self.value_network,
                device=self.model.device,
            )

    @property
    def _buffer(self) -> RolloutBuffer:
        buffer = self.model.rollout_buffer  # type: ignore[attr-defined]
        assert isinstance(buffer, RolloutBuffer)
        return buffer

    def _settings(self) -> tuple[int, int]:
        n_epochs = self.n_epochs or int(getattr(self.model, "n_epochs", 1))
        batch_size = self.batch_size or int(getattr(self.model, "batch_size", 64))
        return n_epochs, batch_size

    # -- collection ----------------------------------------------------------------------

    def _on_rollout_start(self) -> None:
        buffer = self._buffer
        self._actions = None
        self._dones = np.zeros((buffer.buffer_size, buffer.n_envs), dtype=bool)
        self._truncated = np.zeros_like(self._dones)
        self._terminal = {}
        self._last_new_obs = None

    def _on_step(self) -> bool:
        buffer = self._buffer
        step, n_envs = buffer.pos, buffer.n_envs
        actions = self.locals.get("clipped_actions", self.locals["actions"])
        actions = np.asarray(actions).reshape(n_envs, -1)
        if self._actions is None:
            self._actions = np.zeros((buffer.buffer_size, *actions.shape), dtype=actions.dtype)
        self._actions[step] = actions
        dones = np.asarray(self.locals["dones"], dtype=bool)
        self._dones[step] = dones
        infos = self.locals["infos"]
        new_obs = self.locals["new_obs"]
        for env in np.flatnonzero(dones):
            self._truncated[step, env] = bool(infos[int(env)].get("TimeLimit.truncated", False))
            terminal = infos[int(env)].get("terminal_observation")
            if terminal is None:  # Not an SB3 VecEnv: the reset observation is all there is.
                terminal = take_rows(new_obs, np.array([env]))
            self._terminal[(step, int(env))] = copy_obs(terminal)
        if step == buffer.buffer_size - 1:
            self._last_new_obs = take_rows(new_obs, np.arange(n_envs))
        self._track_extrinsic()
        return True

    def _next_observations(self, steps: np.ndarray, envs: np.ndarray) -> ObsArray:
        """``s'`` of the transitions ``(steps[k], envs[k])`` of this rollout."""
        buffer = self._buffer
        last = buffer.buffer_size - 1
        result = take_rows(buffer.observations, np.minimum(steps + 1, last), envs)
        assert self._last_new_obs is not None
        for row in np.flatnonzero(steps == last):
            set_row(result, int(row), take_rows(self._last_new_obs, envs[row]))
        for row in np.flatnonzero(self._dones[steps, envs]):
            set_row(result, int(row), self._terminal[(int(steps[row]), int(envs[row]))])
        return result

    def transitions(self, flat_indices: np.ndarray) -> Transitions:
        """The rollout's transitions at ``flat_indices`` (``step * n_envs + env``).

        Valid until the algorithm trains: SB3 then flattens the rollout buffer's arrays.
        """
        buffer = self._buffer
        assert self._actions is not None
        steps, envs = np.divmod(flat_indices, buffer.n_envs)
        return Transitions.from_numpy(
            take_rows(buffer.observations, steps, envs),
            self._next_observations(steps, envs),
            self._actions[steps, envs],
            dones=self._dones[steps, envs],
        )

    # -- rollout end ---------------------------------------------------------------------

    def _on_rollout_end(self) -> None:
        buffer = self._buffer
        if not self.signals or not buffer.full or self._actions is None:
            return
        if self._last_new_obs is None:
            return
        n_steps, n_envs = buffer.buffer_size, buffer.n_envs
        total = n_steps * n_envs
        heads = self.value_heads
        assert heads is not None
        if heads.settings.normalize:  # ML-Agents merges a trajectory before evaluating it
            for start in range(0, total, self.eval_batch_size):
                index = np.arange(start, min(start + self.eval_batch_size, total))
                steps, envs = np.divmod(index, n_envs)
                rows = take_rows(buffer.observations, steps, envs)
                heads.update_normalization(obs_from_numpy(rows, heads.device))
        raw = np.zeros((total, len(self.signals)), dtype=np.float32)
        values = np.zeros_like(raw)
        next_values = np.zeros_like(raw)
        for start in range(0, total, self.eval_batch_size):
            index = np.arange(start, min(start + self.eval_batch_size, total))
            batch = self.transitions(index)
            for column, signal in enumerate(self.signals):
                raw[index, column] = signal.evaluate(batch).detach().cpu().numpy()
            assert batch.next_observations is not None
            values[index] = heads.values(batch.observations).cpu().numpy()
            next_values[index] = heads.values(batch.next_observations).cpu().numpy()
        self._set_advantages(buffer, raw, values, next_values)
        self._train(total)

    def _set_advantages(
        self,
        buffer: RolloutBuffer,
        raw: np.ndarray,
        values: np.ndarray,
        next_values: np.ndarray,
    ) -> None:
        """Per-signal GAE, the mean advantage into the buffer, return targets for the heads."""
        n_steps, n_envs = buffer.buffer_size, buffer.n_envs
        terminated = self._dones & ~self._truncated
        advantages = [np.array(buffer.advantages, dtype=np.float32)] if self.extrinsic else []
        returns = np.zeros_like(values)
        self.last_rewards, self.last_values, self.last_next_values = {}, {}, {}
        scaled: dict[str, np.ndarray] = {}
        for column, signal in enumerate(self.signals):
            rewards = raw[:, column].reshape(n_steps, n_envs)
            value = values[:, column].reshape(n_steps, n_envs)
            next_value = next_values[:, column].reshape(n_steps, n_envs)
            self.last_rewards[signal.name] = rewards
            self.last_values[signal.name] = value
            self.last_next_values[signal.name] = next_value
            scaled[signal.reward_stat] = signal.strength * rewards
            bootstrap = np.ones_like(value) if signal.ignore_done else 1.0 - terminated
            advantage = signal_advantages(
                scaled[signal.reward_stat],
                value,
                next_value,
                self._dones,
                bootstrap,
                signal.gamma,
                buffer.gae_lambda,
            )
            advantages.append(advantage)
            returns[:, column] = (advantage + value).reshape(-1)
            self.record(signal.value_stat, float(np.mean(value)))
        buffer.advantages = np.mean(advantages, axis=0).astype(np.float32)
        self._returns, self._old_values = returns, values
        for step in range(n_steps):
            self._intrinsic.add({key: value[step] for key, value in scaled.items()})
            self._intrinsic.finish(self._dones[step], self.record)

    def _value_update_settings(self) -> tuple[float | None, float | None]:
        """The model's current value clip range (``clip_range_vf``) and learning rate."""
        model = self.model
        clip = getattr(model, "clip_range_vf", None)
        progress = float(getattr(model, "_current_progress_remaining", 1.0))
        clip_range = float(clip(progress)) if callable(clip) else clip
        optimizer = getattr(model.policy, "optimizer", None)
        rate = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None
        return clip_range, rate

    def _train(self, total: int) -> None:
        n_epochs, batch_size = self._settings()
        batch_size = min(batch_size, total)
        n_batches = max(1, total // batch_size)
        heads = self.value_heads
        assert heads is not None
        clip_range, learning_rate = self._value_update_settings()
        stats = UpdateStats()
        value_losses: list[float] = []
        count = 0
        for _ in range(n_epochs):
            order = np.random.permutation(total)
            for b in range(n_batches):
                index = order[b * batch_size : (b + 1) * batch_size]
                batch = self.transitions(index)
                for signal in self.signals:
                    stats.add(signal.update(batch))
                value_losses.append(
                    heads.update(
                        batch.observations,
                        th.as_tensor(self._returns[index]),
                        th.as_tensor(self._old_values[index]),
                        clip_range,
                        learning_rate,
                    )
                )
                count += 1
        self.n_updates += count
        self.last_update_count = count
        self.last_update_stats = stats.report(self.record)
        self.last_value_loss = float(np.mean(value_losses))
