"""The training configuration of ``unity-sb3 learn``: ML-Agents release 21's YAML, typed.

The models below use ML-Agents' key names, defaults and nesting, so an existing ``mlagents-learn``
YAML loads unchanged and :func:`to_resolved_dict` writes the same fully resolved layout as the
``configuration.yaml`` that mlagents-learn leaves in ``results/<run-id>/``. ML-Agents' loading
rules are kept too: a behavior's keys are merged over the resolved ``default_settings``
(recursively), ``beta_schedule``/``epsilon_schedule`` follow ``learning_rate_schedule``,
``reward_signal_steps_per_update`` follows ``steps_per_update``, ``team_change`` is five times
``save_steps``, a reward signal's ``encoding_size`` sizes its network when no
``network_settings`` is given, and ``even_checkpoints`` spreads checkpoints over ``max_steps``.

Older formats are converted on load by :mod:`cli.legacy_config`. Bad input raises
:class:`~cli.config_errors.ConfigError`, whose text names the file, every offending key and how
to fix it (:mod:`cli.config_errors` writes those messages).
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cli.config_errors import (
    INVALID_SAMPLER,
    SAMPLER_KINDS_CONTEXT,
    ConfigError,
    config_error,
    file_error_message,
    mapping_error_message,
    validation_error_message,
)
from cli.legacy_config import LegacyConfigError, upgrade

logger = logging.getLogger("unity_sb3")

SUPPORTED_TRAINERS = ("ppo", "sac")


# -- scalar types -------------------------------------------------------------------------------


def _as_int(value: Any) -> Any:
    """Take YAML's unquoted ``5.0e5``/``1e6`` (text to PyYAML) as integers; refuse booleans."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number) and number.is_integer():
            return int(number)
    return value


def _as_float(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


Int = Annotated[int, BeforeValidator(_as_int)]
PositiveInt = Annotated[int, BeforeValidator(_as_int), Field(gt=0)]
NonNegativeInt = Annotated[int, BeforeValidator(_as_int), Field(ge=0)]
Port = Annotated[int, BeforeValidator(_as_int), Field(ge=1, le=65535)]
Float = Annotated[float, BeforeValidator(_as_float)]
PositiveFloat = Annotated[float, BeforeValidator(_as_float), Field(gt=0)]
NonNegativeFloat = Annotated[float, BeforeValidator(_as_float), Field(ge=0)]
UnitFloat = Annotated[float, BeforeValidator(_as_float), Field(ge=0, le=1)]

TrainerType = Literal["ppo", "sac"]
ScheduleType = Literal["constant", "linear"]
EncoderType = Literal["fully_connected", "match3", "simple", "nature_cnn", "resnet"]
ConditioningType = Literal["hyper", "none"]
MeasureType = Literal["progress", "reward", "Elo"]


class _Section(BaseModel):
    """A YAML section: unknown keys are errors; numbers are accepted where text is expected;
    numbers must be finite (NaN or infinity would reach the trainer or the players)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)


# -- networks and trainers ------------------------------------------------------------------------


class MemorySettings(_Section):
    """Recurrent memory (an LSTM) of a network."""

    sequence_length: PositiveInt = 64
    memory_size: PositiveInt = 128

    @field_validator("memory_size")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise config_error(f"memory_size must be divisible by 2 (got {value})")
        return value


class NetworkSettings(_Section):
    """Shape of a policy, value or reward-signal network."""

    normalize: bool = False
    hidden_units: PositiveInt = 128
    num_layers: PositiveInt = 2
    vis_encode_type: EncoderType = "simple"
    memory: MemorySettings | None = None
    goal_conditioning_type: ConditioningType = "hyper"
    deterministic: bool = False


class PPOSettings(_Section):
    """PPO's hyperparameters (``trainer_type: ppo``)."""

    batch_size: PositiveInt = 1024
    buffer_size: PositiveInt = 10240
    learning_rate: PositiveFloat = 3.0e-4
    beta: NonNegativeFloat = 5.0e-3
    epsilon: PositiveFloat = 0.2
    lambd: UnitFloat = 0.95
    num_epoch: PositiveInt = 3
    shared_critic: bool = False
    learning_rate_schedule: ScheduleType = "linear"
    beta_schedule: ScheduleType = "linear"
    epsilon_schedule: ScheduleType = "linear"

    @model_validator(mode="before")
    @classmethod
    def _schedules_follow_learning_rate(cls, data: Any) -> Any:
        if isinstance(data, dict) and "learning_rate_schedule" in data:
            data = dict(data)
            data.setdefault("beta_schedule", data["learning_rate_schedule"])
            data.setdefault("epsilon_schedule", data["learning_rate_schedule"])
        return data


class SACSettings(_Section):
    """SAC's hyperparameters (``trainer_type: sac``)."""

    learning_rate: PositiveFloat = 3.0e-4
    learning_rate_schedule: ScheduleType = "constant"
    batch_size: PositiveInt = 128
    buffer_size: PositiveInt = 50000
    buffer_init_steps: NonNegativeInt = 0
    tau: UnitFloat = 0.005
    steps_per_update: PositiveFloat = 1.0
    save_replay_buffer: bool = False
    init_entcoef: PositiveFloat = 1.0
    reward_signal_steps_per_update: PositiveFloat = 1.0

    @model_validator(mode="before")
    @classmethod
    def _reward_signal_steps_follow_steps(cls, data: Any) -> Any:
        if isinstance(data, dict) and "reward_signal_steps_per_update" not in data:
            data = {**data, "reward_signal_steps_per_update": data.get("steps_per_update", 1.0)}
        return data


_HYPERPARAMETER_MODELS: dict[str, type[PPOSettings] | type[SACSettings]] = {
    "ppo": PPOSettings,
    "sac": SACSettings,
}


class _TaggedHyperparameters(dict[str, Any]):
    """A raw ``hyperparameters`` mapping labelled with the trainer type it belongs to."""

    trainer_type = "ppo"


def _hyperparameters_tag(value: Any) -> str:
    if isinstance(value, _TaggedHyperparameters):
        return f"({value.trainer_type})"
    return "(sac)" if isinstance(value, SACSettings) else "(ppo)"


Hyperparameters = Annotated[
    Annotated[PPOSettings, Tag("(ppo)")] | Annotated[SACSettings, Tag("(sac)")],
    Discriminator(_hyperparameters_tag),
]


class RewardSignalSettings(_Section):
    """A reward signal; on its own it is the ``extrinsic`` (environment) reward."""

    gamma: UnitFloat = 0.99
    strength: NonNegativeFloat = 1.0
    network_settings: NetworkSettings = Field(default_factory=NetworkSettings)


class _LearnedRewardSignal(RewardSignalSettings):
    learning_rate: PositiveFloat = 3.0e-4
    encoding_size: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _encoding_size_sizes_network(cls, data: Any) -> Any:
        # Deprecated in ML-Agents but honoured: without network_settings it sets hidden_units.
        if isinstance(data, dict) and "network_settings" not in data:
            size = _as_int(data.get("encoding_size"))
            if isinstance(size, int) and size > 0:
                data = {**data, "network_settings": {"hidden_units": size}}
        return data


class GAILSettings(_LearnedRewardSignal):
    """GAIL: a discriminator rewards agreement with recorded demonstrations."""

    use_actions: bool = False
    use_vail: bool = False
    demo_path: str


class CuriositySettings(_LearnedRewardSignal):
    """Curiosity: rewards transitions the agent cannot yet predict."""


class RNDSettings(_LearnedRewardSignal):
    """Random network distillation: rewards novel observations."""

    learning_rate: PositiveFloat = 1.0e-4


class RewardSignals(_Section):
    """The ``reward_signals`` section; absent signals are None and left out when written."""

    extrinsic: RewardSignalSettings | None = None
    gail: GAILSettings | None = None
    curiosity: CuriositySettings | None = None
    rnd: RNDSettings | None = None

    def configured(self) -> dict[str, RewardSignalSettings]:
        """The signals in use, by name."""
        signals = {"extrinsic": self.extrinsic, "gail": self.gail}
        signals.update(curiosity=self.curiosity, rnd=self.rnd)
        return {name: signal for name, signal in signals.items() if signal is not None}

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


def _default_reward_signals() -> RewardSignals:
    return RewardSignals(extrinsic=RewardSignalSettings())


class SelfPlaySettings(_Section):
    """Self-play against past snapshots of the policy."""

    save_steps: PositiveInt = 20000
    team_change: PositiveInt = 100000
    swap_steps: PositiveInt = 2000
    window: PositiveInt = 10
    play_against_latest_model_ratio: UnitFloat = 0.5
    initial_elo: Float = 1200.0

    @model_validator(mode="before")
    @classmethod
    def _team_change_follows_save_steps(cls, data: Any) -> Any:
        if isinstance(data, dict) and "team_change" not in data:
            save_steps = _as_int(data.get("save_steps", 20000))
            if isinstance(save_steps, int) and not isinstance(save_steps, bool):
                data = {**data, "team_change": save_steps * 5}
        return data


class BehavioralCloningSettings(_Section):
    """Behavioral cloning from recorded demonstrations."""

    demo_path: str
    steps: NonNegativeInt = 0
    strength: NonNegativeFloat = 1.0
    samples_per_update: NonNegativeInt = 0
    num_epoch: PositiveInt | None = None
    batch_size: PositiveInt | None = None


class TrainerSettings(_Section):
    """Everything about training one behavior (an entry of ``behaviors``)."""

    trainer_type: TrainerType = "ppo"
    hyperparameters: Hyperparameters = Field(default_factory=PPOSettings)
    checkpoint_interval: PositiveInt = 500000
    network_settings: NetworkSettings = Field(default_factory=NetworkSettings)
    reward_signals: RewardSignals = Field(default_factory=_default_reward_signals)
    init_path: str | None = None
    keep_checkpoints: PositiveInt = 5
    even_checkpoints: bool = False
    max_steps: PositiveInt = 500000
    time_horizon: PositiveInt = 64
    summary_freq: PositiveInt = 50000
    threaded: bool = False
    self_play: SelfPlaySettings | None = None
    behavioral_cloning: BehavioralCloningSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _label_hyperparameters(cls, data: Any) -> Any:
        """Validate ``hyperparameters`` against the model of the behavior's trainer type."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        raw = data.get("hyperparameters", {})
        if isinstance(raw, dict):
            tagged = _TaggedHyperparameters(raw)
            trainer_type = data.get("trainer_type", "ppo")
            tagged.trainer_type = trainer_type if trainer_type in SUPPORTED_TRAINERS else "ppo"
            data["hyperparameters"] = tagged
        return data

    @model_validator(mode="after")
    def _check_combinations(self) -> TrainerSettings:
        expected = _HYPERPARAMETER_MODELS[self.trainer_type]
        if not isinstance(self.hyperparameters, expected):
            raise config_error(
                f"hyperparameters are {type(self.hyperparameters).__name__} but trainer_type is "
                f"{self.trainer_type!r}"
            )
        memory = self.network_settings.memory
        if memory is not None and memory.sequence_length > self.hyperparameters.batch_size:
            raise config_error(
                f"network_settings.memory.sequence_length ({memory.sequence_length}) must not "
                f"exceed hyperparameters.batch_size ({self.hyperparameters.batch_size})"
            )
        if self.even_checkpoints:
            self.checkpoint_interval = max(1, int(self.max_steps / self.keep_checkpoints))
        return self


# -- environment parameters -----------------------------------------------------------------------


class ConstantParameters(_Section):
    seed: Int = -1
    value: Float = 0.0


class UniformParameters(_Section):
    seed: Int = -1
    min_value: Float = 0.0
    max_value: Float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> UniformParameters:
        if self.min_value > self.max_value:
            raise config_error(
                f"min_value ({self.min_value}) is greater than max_value ({self.max_value})"
            )
        return self


class GaussianParameters(_Section):
    seed: Int = -1
    mean: Float = 1.0
    st_dev: NonNegativeFloat = 1.0


class MultiRangeUniformParameters(_Section):
    seed: Int = -1
    intervals: Annotated[list[tuple[Float, Float]], Field(min_length=1)] = Field(
        default_factory=lambda: [(0.0, 1.0)]
    )

    @model_validator(mode="after")
    def _ordered(self) -> MultiRangeUniformParameters:
        for low, high in self.intervals:
            if low > high:
                raise config_error(f"interval [{low}, {high}] has its minimum above its maximum")
        return self


class ConstantSampler(_Section):
    """A fixed value; a plain number in the YAML means this."""

    sampler_type: Literal["constant"] = "constant"
    sampler_parameters: ConstantParameters = Field(default_factory=ConstantParameters)

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return {"sampler_type": "constant", "sampler_parameters": {"value": data}}
        return data


class UniformSampler(_Section):
    sampler_type: Literal["uniform"] = "uniform"
    sampler_parameters: UniformParameters = Field(default_factory=UniformParameters)


class GaussianSampler(_Section):
    sampler_type: Literal["gaussian"] = "gaussian"
    sampler_parameters: GaussianParameters = Field(default_factory=GaussianParameters)


class MultiRangeUniformSampler(_Section):
    sampler_type: Literal["multirangeuniform"] = "multirangeuniform"
    sampler_parameters: MultiRangeUniformParameters = Field(
        default_factory=MultiRangeUniformParameters
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_documented_spelling(cls, data: Any) -> Any:
        # ML-Agents' docs say multirange_uniform, its code multirangeuniform; take both.
        if isinstance(data, dict) and data.get("sampler_type") == "multirange_uniform":
            data = {**data, "sampler_type": "multirangeuniform"}
        return data


SAMPLER_TYPES = ("uniform", "gaussian", "multirangeuniform", "constant")
_SAMPLER_CLASSES: dict[str, type[_Section]] = {
    "constant": ConstantSampler,
    "uniform": UniformSampler,
    "gaussian": GaussianSampler,
    "multirangeuniform": MultiRangeUniformSampler,
}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _sampler_tag(value: Any) -> str | None:
    if _is_number(value):
        return "(constant)"
    if isinstance(value, dict):
        kind = value.get("sampler_type")
        kind = "multirangeuniform" if kind == "multirange_uniform" else kind
        # A mapping or list as sampler_type is unhashable: reported as an unknown sampler.
        return f"({kind})" if isinstance(kind, str) and kind in _SAMPLER_CLASSES else None
    for kind, model in _SAMPLER_CLASSES.items():
        if isinstance(value, model):
            return f"({kind})"
    return None


Sampler = Annotated[
    Annotated[ConstantSampler, Tag("(constant)")]
    | Annotated[UniformSampler, Tag("(uniform)")]
    | Annotated[GaussianSampler, Tag("(gaussian)")]
    | Annotated[MultiRangeUniformSampler, Tag("(multirangeuniform)")],
    Discriminator(
        _sampler_tag,
        custom_error_type=INVALID_SAMPLER,
        custom_error_message="expected a number or a sampler",
        custom_error_context={SAMPLER_KINDS_CONTEXT: ", ".join(SAMPLER_TYPES)},
    ),
]


class CompletionCriteriaSettings(_Section):
    """When a lesson is complete and the curriculum moves on."""

    behavior: str
    measure: MeasureType = "reward"
    min_lesson_length: NonNegativeInt = 0
    signal_smoothing: bool = True
    threshold: Float = 0.0
    require_reset: bool = False

    @model_validator(mode="after")
    def _progress_is_a_fraction(self) -> CompletionCriteriaSettings:
        if self.measure == "progress" and not 0.0 <= self.threshold <= 1.0:
            raise config_error(
                f"threshold must be between 0 and 1 when measure is progress (got {self.threshold})"
            )
        return self


class Lesson(_Section):
    """One lesson of a curriculum: the parameter's value until its completion criteria hold."""

    value: Sampler
    name: str
    completion_criteria: CompletionCriteriaSettings | None = None


class EnvironmentParameterSettings(_Section):
    """One environment parameter as a list of lessons (a constant or sampler is one lesson)."""

    curriculum: Annotated[list[Lesson], Field(min_length=1)]

    @model_validator(mode="after")
    def _lessons_chain(self) -> EnvironmentParameterSettings:
        for index, lesson in enumerate(self.curriculum[:-1]):
            if lesson.completion_criteria is None:
                raise config_error(
                    f"lesson {index} ({lesson.name!r}) is not the last one, so it needs "
                    "completion_criteria"
                )
        return self


# -- command-line sections -----------------------------------------------------------------------


RAY_KEYS = ("ray_address", "ray_cpus_per_player", "ray_resources", "ray_players_per_host")


class EnvironmentSettings(_Section):
    """Which Unity player to start and how (``--env``, ``--num-envs``, ...)."""

    env_path: str | None = None
    env_args: list[str] | None = None
    base_port: Port = 5005
    num_envs: PositiveInt = 1
    num_areas: PositiveInt = 1
    timeout_wait: PositiveInt = 60
    seed: Int = -1
    max_lifetime_restarts: Int = 10
    restarts_rate_limit_n: Int = 1
    restarts_rate_limit_period_s: Int = 60
    # Players on a Ray cluster (unity_gym.ray_players): its address ("auto", "HEAD:6379",
    # "ray://HEAD:10001", or "local" for a Ray started for this run), and what each player
    # reserves on its node.
    ray_address: str | None = None
    ray_cpus_per_player: NonNegativeFloat = 1.0
    ray_resources: dict[str, PositiveFloat] | None = None
    ray_players_per_host: PositiveInt = 1

    @model_serializer(mode="wrap")
    def _mlagents_layout(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The ``ray_*`` keys (not in mlagents-learn) are written only for runs on Ray or when
        set, so mlagents-learn reads the file."""
        data: dict[str, Any] = handler(self)
        if self.ray_address is None:
            for key in RAY_KEYS:
                if key not in self.model_fields_set:
                    data.pop(key, None)
        return data

    @field_validator("num_envs")
    @classmethod
    def _one_editor(cls, value: int, info: ValidationInfo) -> int:
        if value > 1 and info.data.get("env_path") is None:
            raise config_error(
                f"num_envs is {value} but no env_path (--env) is set; the Editor is a single "
                "environment, so give a player build or set num_envs to 1"
            )
        return value


class EngineSettings(_Section):
    """Unity engine settings sent to the player (``--width``, ``--time-scale``, ...)."""

    width: Int = 84
    height: Int = 84
    quality_level: Int = 5
    time_scale: Float = 20
    target_frame_rate: Int = -1
    capture_frame_rate: Int = 60
    no_graphics: bool = False
    no_graphics_monitor: bool = False


class CheckpointSettings(_Section):
    """Run identity and where results go (``--run-id``, ``--resume``, ...)."""

    run_id: str = "ppo"
    initialize_from: str | None = None
    load_model: bool = False
    resume: bool = False
    force: bool = False
    train_model: bool = False
    inference: bool = False
    results_dir: str = "results"

    @property
    def write_path(self) -> Path:
        """``results_dir/run_id``: this run's output folder."""
        return Path(self.results_dir) / self.run_id

    @property
    def run_logs_dir(self) -> Path:
        return self.write_path / "run_logs"

    @property
    def maybe_init_path(self) -> Path | None:
        """The run folder to initialize from, if ``initialize_from`` is set."""
        if self.initialize_from is None:
            return None
        return Path(self.results_dir) / self.initialize_from


class TorchSettings(_Section):
    """``--torch-device``: e.g. ``cpu``, ``cuda``, ``cuda:0``; None picks automatically.
    ``num_threads`` (``--torch-threads``, not in mlagents-learn): torch's CPU threads; None
    takes mlagents-learn's rule (half the cores, 1 to 4) unless ``OMP_NUM_THREADS`` is set."""

    device: str | None = None
    num_threads: PositiveInt | None = None

    @model_serializer(mode="wrap")
    def _mlagents_layout(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``num_threads`` is written only when set, so mlagents-learn reads the file."""
        data: dict[str, Any] = handler(self)
        if data.get("num_threads") is None:
            data.pop("num_threads", None)
        return data


_SECTIONS = ("env_settings", "engine_settings", "checkpoint_settings", "torch_settings")
_TEAM_SUFFIX = re.compile(r"\?team=\d+$")


class RunOptions(_Section):
    """A whole training run: the YAML file's sections with command-line values folded in."""

    default_settings: TrainerSettings | None = None
    behaviors: dict[str, TrainerSettings] = Field(default_factory=dict)
    env_settings: EnvironmentSettings = Field(default_factory=EnvironmentSettings)
    engine_settings: EngineSettings = Field(default_factory=EngineSettings)
    environment_parameters: dict[str, EnvironmentParameterSettings] | None = None
    checkpoint_settings: CheckpointSettings = Field(default_factory=CheckpointSettings)
    torch_settings: TorchSettings = Field(default_factory=TorchSettings)
    debug: bool = False

    _source: Path | None = PrivateAttr(default=None)
    _require_listed: bool = PrivateAttr(default=False)

    @model_validator(mode="before")
    @classmethod
    def _apply_mlagents_rules(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section in _SECTIONS:
            if section in data and data[section] is None:
                del data[section]
        if data.get("behaviors", {}) is None:
            data["behaviors"] = {}
        behaviors = data.get("behaviors")
        if isinstance(behaviors, dict):
            behaviors = {name: {} if b is None else b for name, b in behaviors.items()}
            data["behaviors"] = _merge_default_settings(data.get("default_settings"), behaviors)
        parameters = data.get("environment_parameters")
        if isinstance(parameters, dict):
            data["environment_parameters"] = {
                name: _as_curriculum(name, value) for name, value in parameters.items()
            }
        return data

    @property
    def source(self) -> Path | None:
        """The YAML file these options came from (None: command line only)."""
        return self._source

    def settings_for(self, behavior_name: str) -> TrainerSettings:
        """The settings of a behavior as the player names it (a ``?team=N`` suffix is ignored).

        Unlisted behaviors get ``default_settings``; without those, a run that has a config file
        fails (as mlagents-learn does) and a run without one uses the defaults.
        """
        name = _TEAM_SUFFIX.sub("", behavior_name)
        if name in self.behaviors:
            return self.behaviors[name]
        if self.default_settings is not None:
            return self.default_settings.model_copy(deep=True)
        if self._require_listed:
            raise ConfigError(
                f"Behavior {name!r} is not listed in {self._source}. Add an entry for it under "
                "behaviors:, or a default_settings: section for behaviors that are not listed."
            )
        logger.warning("Behavior %r has no settings in the configuration; using defaults.", name)
        return TrainerSettings()

    def settings_key(self, behavior_name: str, key: str) -> str:
        """The dotted key a behavior's setting is written under, for messages:
        ``behaviors.<name>.<key>``, or ``default_settings.<key>`` for an unlisted behavior."""
        name = _TEAM_SUFFIX.sub("", behavior_name)
        return f"behaviors.{name}.{key}" if name in self.behaviors else f"default_settings.{key}"


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s keys laid over it; nested mappings are merged, not replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(merged.get(key), dict) and isinstance(value, Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_default_settings(default_raw: Any, behaviors: dict[Any, Any]) -> dict[Any, Any]:
    """Each behavior's keys laid over the fully resolved ``default_settings``, as ML-Agents does.

    One difference: a behavior that picks another trainer_type than the defaults does not
    inherit their hyperparameters (ML-Agents would reject the mix).
    """
    if not isinstance(default_raw, dict):
        return behaviors
    try:
        default = TrainerSettings.model_validate(default_raw).model_dump(mode="json")
    except ValidationError:
        return behaviors  # reported where default_settings itself is validated
    merged: dict[Any, Any] = {}
    for name, behavior in behaviors.items():
        if not isinstance(behavior, dict):
            merged[name] = behavior
            continue
        base = copy.deepcopy(default)
        if behavior.get("trainer_type", base["trainer_type"]) != base["trainer_type"]:
            del base["hyperparameters"]
        merged[name] = _deep_merge(base, behavior)
    return merged


def _as_curriculum(name: Any, value: Any) -> Any:
    """ML-Agents' normal form: a constant or a sampler is a curriculum of one lesson."""
    if isinstance(value, dict) and "curriculum" in value:
        return value
    return {"curriculum": [{"value": value, "name": str(name)}]}


# -- loading ---------------------------------------------------------------------------------------


def read_yaml_mapping(path: Path, what: str = "Training configuration") -> dict[str, Any]:
    """The top-level mapping of a YAML file, or a :class:`ConfigError` that says what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(file_error_message(path, what, err)) from None
    if not isinstance(data, dict):
        raise ConfigError(mapping_error_message(path, what, data))
    return data


def load_run_options(path: Path | None) -> RunOptions:
    """Load a training configuration YAML (any ML-Agents format) into resolved options.

    ``None`` gives the defaults of a run without a file. A file in an older format is converted
    in memory and one warning on the ``unity_sb3`` logger says how to upgrade it.
    """
    if path is None:
        return parse_run_options({})
    try:
        upgraded = upgrade(read_yaml_mapping(path))
    except LegacyConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if upgraded.is_legacy:
        logger.warning(upgraded.message(path))
    return parse_run_options(upgraded.config, source=path, legacy=upgraded.is_legacy)


def parse_run_options(
    data: Mapping[str, Any],
    *,
    source: Path | None = None,
    legacy: bool = False,
    origins: Mapping[str, str] | None = None,
    require_listed: bool | None = None,
) -> RunOptions:
    """Validate a current-format configuration mapping into :class:`RunOptions`.

    ``source`` names the file in messages; ``legacy`` adds that paths refer to the converted
    layout; ``origins`` maps dotted keys to the command-line flags that set them;
    ``require_listed`` (default: whether there is a file) makes unlisted behaviors an error.
    """
    try:
        options = RunOptions.model_validate(dict(data))
    except ValidationError as err:
        message = validation_error_message(err, data, RunOptions, source, legacy, origins or {})
        raise ConfigError(message) from None
    options._source = source
    options._require_listed = source is not None if require_listed is None else require_listed
    return options


# -- writing ---------------------------------------------------------------------------------------


def to_resolved_dict(options: RunOptions) -> dict[str, Any]:
    """Every setting, defaults included, in the layout and order of mlagents-learn's
    ``configuration.yaml`` (loading it again gives the same options)."""
    return options.model_dump(mode="json")


def to_resolved_yaml(options: RunOptions) -> str:
    """:func:`to_resolved_dict` as YAML text, keys in ML-Agents' order."""
    return yaml.safe_dump(to_resolved_dict(options), sort_keys=False)


# -- demonstrations ------------------------------------------------------------------------------


def demo_paths(options: RunOptions) -> list[tuple[str, str]]:
    """``(dotted key, demo_path)`` for every GAIL and behavioral-cloning demo in the options."""
    sections: list[tuple[str, TrainerSettings]] = []
    if options.default_settings is not None:
        sections.append(("default_settings", options.default_settings))
    sections += [(f"behaviors.{name}", settings) for name, settings in options.behaviors.items()]
    found = []
    for prefix, settings in sections:
        if settings.reward_signals.gail is not None:
            found.append(
                (f"{prefix}.reward_signals.gail.demo_path", settings.reward_signals.gail.demo_path)
            )
        if settings.behavioral_cloning is not None:
            found.append(
                (f"{prefix}.behavioral_cloning.demo_path", settings.behavioral_cloning.demo_path)
            )
    return found


def missing_demo_paths(options: RunOptions, base_dir: Path | None = None) -> list[str]:
    """One line per demo_path that does not exist, naming the key and the path tried.

    Relative paths are taken from ``base_dir`` (default: the current directory, as in
    mlagents-learn). A path may be a ``.demo`` file or a folder of them.
    """
    base = Path.cwd() if base_dir is None else base_dir
    missing = []
    for key, demo_path in demo_paths(options):
        tried = (base / demo_path).absolute()
        if not tried.exists():
            missing.append(f"{key}: {demo_path} (looked for {tried})")
    return missing


def check_demo_paths(options: RunOptions, base_dir: Path | None = None) -> None:
    """Raise :class:`ConfigError` naming every demo_path that does not exist."""
    missing = missing_demo_paths(options, base_dir)
    if not missing:
        return
    base = Path.cwd() if base_dir is None else base_dir
    where = f" in {options.source}" if options.source is not None else ""
    lines = "\n".join(f"  - {line}" for line in missing)
    raise ConfigError(
        f"Demonstration file(s) not found{where}:\n{lines}\nRelative demo_path values are taken "
        f"from the current directory ({base.absolute()}), as mlagents-learn does: run from the "
        "folder they are relative to, or give absolute paths."
    )
