"""Older ML-Agents configuration formats, converted to the current (release 21) one.

Four formats that users still have are recognised:

- the pre-0.17 trainer configuration: behavior names at the top level with flat keys
  (``trainer: ppo``, ``batch_size``, ``use_recurrent``, ...) and an optional ``default:`` section
  that every behavior starts from;
- the pre-0.17 ``--curriculum`` file: per behavior, ``measure``, ``thresholds``,
  ``min_lesson_length``, ``signal_smoothing`` and ``parameters`` (one value per lesson);
- the pre-0.17 ``--sampler`` file: ``resampling-interval`` and, per parameter, ``sampler-type``
  with its arguments;
- the 0.17/0.18 layout: ``behaviors:`` (possibly still with flat keys) next to top-level
  ``parameter_randomization:`` and ``curriculum:`` sections.

The conversion is pure: :func:`upgrade` returns the converted mapping together with the
warnings meant for the user, and the caller shows them (the config loader logs one warning on the
``unity_sb3`` logger; ``unity-sb3 upgrade-config`` prints them). Values are moved, not checked:
:mod:`cli.training_config` validates the result.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CURRENT_TOP_LEVEL_KEYS = frozenset(
    {
        "default_settings",
        "behaviors",
        "env_settings",
        "engine_settings",
        "environment_parameters",
        "checkpoint_settings",
        "torch_settings",
        "debug",
    }
)
HYPERPARAMETER_KEYS: dict[str, frozenset[str]] = {
    "ppo": frozenset(
        {
            "batch_size",
            "buffer_size",
            "learning_rate",
            "beta",
            "epsilon",
            "lambd",
            "num_epoch",
            "shared_critic",
            "learning_rate_schedule",
            "beta_schedule",
            "epsilon_schedule",
        }
    ),
    "sac": frozenset(
        {
            "learning_rate",
            "learning_rate_schedule",
            "batch_size",
            "buffer_size",
            "buffer_init_steps",
            "tau",
            "steps_per_update",
            "save_replay_buffer",
            "init_entcoef",
            "reward_signal_steps_per_update",
        }
    ),
}
NETWORK_KEYS = frozenset(
    {
        "normalize",
        "hidden_units",
        "num_layers",
        "vis_encode_type",
        "goal_conditioning_type",
        "deterministic",
    }
)
TRAINER_KEYS = frozenset(
    {
        "checkpoint_interval",
        "reward_signals",
        "init_path",
        "keep_checkpoints",
        "even_checkpoints",
        "max_steps",
        "time_horizon",
        "summary_freq",
        "threaded",
        "self_play",
        "behavioral_cloning",
    }
)
_RECURRENT_KEYS = frozenset({"use_recurrent", "sequence_length", "memory_size"})
_FLAT_ONLY_KEYS = (
    HYPERPARAMETER_KEYS["ppo"] | HYPERPARAMETER_KEYS["sac"] | NETWORK_KEYS | _RECURRENT_KEYS
)
_IMITATION_TRAINERS = frozenset({"offline_bc", "online_bc", "imitation"})
_CURRICULUM_KEYS = ("measure", "thresholds", "min_lesson_length", "signal_smoothing", "parameters")

PRE_017_TRAINER_CONFIG = "pre-0.17 trainer configuration (behaviors at the top level)"
FLAT_BEHAVIORS = "0.17 behaviors with flat keys (trainer:, batch_size: ... under the behavior)"
FRAMEWORK_KEY = "the obsolete framework: key"
PARAMETER_RANDOMIZATION_SECTION = "0.17/0.18 parameter_randomization: section"
CURRICULUM_SECTION = "0.17/0.18 curriculum: section"
SAMPLER_FILE = "pre-0.17 --sampler file"
CURRICULUM_FILE = "pre-0.17 --curriculum file"


class LegacyConfigError(ValueError):
    """An old-format file that cannot be converted; the message says which key and why."""


@dataclass(frozen=True)
class Upgrade:
    """The outcome of :func:`upgrade`: the current-format mapping and what was changed."""

    config: dict[str, Any]
    legacy_formats: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def is_legacy(self) -> bool:
        """Whether anything had to be converted."""
        return bool(self.legacy_formats)

    def message(
        self,
        config_path: Path | str | None,
        curriculum_path: Path | str | None = None,
        sampler_path: Path | str | None = None,
    ) -> str:
        """One user-facing warning: what was converted, the command that converts it for good,
        and the details."""
        files = [str(p) for p in (config_path, curriculum_path, sampler_path) if p is not None]
        what = " and ".join(files) or "The configuration"
        formats = "; ".join(self.legacy_formats)
        if config_path is None:
            advice = (
                "Move the converted settings into a training configuration file; "
                "`unity-sb3 upgrade-config CONFIG --curriculum ... --sampler ... -o NEW.yaml` "
                "writes one."
            )
        else:
            command = ["unity-sb3", "upgrade-config", str(config_path)]
            if curriculum_path is not None:
                command += ["--curriculum", str(curriculum_path)]
            if sampler_path is not None:
                command += ["--sampler", str(sampler_path)]
            command += ["-o", "NEW.yaml"]
            advice = f"To convert it for good, run: {shlex.join(command)}"
        details = "".join(f"\n  - {warning}" for warning in self.warnings)
        return (
            f"{what} use{'s' if len(files) < 2 else ''} an old ML-Agents format ({formats}), "
            f"converted in memory. {advice}{details}"
        )


def upgrade(
    config: Mapping[str, Any],
    curriculum: Mapping[str, Any] | None = None,
    sampler: Mapping[str, Any] | None = None,
) -> Upgrade:
    """Convert a trainer configuration (any format) and optional pre-0.17 curriculum and sampler
    files into one current-format mapping.

    A parameter given both a sampler and a curriculum keeps the sampler (as ML-Agents' upgrade
    script does); parameters from legacy sections or files replace same-named entries of an
    existing ``environment_parameters`` section. Both cases are reported as warnings.
    """
    _refuse_misplaced_files(config)
    warnings: list[str] = []
    formats: list[str] = []
    result = copy.deepcopy(dict(config))
    if _is_pre_017_trainer_config(result):
        formats.append(PRE_017_TRAINER_CONFIG)
        result = _convert_pre_017(result, warnings)
    else:
        _convert_flat_sections(result, formats, warnings)

    samplers: dict[str, Any] = {}
    curricula: dict[str, Any] = {}
    if "parameter_randomization" in result:
        formats.append(PARAMETER_RANDOMIZATION_SECTION)
        section = result.pop("parameter_randomization")
        _take(samplers, sampler_to_parameters(section or {}, warnings), "parameter_randomization")
    if sampler is not None:
        formats.append(SAMPLER_FILE)
        _take(samplers, sampler_to_parameters(sampler, warnings), "the --sampler file", warnings)
    if "curriculum" in result:
        formats.append(CURRICULUM_SECTION)
        section = result.pop("curriculum")
        _take(curricula, curriculum_to_parameters(section or {}, warnings), "curriculum")
    if curriculum is not None:
        formats.append(CURRICULUM_FILE)
        converted = curriculum_to_parameters(curriculum, warnings)
        _take(curricula, converted, "the --curriculum file", warnings)

    legacy_parameters = dict(samplers)
    for name, value in curricula.items():
        if name in samplers:
            warnings.append(
                f"parameter {name} has both a sampler and a curriculum; the sampler is kept "
                "and the curriculum ignored (as ML-Agents' upgrade script does)"
            )
        else:
            legacy_parameters[name] = value
    if legacy_parameters:
        existing = result.get("environment_parameters")
        parameters = dict(existing) if isinstance(existing, Mapping) else {}
        for name in legacy_parameters:
            if name in parameters:
                warnings.append(
                    f"environment_parameters.{name} is replaced by the old-format definition"
                )
        parameters.update(legacy_parameters)
        result["environment_parameters"] = parameters
    return Upgrade(result, tuple(formats), tuple(warnings))


def _take(
    target: dict[str, Any],
    parameters: dict[str, Any],
    label: str,
    warnings: list[str] | None = None,
) -> None:
    for name, value in parameters.items():
        if name in target and warnings is not None:
            warnings.append(f"parameter {name} from {label} replaces the one in the config file")
        target[name] = value


def _refuse_misplaced_files(config: Mapping[str, Any]) -> None:
    """A curriculum or sampler file given where the trainer configuration goes."""
    sections = list(config.values())
    mappings = bool(sections) and all(isinstance(s, Mapping) for s in sections)
    if "resampling-interval" in config or (mappings and all("sampler-type" in s for s in sections)):
        raise LegacyConfigError(
            "this is a pre-0.17 sampler file, not a trainer configuration; pass it with "
            "--sampler next to the trainer configuration"
        )
    if mappings and all("thresholds" in s and "parameters" in s for s in sections):
        raise LegacyConfigError(
            "this is a pre-0.17 curriculum file, not a trainer configuration; pass it with "
            "--curriculum next to the trainer configuration"
        )


# -- trainer settings ------------------------------------------------------------------------------


def _is_flat_behavior(section: Any) -> bool:
    if not isinstance(section, Mapping) or "trainer_type" in section:
        return False
    return "trainer" in section or bool(_FLAT_ONLY_KEYS & set(section))


def _is_pre_017_trainer_config(config: Mapping[str, Any]) -> bool:
    if not config:
        return False
    newer = CURRENT_TOP_LEVEL_KEYS | {"curriculum", "parameter_randomization"}
    if any(key in newer for key in config):
        return False
    if not all(section is None or isinstance(section, Mapping) for section in config.values()):
        return False
    return "default" in config or any(_is_flat_behavior(s) for s in config.values())


def convert_flat_behavior(
    name: str, flat: Mapping[str, Any], warnings: list[str]
) -> dict[str, Any]:
    """One behavior's flat (pre-0.18) settings in the current nested layout.

    Hyperparameter keys of the behavior's trainer go to ``hyperparameters``, network keys to
    ``network_settings`` (``use_recurrent`` with ``sequence_length``/``memory_size`` becomes
    ``memory``), trainer keys stay; anything else is dropped with a warning.
    """
    flat = copy.deepcopy(dict(flat))
    trainer = flat.get("trainer", "ppo")
    if isinstance(trainer, str) and trainer in _IMITATION_TRAINERS:
        raise LegacyConfigError(
            f"behavior {name} uses trainer: {trainer}, which no longer exists; use trainer_type "
            "ppo or sac with a behavioral_cloning: section (and a gail reward signal) instead"
        )
    if "trainer" not in flat:
        warnings.append(f"{name}: no trainer: key; using ppo")
    converted: dict[str, Any] = {"trainer_type": trainer}
    hyperparameter_keys = HYPERPARAMETER_KEYS.get(str(trainer), HYPERPARAMETER_KEYS["ppo"])
    hyperparameters = {k: _number(v) for k, v in flat.items() if k in hyperparameter_keys}
    if trainer == "ppo" and "learning_rate_schedule" in hyperparameters:
        # Old PPO decayed beta and epsilon with the learning rate; say so explicitly, since
        # default_settings would otherwise supply its own resolved schedules.
        hyperparameters.setdefault("beta_schedule", hyperparameters["learning_rate_schedule"])
        hyperparameters.setdefault("epsilon_schedule", hyperparameters["learning_rate_schedule"])
    if hyperparameters:
        converted["hyperparameters"] = hyperparameters
    network = {k: v for k, v in flat.items() if k in NETWORK_KEYS}
    if flat.get("use_recurrent"):
        network["memory"] = {
            "sequence_length": flat.get("sequence_length", 64),
            "memory_size": flat.get("memory_size", 128),
        }
    if network:
        converted["network_settings"] = network
    converted.update((k, _number(v)) for k, v in flat.items() if k in TRAINER_KEYS)
    used = {"trainer"} | hyperparameter_keys | NETWORK_KEYS | _RECURRENT_KEYS | TRAINER_KEYS
    ignored = [str(k) for k in flat if k not in used]
    if ignored:
        warnings.append(
            f"{name}: ignored {', '.join(ignored)} (no such setting for a {trainer} trainer in "
            "the current format)"
        )
    return converted


def _number(value: Any) -> Any:
    """``5.0e5`` and ``1e7`` as numbers: PyYAML reads exponents without a sign as text."""
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number


def _convert_pre_017(config: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Behaviors start from a shallow copy of ``default:``, as the old trainer did; ``default:``
    itself becomes ``default_settings`` so that unlisted behaviors still get it."""
    default = dict(config.get("default") or {})
    behaviors: dict[str, Any] = {}
    for name, section in config.items():
        if name == "default":
            continue
        own = dict(section or {})
        behaviors[str(name)] = convert_flat_behavior(str(name), {**default, **own}, warnings)
        for key in ("reward_signals", "self_play", "behavioral_cloning"):
            extra = _keys_added_by_default(default.get(key), own.get(key))
            if extra:
                warnings.append(
                    f"{name}: its own {key} replaced the default: one in the old format, but "
                    f"default_settings now adds {', '.join(extra)} to it; give {name} every "
                    f"{key} entry it needs or remove those from default_settings"
                )
    converted: dict[str, Any] = {}
    if "default" in config:
        converted["default_settings"] = convert_flat_behavior("default", default, warnings)
    converted["behaviors"] = behaviors
    return converted


def _keys_added_by_default(default: Any, own: Any) -> list[str]:
    if not isinstance(default, Mapping) or not isinstance(own, Mapping):
        return []
    return [str(key) for key in default if key not in own]


def _convert_flat_sections(config: dict[str, Any], formats: list[str], warnings: list[str]) -> None:
    sections: list[tuple[str, dict[str, Any], Any]] = []
    if isinstance(config.get("default_settings"), Mapping):
        sections.append(("default_settings", config, "default_settings"))
    behaviors = config.get("behaviors")
    if isinstance(behaviors, dict):
        sections += [(str(name), behaviors, name) for name in behaviors]
    flat_found = framework_found = False
    for label, owner, key in sections:
        section = owner[key]
        if not isinstance(section, Mapping):
            continue
        if _is_flat_behavior(section):
            flat_found = True
            owner[key] = convert_flat_behavior(label, section, warnings)
        elif "framework" in section:
            framework_found = True
            owner[key] = {k: v for k, v in section.items() if k != "framework"}
            warnings.append(f"{label}: dropped framework: {section['framework']} (PyTorch only)")
    if flat_found:
        formats.append(FLAT_BEHAVIORS)
    if framework_found:
        formats.append(FRAMEWORK_KEY)


# -- environment parameters ------------------------------------------------------------------------


def sampler_to_parameters(sampler: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """A pre-0.17 sampler file (or 0.17 ``parameter_randomization``) as environment parameters."""
    if not isinstance(sampler, Mapping):
        raise LegacyConfigError("the sampler settings must be a mapping of parameter names")
    parameters: dict[str, Any] = {}
    for name, spec in sampler.items():
        if name == "resampling-interval":
            warnings.append(
                f"resampling-interval ({spec}) is ignored: the player now draws a new value "
                "each time it reads the parameter (usually at every episode start)"
            )
            continue
        if not isinstance(spec, Mapping):
            parameters[str(name)] = spec  # a plain value: a constant, already current
            continue
        rest = dict(spec)
        kind = rest.pop("sampler-type", None)
        kind = rest.pop("sampler_type", kind)
        if kind is None:
            raise LegacyConfigError(
                f"sampler {name} has no sampler-type; give one of uniform, gaussian, "
                "multirange_uniform"
            )
        nested = rest.pop("sampler_parameters", None)
        arguments = dict(nested) if isinstance(nested, Mapping) else {}
        arguments.update(rest)
        kind = "multirangeuniform" if kind == "multirange_uniform" else kind
        parameters[str(name)] = {"sampler_type": kind, "sampler_parameters": arguments}
    return parameters


def curriculum_to_parameters(curriculum: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """A pre-0.17 curriculum (per behavior) as one lesson list per environment parameter.

    Lesson ``i`` ends when the behavior's ``measure`` passes ``thresholds[i]``; old defaults
    apply (``min_lesson_length`` 1, ``signal_smoothing`` false). A parameter named by two
    behaviors keeps the first one's curriculum.
    """
    if not isinstance(curriculum, Mapping):
        raise LegacyConfigError("the curriculum must be a mapping of behavior names")
    parameters: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for behavior, spec in curriculum.items():
        if not isinstance(spec, Mapping):
            raise LegacyConfigError(f"the curriculum of {behavior} must be a mapping")
        missing = [key for key in ("measure", "thresholds", "parameters") if key not in spec]
        if missing:
            raise LegacyConfigError(f"the curriculum of {behavior} lacks {', '.join(missing)}")
        thresholds, values_by_name = spec["thresholds"], spec["parameters"]
        if not isinstance(thresholds, list):
            raise LegacyConfigError(f"thresholds of {behavior} must be a list")
        if not isinstance(values_by_name, Mapping):
            raise LegacyConfigError(f"parameters of {behavior} must map names to value lists")
        ignored = [str(key) for key in spec if key not in _CURRICULUM_KEYS]
        if ignored:
            warnings.append(f"curriculum of {behavior}: ignored {', '.join(ignored)}")
        criteria = {
            "measure": spec["measure"],
            "behavior": str(behavior),
            "signal_smoothing": spec.get("signal_smoothing", False),
            "min_lesson_length": spec.get("min_lesson_length", 1),
        }
        for name, values in values_by_name.items():
            if not isinstance(values, list) or len(values) != len(thresholds) + 1:
                count = len(values) if isinstance(values, list) else 1
                raise LegacyConfigError(
                    f"curriculum of {behavior}: parameter {name} has {count} value(s) but "
                    f"{len(thresholds)} threshold(s) make {len(thresholds) + 1} lessons; give "
                    "one value per lesson"
                )
            if name in parameters:
                warnings.append(
                    f"parameter {name} is in the curricula of {owners[name]} and {behavior}; "
                    f"keeping {owners[name]}'s"
                )
                continue
            lessons: list[dict[str, Any]] = []
            for index, value in enumerate(values):
                lesson: dict[str, Any] = {"name": f"Lesson{index}"}
                if index < len(thresholds):
                    lesson["completion_criteria"] = {**criteria, "threshold": thresholds[index]}
                lesson["value"] = value
                lessons.append(lesson)
            parameters[str(name)] = {"curriculum": lessons}
            owners[str(name)] = str(behavior)
    return parameters
