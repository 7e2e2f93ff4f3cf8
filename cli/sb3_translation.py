"""One behavior's ML-Agents trainer settings -> the SB3 algorithm, policy and arguments.

Every rule here is listed in ``docs/config-mapping.md``. A setting SB3 cannot honour exactly
becomes a *note* naming the setting and what is done instead; a combination SB3 cannot train
at all (hybrid actions) is a :class:`TranslationError` that says what to change. SAC on
discrete actions trains with :class:`sb3_ext.algorithms.DiscreteSAC` (ML-Agents' formulation).
``unity-sb3 translate`` prints plans; ``unity-sb3 learn`` builds models from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from cli import training_config as config
from cli.training_config import NetworkSettings, PPOSettings, RunOptions, TrainerSettings
from sb3_ext.imitation.behavioral_cloning import BehavioralCloningSettings
from sb3_ext.networks import (
    ObservationEncoderExtractor,
    VisualEncoderExtractor,
    check_resolution,
)
from sb3_ext.reward_signals import (
    CuriositySettings,
    GAILSettings,
    RewardNetworkSettings,
    RNDSettings,
    SignalSettings,
    value_head_caveats,
)
from sb3_ext.schedules import (
    BETA_FLOOR,
    EPSILON_FLOOR,
    LEARNING_RATE_FLOOR,
    Schedule,
    make_schedule,
)
from sb3_ext.self_play import SelfPlaySettings
from unity_gym.base_env import (
    BehaviorSpec,
    ObservationSpec,
    ObservationType,
    behavior_name_without_team,
    team_id,
)
from unity_gym.lockstep_behaviors import LockstepBehaviors

# ML-Agents' value loss weight (loss = policy + 0.5 * value - beta * entropy).
VALUE_LOSS_WEIGHT = 0.5
# ML-Agents clips normalised vector observations to [-5, 5].
NORMALIZED_OBSERVATION_CLIP = 5.0
# Reward signals this release trains with (extrinsic is the environment reward itself).
SUPPORTED_REWARD_SIGNALS = ("extrinsic", "gail", "curiosity", "rnd")
# Algorithms that train on rollouts (reward signals through a callback), not a replay buffer.
ON_POLICY_ALGORITHMS = ("PPO", "MaskablePPO", "RecurrentPPO")
# Config name -> sb3_ext settings class of the learnt signals (all but extrinsic).
INTRINSIC_SIGNALS: dict[str, type[SignalSettings]] = {
    "gail": GAILSettings,
    "curiosity": CuriositySettings,
    "rnd": RNDSettings,
}


class TranslationError(Exception):
    """The settings ask for something no SB3 algorithm here can train; says what to change."""


@dataclass
class Sb3Plan:
    """What ``learn`` builds for one behavior."""

    behavior: str
    algorithm: str  # PPO, MaskablePPO, RecurrentPPO, SAC or DiscreteSAC
    policy: str
    kwargs: dict[str, Any]
    total_timesteps: int
    n_agents: int
    reward_scale: float = 1.0
    normalize: bool = False
    entropy_schedule: Schedule | None = None
    deterministic: bool = False
    # Learnt reward signals by config name (gail, curiosity, rnd), built once the model exists.
    reward_signals: dict[str, SignalSettings] = field(default_factory=dict)
    # False without an extrinsic signal: the environment reward is scaled by 0 and left out of
    # the PPO family's mean advantage, as ML-Agents leaves it out.
    extrinsic: bool = True
    # behavioral_cloning, built once the model exists (with the trainer's learning rate).
    behavioral_cloning: BehavioralCloningSettings | None = None
    # SAC family: environment steps per reward-model update (reward_signal_steps_per_update).
    reward_signal_steps_per_update: float | None = None
    # PPO family: the body of the signals' value heads (the behavior's network_settings).
    signal_value_network: RewardNetworkSettings | None = None
    # self_play: ghost training against snapshots of the policy (sb3_ext.self_play).
    self_play: SelfPlaySettings | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def on_policy(self) -> bool:
        """PPO family (rollouts) rather than SAC family (replay buffer)."""
        return self.algorithm in ON_POLICY_ALGORITHMS

    def algorithm_class(self) -> type[Any]:
        """The SB3 / sb3-contrib class (imported on demand)."""
        if self.algorithm == "PPO":
            from stable_baselines3 import PPO

            return PPO
        if self.algorithm == "SAC":
            from stable_baselines3 import SAC

            return SAC
        if self.algorithm == "MaskablePPO":
            from sb3_contrib import MaskablePPO

            return MaskablePPO
        if self.algorithm == "DiscreteSAC":
            from sb3_ext.algorithms import DiscreteSAC

            return DiscreteSAC
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly view: class, policy, constructor arguments, wrappers, notes."""
        return {
            "behavior": self.behavior,
            "class": f"{self.algorithm_class().__module__.split('.')[0]}.{self.algorithm}",
            "policy": self.policy,
            "kwargs": {key: _describe(value) for key, value in self.kwargs.items()},
            "learn": {"total_timesteps": self.total_timesteps},
            "agents": self.n_agents,
            "reward_scale": self.reward_scale,
            "observation_normalization": (
                {"VecNormalize": {"norm_reward": False, "clip_obs": NORMALIZED_OBSERVATION_CLIP}}
                if self.normalize
                else None
            ),
            "entropy_schedule": _describe(self.entropy_schedule),
            "reward_signals": {
                name: _describe_signal(signal, self.reward_signal_steps_per_update)
                for name, signal in self.reward_signals.items()
            },
            "reward_signal_value_heads": (
                None
                if self.signal_value_network is None
                else {
                    "signals": list(self.reward_signals),
                    "network_settings": asdict(self.signal_value_network),
                }
            ),
            "behavioral_cloning": (
                None if self.behavioral_cloning is None else asdict(self.behavioral_cloning)
            ),
            "self_play": (
                None
                if self.self_play is None
                else {
                    "class": "sb3_ext.self_play.TeamVecEnv + SelfPlayCallback",
                    **asdict(self.self_play),
                    "team_change": self.self_play.team_change_steps,
                }
            ),
            "notes": list(self.notes),
        }


def _describe_signal(signal: SignalSettings, steps_per_update: float | None) -> dict[str, Any]:
    kind = signal.signal_class
    described = {
        "class": f"{kind.__module__.rsplit('.', 1)[0]}.{kind.__qualname__}",
        "strength": signal.strength,
        "gamma": signal.gamma,
        "learning_rate": signal.learning_rate,
        "network_settings": asdict(signal.network_settings),
    }
    if isinstance(signal, GAILSettings):
        described.update(
            demo_path=signal.demo_path, use_actions=signal.use_actions, use_vail=signal.use_vail
        )
    if steps_per_update is not None:
        described["steps_per_update"] = steps_per_update
    return described


def _describe(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.describe()
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, dict):
        return {key: _describe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_describe(item) for item in value]
    return value


def translate_behavior(
    behavior: str, settings: TrainerSettings, spec: BehaviorSpec, n_agents: int
) -> Sb3Plan:
    """The plan for ``behavior`` (config name) trained with ``settings`` on ``n_agents`` agents."""
    action = spec.action_spec
    if action.continuous_size and action.discrete_size:
        raise TranslationError(
            f"Behavior {behavior} has hybrid actions ({action.continuous_size} continuous and "
            f"discrete branches {list(action.discrete_branches)}); SB3's algorithms train either "
            "continuous or discrete actions. Change the agent's Behavior Parameters to one kind."
        )
    notes: list[str] = []
    network = settings.network_settings
    memory = network.memory
    visual = [s for s in spec.observation_specs if s.is_visual]
    multi = len(spec.observation_specs) > 1
    policy_kwargs: dict[str, Any] = {"activation_fn": nn.SiLU}
    layers = [network.hidden_units] * network.num_layers

    gamma, reward_scale = _extrinsic(settings, notes)
    hyper = settings.hyperparameters
    signal_steps: float | None = None
    if isinstance(hyper, PPOSettings):  # trainer_type ppo (the schema keeps the two in step)
        if memory is not None:
            algorithm, base = "RecurrentPPO", "LstmPolicy"
            policy_kwargs["lstm_hidden_size"] = max(1, memory.memory_size // 2)
            notes.append(
                f"network_settings.memory.sequence_length={memory.sequence_length}: "
                "RecurrentPPO trains on whole rollout sequences, not fixed-length chunks."
            )
            if action.discrete_size:
                notes.append(
                    "action masks: RecurrentPPO cannot apply them; masked actions may be "
                    "chosen (remove memory to train with MaskablePPO)."
                )
        else:
            algorithm = "MaskablePPO" if action.discrete_size else "PPO"
            base = "Policy"
        n_steps = max(1, round(hyper.buffer_size / n_agents))
        if n_steps * n_agents != hyper.buffer_size:
            notes.append(
                f"hyperparameters.buffer_size={hyper.buffer_size}: with {n_agents} agents each "
                f"update uses {n_steps} steps per agent = {n_steps * n_agents} experiences."
            )
        rollout = n_steps * n_agents
        batch_size = hyper.batch_size
        if batch_size > rollout:
            notes.append(
                f"hyperparameters.batch_size={batch_size} exceeds the {rollout} experiences "
                f"per update; using {rollout}."
            )
            batch_size = rollout
        epsilon = make_schedule(hyper.epsilon_schedule, hyper.epsilon, EPSILON_FLOOR)
        beta = make_schedule(hyper.beta_schedule, hyper.beta, BETA_FLOOR)
        policy_kwargs["net_arch"] = {"pi": layers, "vf": layers}
        policy_kwargs["share_features_extractor"] = hyper.shared_critic
        kwargs: dict[str, Any] = {
            "learning_rate": make_schedule(
                hyper.learning_rate_schedule, hyper.learning_rate, LEARNING_RATE_FLOOR
            ),
            "n_steps": n_steps,
            "batch_size": batch_size,
            "n_epochs": hyper.num_epoch,
            "gamma": gamma,
            "gae_lambda": hyper.lambd,
            "clip_range": epsilon,
            "clip_range_vf": epsilon,
            "ent_coef": beta(1.0),
            "vf_coef": VALUE_LOSS_WEIGHT,
        }
        entropy_schedule = beta if beta.linear else None
        notes.append(
            f"time_horizon={settings.time_horizon}: SB3 cuts trajectories at each update "
            f"(every {n_steps} steps per agent) and bootstraps values there."
        )
    else:
        # Discrete branches train with ML-Agents' discrete SAC (masks applied).
        algorithm = "DiscreteSAC" if action.discrete_size else "SAC"
        base = "Policy"
        entropy_schedule = None
        if memory is not None:
            notes.append(
                f"network_settings.memory: {algorithm} has no recurrent policy; training without "
                "memory."
            )
        policy_kwargs["net_arch"] = {"pi": layers, "qf": layers}
        notes.append(
            f"time_horizon={settings.time_horizon}: {algorithm} stores each transition as it "
            "happens and updates every train_freq steps (ML-Agents groups its updates by "
            "trajectory pieces of this length)."
        )
        steps_per_update = hyper.steps_per_update
        if n_agents >= steps_per_update:
            train_freq, gradient_steps = 1, max(1, round(n_agents / steps_per_update))
        else:
            train_freq, gradient_steps = max(1, round(steps_per_update / n_agents)), 1
        effective = train_freq * n_agents / gradient_steps
        if abs(effective - steps_per_update) > 1e-6:
            notes.append(
                f"hyperparameters.steps_per_update={hyper.steps_per_update}: with {n_agents} "
                f"agents one update every {effective:g} agent steps."
            )
        signal_steps = hyper.reward_signal_steps_per_update
        kwargs = {
            "learning_rate": make_schedule(
                hyper.learning_rate_schedule, hyper.learning_rate, LEARNING_RATE_FLOOR
            ),
            "buffer_size": hyper.buffer_size,
            "batch_size": hyper.batch_size,
            "learning_starts": hyper.buffer_init_steps,
            "tau": hyper.tau,
            "gamma": gamma,
            "train_freq": train_freq,
            "gradient_steps": gradient_steps,
            "ent_coef": f"auto_{hyper.init_entcoef}",
        }
    if visual:
        policy_kwargs.update(_visual_encoder(behavior, network, visual, multi))
    if multi:
        policy = "MultiInput" + base
    elif visual:
        policy = "Cnn" + base
    else:
        policy = "Mlp" + base
    if any(s.observation_type == ObservationType.GOAL_SIGNAL for s in spec.observation_specs):
        notes.append(
            f"network_settings.goal_conditioning_type={network.goal_conditioning_type}: "
            "goal observations are treated as ordinary inputs (no hypernetwork in SB3)."
        )
    kwargs["policy_kwargs"] = policy_kwargs
    on_policy = algorithm in ON_POLICY_ALGORITHMS
    signals = _intrinsic_signals(behavior, settings, spec, gamma, on_policy, notes)
    extrinsic = settings.reward_signals.extrinsic is not None
    if not extrinsic:
        reward_scale = _without_extrinsic(signals, notes)
    value_network = None
    if signals and on_policy:
        value_network = _signal_value_network(network, algorithm, signals, notes)
    elif signals:
        kwargs["replay_buffer_class"] = _replay_buffer_class(algorithm, multi)
    _unsupported_sections(settings, notes)
    return Sb3Plan(
        behavior=behavior,
        algorithm=algorithm,
        policy=policy,
        kwargs=kwargs,
        total_timesteps=settings.max_steps,
        n_agents=n_agents,
        reward_scale=reward_scale,
        normalize=network.normalize,
        entropy_schedule=entropy_schedule,
        deterministic=network.deterministic,
        reward_signals=signals,
        reward_signal_steps_per_update=None if on_policy or not signals else signal_steps,
        signal_value_network=value_network,
        extrinsic=extrinsic or not signals,
        behavioral_cloning=_behavioral_cloning(settings),
        self_play=_self_play(settings, notes),
        notes=notes,
    )


def _extrinsic(settings: TrainerSettings, notes: list[str]) -> tuple[float, float]:
    """(gamma, reward scale) from the extrinsic reward signal."""
    extrinsic = settings.reward_signals.extrinsic
    if extrinsic is None:
        return 0.99, 1.0
    return extrinsic.gamma, extrinsic.strength


def _without_extrinsic(signals: dict[str, SignalSettings], notes: list[str]) -> float:
    """The reward scale and note of a configuration without an ``extrinsic`` signal."""
    if not signals:
        notes.append(
            "reward_signals: no extrinsic signal and no other; SB3 still trains on the "
            "environment reward (strength 1.0, gamma 0.99)."
        )
        return 1.0
    names = ", ".join(f"reward_signals.{name}" for name in signals)
    notes.append(
        f"reward_signals: no extrinsic signal; the environment reward is left out (scaled by "
        f"0), as in ML-Agents: the policy learns from {names} alone."
    )
    return 0.0


def _intrinsic_signals(
    behavior: str,
    settings: TrainerSettings,
    spec: BehaviorSpec,
    gamma: float,
    on_policy: bool,
    notes: list[str],
) -> dict[str, SignalSettings]:
    """sb3_ext settings of the curiosity/RND signals; for SAC, with notes where its one Q
    value on the summed reward differs from ML-Agents' head per signal."""
    configured = settings.reward_signals.configured()
    signals: dict[str, SignalSettings] = {}
    for name, kind in INTRINSIC_SIGNALS.items():
        section = configured.get(name)
        if section is None:
            continue
        assert isinstance(
            section, config.GAILSettings | config.CuriositySettings | config.RNDSettings
        )
        network = section.network_settings
        visual = [s for s in spec.observation_specs if s.is_visual]
        where = f"Behavior {behavior}, reward_signals.{name}.network_settings.vis_encode_type"
        _check_resolution(where, network.vis_encode_type, visual)
        if network.memory is not None:
            notes.append(
                f"reward_signals.{name}.network_settings.memory: reward networks have no "
                "memory (ML-Agents drops it too); ignored."
            )
        if any(s.observation_type == ObservationType.GOAL_SIGNAL for s in spec.observation_specs):
            notes.append(
                f"reward_signals.{name}.network_settings.goal_conditioning_type="
                f"{network.goal_conditioning_type}: the {name} network takes goal observations "
                "as ordinary inputs (no hypernetwork)."
            )
        extra: dict[str, Any] = {}
        if isinstance(section, config.GAILSettings):
            extra = {
                "demo_path": str(Path(section.demo_path).absolute()),
                "use_actions": section.use_actions,
                "use_vail": section.use_vail,
            }
        signals[name] = kind(
            strength=section.strength,
            gamma=section.gamma,
            learning_rate=section.learning_rate,
            network_settings=RewardNetworkSettings(
                hidden_units=network.hidden_units,
                num_layers=network.num_layers,
                normalize=network.normalize,
                vis_encode_type=network.vis_encode_type,
            ),
            **extra,
        )
    if not on_policy:
        labels = [f"reward_signals.{name}" for name in signals]
        notes.extend(value_head_caveats(list(signals.values()), gamma, labels))
    return signals


def _signal_value_network(
    network: NetworkSettings,
    algorithm: str,
    signals: dict[str, SignalSettings],
    notes: list[str],
) -> RewardNetworkSettings:
    """The body of the signals' value heads: the behavior's ``network_settings``, as
    ML-Agents' critic. Observations reach it already normalised when ``normalize`` is on."""
    if algorithm == "RecurrentPPO":
        names = ", ".join(f"reward_signals.{name}" for name in signals)
        notes.append(
            f"{names}: the value heads of these signals see the current observation only "
            "(ML-Agents' critic has the memory too)."
        )
    return RewardNetworkSettings(
        hidden_units=network.hidden_units,
        num_layers=network.num_layers,
        normalize=False,
        vis_encode_type=network.vis_encode_type,
    )


def _behavioral_cloning(settings: TrainerSettings) -> BehavioralCloningSettings | None:
    """sb3_ext settings of the ``behavioral_cloning`` section (demo path made absolute)."""
    section = settings.behavioral_cloning
    if section is None:
        return None
    return BehavioralCloningSettings(
        demo_path=str(Path(section.demo_path).absolute()),
        strength=section.strength,
        steps=section.steps,
        batch_size=section.batch_size,
        num_epoch=section.num_epoch,
        samples_per_update=section.samples_per_update,
    )


def _replay_buffer_class(algorithm: str, dict_observations: bool) -> type[Any]:
    """The replay buffer that adds the signals' rewards to every sample (SAC family)."""
    from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

    from sb3_ext.algorithms.masked_replay_buffer import (
        MaskedDictReplayBuffer,
        MaskedReplayBuffer,
    )
    from sb3_ext.reward_signals import reward_signal_buffer_class

    base: type[ReplayBuffer]
    if algorithm == "DiscreteSAC":
        base = MaskedDictReplayBuffer if dict_observations else MaskedReplayBuffer
    else:
        base = DictReplayBuffer if dict_observations else ReplayBuffer
    return reward_signal_buffer_class(base)


def _check_resolution(where: str, encoder: str, visual: list[ObservationSpec]) -> None:
    """A :class:`TranslationError` starting with ``where`` if an image is too small for
    ``encoder``."""
    for spec in visual:
        try:
            check_resolution(encoder, spec.shape[1], spec.shape[2])
        except ValueError as err:
            raise TranslationError(f"{where}: {err}") from None


def _visual_encoder(
    behavior: str, network: NetworkSettings, visual: list[ObservationSpec], multi: bool
) -> dict[str, Any]:
    """``policy_kwargs`` entries for ML-Agents' ``vis_encode_type`` encoder, ``hidden_units``
    features per image (other observations are passed through, as in ML-Agents)."""
    _check_resolution(f"Behavior {behavior}", network.vis_encode_type, visual)
    extractor = ObservationEncoderExtractor if multi else VisualEncoderExtractor
    return {
        "features_extractor_class": extractor,
        "features_extractor_kwargs": {
            "encoder": network.vis_encode_type,
            "output_size": network.hidden_units,
        },
    }


def _unsupported_sections(settings: TrainerSettings, notes: list[str]) -> None:
    for name in settings.reward_signals.configured():
        if name not in SUPPORTED_REWARD_SIGNALS:
            notes.append(f"reward_signals.{name}: not available yet; trained without it.")
    if settings.threaded:
        notes.append("threaded: true has no effect; each behavior updates in its own thread.")


def _self_play(settings: TrainerSettings, notes: list[str]) -> SelfPlaySettings | None:
    section = settings.self_play
    if section is None:
        return None
    self_play = SelfPlaySettings(**section.model_dump())  # the same keys, ML-Agents' names
    if self_play.team_change_steps > settings.max_steps:
        notes.append(
            f"self_play.team_change={self_play.team_change_steps} is above max_steps="
            f"{settings.max_steps}: the learning team never changes, so only the first team "
            "learns (as ML-Agents warns)."
        )
    return self_play


@dataclass
class LearnerPlan:
    """One model of a run: the behavior's teams it plays, its settings and its SB3 plan."""

    name: str  # artifact name: the behavior's name without its team
    behaviors: list[str]  # full behavior names in the scene, one per team
    settings: TrainerSettings
    plan: Sb3Plan


def plans_for(options: RunOptions, lockstep: LockstepBehaviors) -> list[LearnerPlan]:
    """One plan per behavior name, as mlagents-learn trains one policy per behavior: its teams
    (``Tennis?team=0``, ``Tennis?team=1``) are played by that one model, together or, with
    ``self_play``, one learning team at a time against snapshots."""
    teams: dict[str, list[str]] = {}
    for behavior in lockstep.behavior_names:
        teams.setdefault(behavior_name_without_team(behavior), []).append(behavior)
    plans: list[LearnerPlan] = []
    # Lowest team id first: in an asymmetric game the side with team 0 learns first.
    for name, unordered in sorted(teams.items(), key=lambda kv: (min(map(team_id, kv[1])), kv[0])):
        behaviors = sorted(unordered, key=team_id)  # the lowest team id learns first
        settings = options.settings_for(behaviors[0])
        spec = lockstep.specs[behaviors[0]]
        for other in behaviors[1:]:
            if lockstep.specs[other] != spec:
                raise TranslationError(
                    f"Behavior {name}: its teams {behaviors[0]} and {other} have different "
                    "observations or actions, so one model cannot play both. Give the agents "
                    "the same Behavior Parameters, or different behavior names (one model each)."
                )
        slots = [lockstep.slots.num_slots(b) for b in behaviors]
        if settings.self_play is not None and len(set(slots)) > 1:
            raise TranslationError(
                f"Behavior {name}: with self_play one team learns at a time, so its teams need "
                f"the same number of agents (got {dict(zip(behaviors, slots, strict=True))})."
            )
        agents = slots[0] if settings.self_play is not None else sum(slots)
        plan = translate_behavior(name, settings, spec, agents)
        plans.append(LearnerPlan(name, behaviors, settings, plan))
    _check_self_play(plans, options)
    return plans


def _check_self_play(plans: list[LearnerPlan], options: RunOptions) -> None:
    playing = [p for p in plans if p.plan.self_play is not None]
    teams = {b for p in playing for b in p.behaviors}
    if playing and len(teams) < 2:
        (only,) = playing
        raise TranslationError(
            f"{options.settings_key(only.behaviors[0], 'self_play')}: behavior {only.name} has "
            f"one team ({only.behaviors[0]}) and no other behavior with self_play plays against "
            "it. Self-play needs at least two teams: give the opposing agents another Team Id "
            "in their Behavior Parameters (or another behavior with self_play), or remove "
            "self_play."
        )
