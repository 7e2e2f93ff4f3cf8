"""Reward signals for SB3's off-policy algorithms (SAC, DiscreteSAC).

ML-Agents' SAC stores no intrinsic rewards: every sampled replay minibatch is re-evaluated by
every signal with its current weights. Here that is a replay-buffer mixin: ``sample`` returns
the base class's sample with ``rewards + sum_i strength_i r_i(batch)`` (same sample type), so
SAC's unchanged ``train`` learns from the combined reward. The signals train on their own
schedule (ML-Agents' ``reward_signal_steps_per_update``) from
:class:`OffPolicyRewardSignalsCallback`, on extrinsic-only samples.

Ready-made buffers: :class:`RewardSignalReplayBuffer`, :class:`RewardSignalDictReplayBuffer`
(SAC) and :class:`RewardSignalMaskedReplayBuffer`, :class:`RewardSignalMaskedDictReplayBuffer`
(DiscreteSAC); :func:`reward_signal_buffer_class` wraps any other ``ReplayBuffer`` subclass.
The buffers pickle without their signals (SB3's ``save_replay_buffer``); the callback
attaches the signals again at the start of every ``learn``.

Differences from ML-Agents: one Q (and V) head on the summed reward with the algorithm's
``gamma`` and terminal masking for every signal, where ML-Agents keeps a head per signal, its
own ``gamma`` and no terminal masking for ``ignore_done`` signals (see
:func:`~sb3_ext.reward_signals.base.value_head_caveats`); the signals train before the
policy's gradient steps of the same round rather than after.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ext.algorithms.masked_replay_buffer import MaskedDictReplayBuffer, MaskedReplayBuffer
from sb3_ext.reward_signals.base import RewardSignal, Transitions
from sb3_ext.reward_signals.callback_base import RewardSignalsCallbackBase, next_observations
from sb3_ext.reward_signals.stats import StatsSink, UpdateStats


def sample_transitions(samples: Any) -> Transitions:
    """An SB3 replay sample (``ReplayBufferSamples`` or a variant) as signal input."""
    return Transitions(
        samples.observations,
        samples.next_observations,
        samples.actions,
        samples.dones.reshape(-1).float(),
    )


class RewardSignalReplayMixin:
    """Mixed in before an SB3 replay buffer: ``sample`` adds the signals' rewards, computed
    with their current weights. Signals are attached with :meth:`attach_reward_signals` and
    are not pickled."""

    _base_buffer_class: ClassVar[type[ReplayBuffer]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reward_signals: tuple[RewardSignal, ...] = ()
        self._warned_unattached = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        base = next(
            (
                b
                for b in cls.__mro__
                if issubclass(b, ReplayBuffer) and not issubclass(b, RewardSignalReplayMixin)
            ),
            None,
        )
        if base is not None:
            cls._base_buffer_class = base

    @property
    def reward_signals(self) -> tuple[RewardSignal, ...]:
        return self._reward_signals

    def attach_reward_signals(self, signals: Sequence[RewardSignal]) -> None:
        """Evaluate these signals on every ``sample`` from now on."""
        self._reward_signals = tuple(signals)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """The base class's sample with ``rewards + sum_i strength_i r_i``."""
        samples = super().sample(batch_size, env)  # type: ignore[misc]
        if not self._reward_signals and not self._warned_unattached:
            self._warned_unattached = True
            warnings.warn(
                "A reward-signal replay buffer was sampled with no signals attached: rewards "
                "are extrinsic only. Pass OffPolicyRewardSignalsCallback to learn() (it "
                "attaches them) or call attach_reward_signals().",
                stacklevel=2,
            )
        return self.add_signal_rewards(samples)

    def sample_extrinsic(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """A sample as the base class gives it (extrinsic rewards only)."""
        return super().sample(batch_size, env)  # type: ignore[misc]

    def add_signal_rewards(self, samples: Any) -> Any:
        """``samples`` (an SB3 samples NamedTuple) with the signals' scaled rewards added."""
        if not self._reward_signals:
            return samples
        rewards: th.Tensor = samples.rewards
        batch = sample_transitions(samples)
        added = th.zeros(rewards.shape[0], device=rewards.device)
        for signal in self._reward_signals:
            reward = signal.evaluate(batch.to(signal.device)).detach().to(rewards.device)
            added += signal.strength * reward
        return samples._replace(rewards=rewards + added.reshape(rewards.shape).to(rewards.dtype))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reward_signals"] = ()
        state["_warned_unattached"] = False
        return state


def _rebuild_factory_buffer(base: type[ReplayBuffer], state: dict[str, Any]) -> ReplayBuffer:
    cls = reward_signal_buffer_class(base)
    buffer = cls.__new__(cls)
    buffer.__dict__.update(state)
    return buffer


def _reduce_factory_buffer(self: RewardSignalReplayMixin) -> tuple[Any, ...]:
    return (_rebuild_factory_buffer, (type(self)._base_buffer_class, self.__getstate__()))


class RewardSignalReplayBuffer(RewardSignalReplayMixin, ReplayBuffer):
    """SB3's ``ReplayBuffer`` with reward signals (SAC, ``Box`` observations)."""


class RewardSignalDictReplayBuffer(RewardSignalReplayMixin, DictReplayBuffer):
    """SB3's ``DictReplayBuffer`` with reward signals (SAC, ``Dict`` observations)."""


class RewardSignalMaskedReplayBuffer(RewardSignalReplayMixin, MaskedReplayBuffer):
    """:class:`MaskedReplayBuffer` with reward signals (DiscreteSAC)."""


class RewardSignalMaskedDictReplayBuffer(RewardSignalReplayMixin, MaskedDictReplayBuffer):
    """:class:`MaskedDictReplayBuffer` with reward signals (DiscreteSAC, ``Dict``)."""


_KNOWN: dict[type[ReplayBuffer], type[ReplayBuffer]] = {
    ReplayBuffer: RewardSignalReplayBuffer,
    DictReplayBuffer: RewardSignalDictReplayBuffer,
    MaskedReplayBuffer: RewardSignalMaskedReplayBuffer,
    MaskedDictReplayBuffer: RewardSignalMaskedDictReplayBuffer,
}
_MADE: dict[type[ReplayBuffer], type[ReplayBuffer]] = {}


def reward_signal_buffer_class(base: type[ReplayBuffer]) -> type[ReplayBuffer]:
    """The replay-buffer class to pass as ``replay_buffer_class``: ``base`` with reward
    signals (the ready-made classes for SB3's and sb3_ext's buffers, a new one otherwise)."""
    if issubclass(base, RewardSignalReplayMixin):
        return base
    if base in _KNOWN:
        return _KNOWN[base]
    if base not in _MADE:
        namespace = {"__reduce__": _reduce_factory_buffer, "__module__": __name__}
        _MADE[base] = type(
            f"RewardSignal{base.__name__}", (RewardSignalReplayMixin, base), namespace
        )
    return _MADE[base]


def default_steps_per_update(model: OffPolicyAlgorithm) -> float:
    """ML-Agents' ``steps_per_update`` of an SB3 model: environment steps (over all envs)
    per gradient step, ``train_freq * n_envs / gradient_steps`` (1 when per episode or
    ``gradient_steps=-1``)."""
    freq = model.train_freq
    if not isinstance(freq, TrainFreq):
        return 1.0
    if freq.unit != TrainFrequencyUnit.STEP or model.gradient_steps <= 0:
        return 1.0
    return float(freq.frequency * model.n_envs) / float(model.gradient_steps)


class OffPolicyRewardSignalsCallback(RewardSignalsCallbackBase):
    """Attaches the signals to a SAC/DiscreteSAC replay buffer and trains them.

    The model needs a reward-signal buffer: ``replay_buffer_class=RewardSignalReplayBuffer``
    (``RewardSignalMaskedReplayBuffer`` for DiscreteSAC, the ``Dict`` ones for ``Dict``
    observations, or :func:`reward_signal_buffer_class`). Training follows ML-Agents'
    ``_update_reward_signals``: once the algorithm trains (``num_timesteps > learning_starts``
    and ``batch_size`` transitions stored), ``while (steps - learning_starts) / updates >
    steps_per_update``: sample ``batch_size`` extrinsic-only transitions, update every signal.

    :param signals: the signals (built for ``model.observation_space`` / ``action_space``).
    :param steps_per_update: ML-Agents' ``reward_signal_steps_per_update`` (default: the
        model's steps per gradient step, ML-Agents' default ``steps_per_update``).
    :param batch_size: reward-model minibatch size (default: the model's ``batch_size``).
    :param stats: where ML-Agents' stats go, ``(name, value)``; default SB3's logger.
    :param log_extrinsic: also report ``Policy/Extrinsic Reward`` per episode.
    :param log_episode_rewards: evaluate the signals on each collected step to report
        ``Policy/{Name} Reward`` per episode (ML-Agents evaluates collected trajectories too).
    """

    def __init__(
        self,
        signals: Sequence[RewardSignal],
        steps_per_update: float | None = None,
        batch_size: int | None = None,
        stats: StatsSink | None = None,
        log_extrinsic: bool = True,
        log_episode_rewards: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(signals, stats, log_extrinsic, verbose)
        if steps_per_update is not None and steps_per_update <= 0:
            raise ValueError(f"steps_per_update must be positive, got {steps_per_update}.")
        self.steps_per_update = steps_per_update
        self.batch_size = batch_size
        self.log_episode_rewards = log_episode_rewards
        self.update_steps: int | None = None  # ML-Agents' reward_signal_update_steps
        self.n_updates = 0
        self.last_update_stats: dict[str, float] = {}
        self._attached_to: Any = None

    def _init_callback(self) -> None:
        if not isinstance(self.model, OffPolicyAlgorithm):
            raise TypeError(
                f"OffPolicyRewardSignalsCallback works with off-policy algorithms (SAC, "
                f"DiscreteSAC), not {type(self.model).__name__}; use RewardSignalsCallback "
                "for PPO, RecurrentPPO and MaskablePPO."
            )

    @property
    def _model(self) -> OffPolicyAlgorithm:
        assert isinstance(self.model, OffPolicyAlgorithm)
        return self.model

    def _spu(self) -> float:
        return self.steps_per_update or default_steps_per_update(self._model)

    def _attach(self) -> RewardSignalReplayMixin:
        buffer = self._model.replay_buffer
        if not isinstance(buffer, RewardSignalReplayMixin):
            raise TypeError(
                f"The model's replay buffer is a {type(buffer).__name__}, which does not add "
                "reward-signal rewards. Create the model with replay_buffer_class="
                "RewardSignalReplayBuffer (SAC), RewardSignalMaskedReplayBuffer (DiscreteSAC), "
                "their Dict variants, or reward_signal_buffer_class(YourBuffer)."
            )
        if buffer is not self._attached_to or not buffer.reward_signals:
            buffer.attach_reward_signals(self.signals)
            self._attached_to = buffer
        return buffer

    def _on_training_start(self) -> None:
        self._attach()
        if self.update_steps is None:
            # ML-Agents: reward_signal_update_steps = max(1, step / steps_per_update).
            self.update_steps = int(max(1, self.num_timesteps / self._spu()))

    def _on_step(self) -> bool:
        self._attach()
        if self.log_episode_rewards and self.signals:
            dones = np.asarray(self.locals["dones"], dtype=bool)
            actions = self.locals.get("buffer_actions", self.locals["actions"])
            batch = Transitions.from_numpy(
                self._model._last_obs,  # type: ignore[arg-type]
                next_observations(self.locals["new_obs"], dones, self.locals["infos"]),
                np.asarray(actions).reshape(len(dones), -1),
                dones=dones,
            )
            self._intrinsic.add(
                {
                    s.reward_stat: s.strength * s.evaluate(batch).detach().cpu().numpy()
                    for s in self.signals
                }
            )
            self._intrinsic.finish(dones, self.record)
        self._track_extrinsic()
        return True

    def _on_rollout_end(self) -> None:
        model = self._model
        buffer = self._attach()
        batch_size = self.batch_size or model.batch_size
        stored = model.replay_buffer.size() * model.replay_buffer.n_envs  # type: ignore[union-attr]
        steps = model.num_timesteps
        if steps <= model.learning_starts or stored < batch_size or not self.signals:
            return
        if self.update_steps is None:
            self.update_steps = int(max(1, steps / self._spu()))
        stats = UpdateStats()
        while (steps - model.learning_starts) / self.update_steps > self._spu():
            samples = buffer.sample_extrinsic(batch_size, env=model._vec_normalize_env)
            batch = sample_transitions(samples)
            for signal in self.signals:
                stats.add(signal.update(batch))
            self.update_steps += 1
            self.n_updates += 1
        means = stats.report(self.record)
        if means:
            self.last_update_stats = means
