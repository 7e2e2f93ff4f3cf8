"""ML-Agents' intrinsic reward signals (curiosity, RND) for Stable-Baselines3.

- ``network_body``: :class:`NetworkBody`, the encoder of every reward model, and
  :class:`RewardNetworkSettings` (a signal's ``network_settings``).
- ``actions``: :class:`ActionLayout`, ML-Agents' flattened action for Box, Discrete,
  MultiDiscrete (and hybrid) actions.
- ``base``: :class:`Transitions` (the batch type), :class:`RewardSignal` (the interface),
  :func:`value_head_caveats` (where SAC's one Q value differs from ML-Agents' per-signal heads).
- ``curiosity`` / ``rnd`` / ``gail``: :class:`CuriositySignal`, :class:`RNDSignal`,
  :class:`GAILSignal` (GAIL and VAIL from a ``.demo`` recording) and their settings.
- ``value_heads``: :class:`SignalValueHeads`, ML-Agents' per-signal value heads (PPO family).
- ``on_policy``: :class:`RewardSignalsCallback` for PPO, RecurrentPPO and MaskablePPO.
- ``off_policy``: replay buffers that re-evaluate the signals on every sample and
  :class:`OffPolicyRewardSignalsCallback`, for SAC and DiscreteSAC.

PPO::

    signal = CuriositySignal(model.observation_space, model.action_space, strength=0.02)
    model.learn(100_000, callback=RewardSignalsCallback([signal]))

SAC::

    model = SAC("MlpPolicy", env, replay_buffer_class=RewardSignalReplayBuffer)
    signal = RNDSignal(model.observation_space, model.action_space, strength=0.01)
    model.learn(100_000, callback=OffPolicyRewardSignalsCallback([signal]))
"""

from sb3_ext.reward_signals.actions import ActionLayout
from sb3_ext.reward_signals.base import (
    RewardSignal,
    SignalSettings,
    Transitions,
    total_scaled_reward,
    value_head_caveats,
)
from sb3_ext.reward_signals.curiosity import CuriosityNetwork, CuriositySettings, CuriositySignal
from sb3_ext.reward_signals.gail import DiscriminatorNetwork, GAILSettings, GAILSignal
from sb3_ext.reward_signals.network_body import (
    NetworkBody,
    Normalizer,
    RewardNetworkSettings,
)
from sb3_ext.reward_signals.off_policy import (
    OffPolicyRewardSignalsCallback,
    RewardSignalDictReplayBuffer,
    RewardSignalMaskedDictReplayBuffer,
    RewardSignalMaskedReplayBuffer,
    RewardSignalReplayBuffer,
    RewardSignalReplayMixin,
    default_steps_per_update,
    reward_signal_buffer_class,
)
from sb3_ext.reward_signals.on_policy import RewardSignalsCallback
from sb3_ext.reward_signals.rnd import RNDSettings, RNDSignal
from sb3_ext.reward_signals.stats import EXTRINSIC_REWARD_STAT, StatsSink
from sb3_ext.reward_signals.value_heads import SignalValueHeads, signal_advantages

__all__ = [
    "EXTRINSIC_REWARD_STAT",
    "ActionLayout",
    "CuriosityNetwork",
    "CuriositySettings",
    "CuriositySignal",
    "DiscriminatorNetwork",
    "GAILSettings",
    "GAILSignal",
    "NetworkBody",
    "Normalizer",
    "OffPolicyRewardSignalsCallback",
    "RNDSettings",
    "RNDSignal",
    "RewardNetworkSettings",
    "RewardSignal",
    "RewardSignalDictReplayBuffer",
    "RewardSignalMaskedDictReplayBuffer",
    "RewardSignalMaskedReplayBuffer",
    "RewardSignalReplayBuffer",
    "RewardSignalReplayMixin",
    "RewardSignalsCallback",
    "SignalSettings",
    "SignalValueHeads",
    "StatsSink",
    "Transitions",
    "default_steps_per_update",
    "reward_signal_buffer_class",
    "signal_advantages",
    "total_scaled_reward",
    "value_head_caveats",
]
