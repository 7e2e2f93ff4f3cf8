"""Reward signals for SB3's on-policy algorithms (PPO, RecurrentPPO, MaskablePPO).

:class:`RewardSignalsCallback` hooks into SB3's rollout through callback events only:

- every step it records what the rollout buffer lacks: the actions as the environment
  received them, where episodes ended, and their final observations
  (``infos[i]["terminal_observation"]``), so ``s'`` of every transition is known;
- at the end of the rollout (SB3 has already run ``compute_returns_and_advantage``) it
  evaluates every signal once on the whole rollout with the current weights (as ML-Agents
  evaluates a trajectory when it is collected), adds ``strength_i * r_i`` to
  ``rollout_buffer.rewards`` and reruns the buffer's own ``compute_returns_and_advantage``;
- then it trains every signal ``n_epochs x (n_steps * n_envs // batch_size)`` times on
  minibatches of ``batch_size`` shuffled from this rollout. ML-Agents calls ``update`` after
  each PPO minibatch; this rollout's rewards are already computed, so training at rollout end
  gives the same number of steps on the same data before the next rollout is evaluated.

The last value estimate is recovered from the buffer rather than from the callback's locals:
RecurrentPPO and MaskablePPO (sb3-contrib 2.9) call ``on_rollout_end`` without refreshing
``locals``, so ``locals["values"]`` would be the last step's, not the bootstrap value.

Difference from ML-Agents: SB3 has one value head, fed the summed reward with the algorithm's
``gamma`` and cut at every episode end; ML-Agents has one head per signal, each with its own
``gamma``, intrinsic values bootstrapped through terminals (``ignore_done``), and the mean of
the per-signal advantages. :func:`~sb3_ext.reward_signals.base.value_head_caveats` lists
when a configuration depends on that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from sb3_ext.reward_signals.base import ObsArray, RewardSignal, Transitions
from sb3_ext.reward_signals.callback_base import (
    RewardSignalsCallbackBase,
    copy_obs,
    set_row,
    take_rows,
)
from sb3_ext.reward_signals.stats import StatsSink, UpdateStats


class RewardSignalsCallback(RewardSignalsCallbackBase):
    """Adds curiosity/RND rewards to an on-policy rollout and trains the signals.

    :param signals: the signals (built for ``model.observation_space`` / ``action_space``).
    :param n_epochs: passes over each rollout (default: the model's ``n_epochs``).
    :param batch_size: reward-model minibatch size (default: the model's ``batch_size``).
    :param eval_batch_size: transitions per forward pass when evaluating a rollout.
    :param stats: where ML-Agents' stats go, ``(name, value)``; default SB3's logger.
    :param log_extrinsic: also report ``Policy/Extrinsic Reward`` per episode.
    """

    def __init__(
        self,
        signals: Sequence[RewardSignal],
        n_epochs: int | None = None,
        batch_size: int | None = None,
        eval_batch_size: int = 1024,
        stats: StatsSink | None = None,
        log_extrinsic: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(signals, stats, log_extrinsic, verbose)
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.eval_batch_size = int(eval_batch_size)
        # Raw (unscaled) reward of each signal in the last rollout, [n_steps, n_envs].
        self.last_rewards: dict[str, np.ndarray] = {}
        # Reward-model update() calls per signal so far, and in the last rollout.
        self.n_updates = 0
        self.last_update_count = 0
        self.last_update_stats: dict[str, float] = {}
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
        raw = {s.name: np.zeros(total, dtype=np.float32) for s in self.signals}
        for start in range(0, total, self.eval_batch_size):
            index = np.arange(start, min(start + self.eval_batch_size, total))
            batch = self.transitions(index)
            for signal in self.signals:
                raw[signal.name][index] = signal.evaluate(batch).detach().cpu().numpy()
        self.last_rewards = {name: r.reshape(n_steps, n_envs) for name, r in raw.items()}
        scaled = {s.reward_stat: s.strength * self.last_rewards[s.name] for s in self.signals}
        added = np.sum(list(scaled.values()), axis=0) if scaled else np.zeros((n_steps, n_envs))
        self._add_rewards(buffer, added.astype(np.float32))
        for step in range(n_steps):
            self._intrinsic.add({key: value[step] for key, value in scaled.items()})
            self._intrinsic.finish(self._dones[step], self.record)
        self._train(total)

    @staticmethod
    def _add_rewards(buffer: RolloutBuffer, added: np.ndarray) -> None:
        """Add ``added`` to the rewards and recompute GAE with the buffer's own method.

        The bootstrap term of the last step, ``V(s_T) (1 - done_T)``, is recovered from the
        advantages SB3 computed: ``A_{T-1} = r_{T-1} + gamma V(s_T)(1 - done_T) - V_{T-1}``.
        """
        last = buffer.buffer_size - 1
        if buffer.gamma > 0:
            bootstrap = (
                buffer.advantages[last] + buffer.values[last] - buffer.rewards[last]
            ) / buffer.gamma
        else:
            bootstrap = np.zeros(buffer.n_envs, dtype=np.float32)
        buffer.rewards += added
        buffer.compute_returns_and_advantage(
            last_values=th.as_tensor(bootstrap, dtype=th.float32),
            dones=np.zeros(buffer.n_envs, dtype=bool),
        )

    def _train(self, total: int) -> None:
        n_epochs, batch_size = self._settings()
        batch_size = min(batch_size, total)
        n_batches = max(1, total // batch_size)
        stats = UpdateStats()
        count = 0
        for _ in range(n_epochs):
            order = np.random.permutation(total)
            for b in range(n_batches):
                batch = self.transitions(order[b * batch_size : (b + 1) * batch_size])
                for signal in self.signals:
                    stats.add(signal.update(batch))
                count += 1
        self.n_updates += count
        self.last_update_count = count
        self.last_update_stats = stats.report(self.record)
