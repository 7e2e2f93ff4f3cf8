"""Old ML-Agents configuration formats: conversion, warnings, and `unity-sb3 upgrade-config`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("pydantic")

import yaml

from cli import legacy_config
from cli.config_errors import ConfigError
from cli.legacy_config import LegacyConfigError, upgrade
from cli.main import main
from cli.training_config import (
    ConstantSampler,
    GaussianSampler,
    MultiRangeUniformSampler,
    NetworkSettings,
    PPOSettings,
    RunOptions,
    SACSettings,
    TrainerSettings,
    UniformSampler,
    load_run_options,
    parse_run_options,
    read_yaml_mapping,
    to_resolved_dict,
)
from tests.conftest import FIXTURES

LEGACY = FIXTURES / "configs" / "legacy"


def _constant(sampler: object) -> float:
    assert isinstance(sampler, ConstantSampler)
    return sampler.sampler_parameters.value


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "unity_sb3"]


def test_key_tables_match_the_schema() -> None:
    assert set(RunOptions.model_fields) == legacy_config.CURRENT_TOP_LEVEL_KEYS
    assert set(PPOSettings.model_fields) == legacy_config.HYPERPARAMETER_KEYS["ppo"]
    assert set(SACSettings.model_fields) == legacy_config.HYPERPARAMETER_KEYS["sac"]
    assert set(NetworkSettings.model_fields) - {"memory"} == legacy_config.NETWORK_KEYS
    assert (
        set(TrainerSettings.model_fields)
        - {
            "trainer_type",
            "hyperparameters",
            "network_settings",
        }
        == legacy_config.TRAINER_KEYS
    )


# -- pre-0.17 trainer configuration -------------------------------------------------------------


def test_pre_017_trainer_config_loads_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    path = LEGACY / "trainer_config.yaml"
    with caplog.at_level(logging.WARNING, logger="unity_sb3"):
        options = load_run_options(path)
    assert _warnings(caplog) == [
        f"{path} uses an old ML-Agents format (pre-0.17 trainer configuration (behaviors at the "
        "top level)), converted in memory. To convert it for good, run: unity-sb3 upgrade-config "
        f"{path} -o NEW.yaml"
    ]
    assert list(options.behaviors) == ["3DBall", "Basic", "Pyramids", "Hallway", "Tennis"]

    ball = options.behaviors["3DBall"]
    assert isinstance(ball.hyperparameters, PPOSettings)
    assert ball.hyperparameters.batch_size == 64
    assert ball.hyperparameters.buffer_size == 12000
    assert (ball.hyperparameters.lambd, ball.hyperparameters.beta) == (0.99, 0.001)
    assert ball.hyperparameters.learning_rate == 3.0e-4  # from default:
    assert ball.network_settings.normalize is True
    assert ball.network_settings.memory is None
    assert (ball.max_steps, ball.time_horizon, ball.summary_freq) == (500000, 1000, 12000)

    basic = options.behaviors["Basic"]
    assert (basic.network_settings.num_layers, basic.network_settings.hidden_units) == (1, 20)
    assert basic.reward_signals.extrinsic is not None
    assert basic.reward_signals.extrinsic.gamma == 0.9

    pyramids = options.behaviors["Pyramids"]
    assert pyramids.max_steps == 10_000_000
    curiosity = pyramids.reward_signals.curiosity
    assert curiosity is not None and curiosity.encoding_size == 256
    assert curiosity.network_settings.hidden_units == 256

    hallway = options.behaviors["Hallway"].network_settings.memory
    assert hallway is not None and (hallway.sequence_length, hallway.memory_size) == (64, 128)

    tennis = options.behaviors["Tennis"]
    assert isinstance(tennis.hyperparameters, PPOSettings)
    assert tennis.hyperparameters.learning_rate_schedule == "constant"
    assert tennis.hyperparameters.beta_schedule == "constant"  # follows, as in ML-Agents
    assert tennis.self_play is not None
    assert (tennis.self_play.swap_steps, tennis.self_play.team_change) == (50000, 100000)

    # default: becomes default_settings, so unlisted behaviors still get it.
    assert options.default_settings is not None
    unlisted = options.settings_for("Walker")
    assert unlisted.hyperparameters.batch_size == 1024
    assert unlisted.summary_freq == 10000


def test_flat_behavior_conversion_details() -> None:
    warnings: list[str] = []
    converted = legacy_config.convert_flat_behavior(
        "Crawler",
        {
            "trainer": "sac",
            "batch_size": 256,
            "tau": 0.01,
            "beta": 0.1,
            "hidden_units": 64,
            "use_recurrent": True,
            "max_steps": "1e6",
            "summary_path": "old",
        },
        warnings,
    )
    assert converted == {
        "trainer_type": "sac",
        "hyperparameters": {"batch_size": 256, "tau": 0.01},
        "network_settings": {
            "hidden_units": 64,
            "memory": {"sequence_length": 64, "memory_size": 128},
        },
        "max_steps": 1000000,
    }
    assert warnings == [
        "Crawler: ignored beta, summary_path (no such setting for a sac trainer in the current "
        "format)"
    ]
    with pytest.raises(LegacyConfigError) as caught:
        legacy_config.convert_flat_behavior("A", {"trainer": "offline_bc"}, [])
    assert str(caught.value) == (
        "behavior A uses trainer: offline_bc, which no longer exists; use trainer_type ppo or sac "
        "with a behavioral_cloning: section (and a gail reward signal) instead"
    )


def test_nested_sections_that_default_settings_would_extend_are_reported() -> None:
    result = upgrade(
        {
            "default": {"trainer": "ppo", "reward_signals": {"extrinsic": {}, "curiosity": {}}},
            "A": {"reward_signals": {"extrinsic": {"gamma": 0.9}}},
        }
    )
    assert result.warnings == (
        "A: its own reward_signals replaced the default: one in the old format, but "
        "default_settings now adds curiosity to it; give A every reward_signals entry it needs or "
        "remove those from default_settings",
    )


# -- pre-0.17 curriculum and sampler files ---------------------------------------------------------


def test_wall_jump_curriculum_file_converts() -> None:
    result = upgrade({}, curriculum=read_yaml_mapping(LEGACY / "wall_jump_curriculum.yaml"))
    assert result.legacy_formats == (legacy_config.CURRICULUM_FILE,)
    parameters = result.config["environment_parameters"]
    assert list(parameters) == ["big_wall_min_height", "big_wall_max_height", "small_wall_height"]
    assert parameters["big_wall_min_height"]["curriculum"][0] == {
        "name": "Lesson0",
        "completion_criteria": {
            "measure": "progress",
            "behavior": "BigWallJump",
            "signal_smoothing": True,
            "min_lesson_length": 100,
            "threshold": 0.1,
        },
        "value": 0.0,
    }
    options = parse_run_options(result.config)
    assert options.environment_parameters is not None
    for name, behavior, values in [
        ("big_wall_min_height", "BigWallJump", [0.0, 4.0, 6.0, 8.0]),
        ("big_wall_max_height", "BigWallJump", [4.0, 7.0, 8.0, 8.0]),
        ("small_wall_height", "SmallWallJump", [1.5, 2.0, 2.5, 4.0]),
    ]:
        lessons = options.environment_parameters[name].curriculum
        assert [lesson.name for lesson in lessons] == ["Lesson0", "Lesson1", "Lesson2", "Lesson3"]
        assert [_constant(lesson.value) for lesson in lessons] == values
        criteria = [lesson.completion_criteria for lesson in lessons[:-1]]
        assert [c.threshold for c in criteria if c] == [0.1, 0.3, 0.5]
        assert {(c.behavior, c.measure, c.min_lesson_length) for c in criteria if c} == {
            (behavior, "progress", 100)
        }
        assert lessons[-1].completion_criteria is None


def test_curriculum_defaults_and_errors() -> None:
    converted = legacy_config.curriculum_to_parameters(
        {"A": {"measure": "reward", "thresholds": [5], "parameters": {"p": [1, 2]}}}, []
    )
    criteria = converted["p"]["curriculum"][0]["completion_criteria"]
    assert (criteria["min_lesson_length"], criteria["signal_smoothing"]) == (1, False)
    with pytest.raises(LegacyConfigError) as caught:
        legacy_config.curriculum_to_parameters(
            {"A": {"measure": "reward", "thresholds": [5, 6], "parameters": {"p": [1, 2]}}}, []
        )
    assert str(caught.value) == (
        "curriculum of A: parameter p has 2 value(s) but 2 threshold(s) make 3 lessons; give one "
        "value per lesson"
    )
    with pytest.raises(LegacyConfigError) as caught:
        legacy_config.curriculum_to_parameters({"A": {"thresholds": []}}, [])
    assert str(caught.value) == "the curriculum of A lacks measure, parameters"


def test_3dball_sampler_file_converts() -> None:
    result = upgrade({}, sampler=read_yaml_mapping(LEGACY / "3dball_sampler.yaml"))
    assert result.warnings == (
        "resampling-interval (5000) is ignored: the player now draws a new value each time it "
        "reads the parameter (usually at every episode start)",
    )
    assert result.config["environment_parameters"]["gravity"] == {
        "sampler_type": "multirangeuniform",
        "sampler_parameters": {"intervals": [[7, 10], [15, 20]]},
    }
    parameters = parse_run_options(result.config).environment_parameters
    assert parameters is not None
    mass = parameters["mass"].curriculum[0].value
    assert isinstance(mass, UniformSampler)
    assert (mass.sampler_parameters.min_value, mass.sampler_parameters.max_value) == (0.5, 10.0)
    gravity = parameters["gravity"].curriculum[0].value
    assert isinstance(gravity, MultiRangeUniformSampler)
    assert gravity.sampler_parameters.intervals == [(7.0, 10.0), (15.0, 20.0)]
    scale = parameters["scale"].curriculum[0].value
    assert isinstance(scale, GaussianSampler)
    assert (scale.sampler_parameters.mean, scale.sampler_parameters.st_dev) == (2.0, 0.3)


def test_sampler_wins_over_curriculum_for_the_same_parameter() -> None:
    result = upgrade(
        {"behaviors": {"A": {}}, "environment_parameters": {"mass": 1.0, "other": 2.0}},
        curriculum={"A": {"measure": "reward", "thresholds": [1], "parameters": {"mass": [1, 2]}}},
        sampler={"mass": {"sampler-type": "uniform", "min_value": 1, "max_value": 2}},
    )
    assert result.warnings == (
        "parameter mass has both a sampler and a curriculum; the sampler is kept and the "
        "curriculum ignored (as ML-Agents' upgrade script does)",
        "environment_parameters.mass is replaced by the old-format definition",
    )
    assert result.config["environment_parameters"] == {
        "mass": {"sampler_type": "uniform", "sampler_parameters": {"min_value": 1, "max_value": 2}},
        "other": 2.0,
    }


@pytest.mark.parametrize(
    ("name", "flag"),
    [("wall_jump_curriculum.yaml", "--curriculum"), ("3dball_sampler.yaml", "--sampler")],
)
def test_curriculum_or_sampler_file_given_as_trainer_config(name: str, flag: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_options(LEGACY / name)
    kind = "curriculum" if flag == "--curriculum" else "sampler"
    assert str(caught.value) == (
        f"{LEGACY / name}: this is a pre-0.17 {kind} file, not a trainer configuration; pass it "
        f"with {flag} next to the trainer configuration"
    )


# -- the 0.17 layout ---------------------------------------------------------------------------


def test_v017_config_loads_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    path = LEGACY / "3DBall_randomize_v017.yaml"
    with caplog.at_level(logging.WARNING, logger="unity_sb3"):
        options = load_run_options(path)
    assert _warnings(caplog) == [
        f"{path} uses an old ML-Agents format ({legacy_config.FLAT_BEHAVIORS}; "
        f"{legacy_config.PARAMETER_RANDOMIZATION_SECTION}), converted in memory. To convert it "
        f"for good, run: unity-sb3 upgrade-config {path} -o NEW.yaml\n"
        "  - resampling-interval (2000) is ignored: the player now draws a new value each time "
        "it reads the parameter (usually at every episode start)"
    ]
    ball = options.behaviors["3DBall"]
    assert ball.hyperparameters.batch_size == 64
    assert ball.network_settings.normalize is True
    assert ball.max_steps == 500000
    assert options.environment_parameters is not None
    bounds = {}
    for name, parameter in options.environment_parameters.items():
        sampler = parameter.curriculum[0].value
        assert isinstance(sampler, UniformSampler)
        bounds[name] = (sampler.sampler_parameters.min_value, sampler.sampler_parameters.max_value)
    assert bounds == {"mass": (0.5, 10.0), "gravity": (7.0, 12.0), "scale": (0.75, 3.0)}


def test_current_format_is_left_alone() -> None:
    config = yaml.safe_load((FIXTURES / "configs" / "ppo" / "3DBall.yaml").read_text())
    result = upgrade(config)
    assert not result.is_legacy and result.warnings == () and result.config == config
    framework = upgrade({"behaviors": {"A": {"trainer_type": "ppo", "framework": "tensorflow"}}})
    assert framework.legacy_formats == (legacy_config.FRAMEWORK_KEY,)
    assert framework.config == {"behaviors": {"A": {"trainer_type": "ppo"}}}


# -- unity-sb3 upgrade-config ----------------------------------------------------------------------


def test_upgrade_config_command_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "new.yaml"
    argv = [
        "upgrade-config",
        str(LEGACY / "trainer_config.yaml"),
        "--curriculum",
        str(LEGACY / "wall_jump_curriculum.yaml"),
        "--sampler",
        str(LEGACY / "3dball_sampler.yaml"),
        "-o",
        str(output),
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out == (
        f"Wrote {output}, converted from: {legacy_config.PRE_017_TRAINER_CONFIG}; "
        f"{legacy_config.SAMPLER_FILE}; {legacy_config.CURRICULUM_FILE}.\n"
    )
    assert err.startswith("unity-sb3 upgrade-config: warning: resampling-interval (5000)")
    assert output.read_text().startswith("# Converted by `unity-sb3 upgrade-config` from ")

    with caplog.at_level(logging.WARNING, logger="unity_sb3"):
        written = load_run_options(output)
    assert _warnings(caplog) == []
    in_memory = upgrade(
        read_yaml_mapping(LEGACY / "trainer_config.yaml"),
        curriculum=read_yaml_mapping(LEGACY / "wall_jump_curriculum.yaml"),
        sampler=read_yaml_mapping(LEGACY / "3dball_sampler.yaml"),
    )
    assert to_resolved_dict(written) == to_resolved_dict(parse_run_options(in_memory.config))
    assert written.behaviors["3DBall"].hyperparameters.batch_size == 64
    assert written.environment_parameters is not None
    assert set(written.environment_parameters) == {
        "mass",
        "gravity",
        "scale",
        "big_wall_min_height",
        "big_wall_max_height",
        "small_wall_height",
    }

    # An existing output is kept unless --force.
    output.write_text("keep me\n")
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"unity-sb3 upgrade-config: error: {output} exists; pass --force to overwrite it or pick "
        "another -o\n"
    )
    assert output.read_text() == "keep me\n"
    assert main([*argv, "--force"]) == 0
    assert load_run_options(output).behaviors["Basic"].hyperparameters.batch_size == 32


def test_upgrade_config_command_on_current_and_broken_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = FIXTURES / "configs" / "ppo" / "3DBall.yaml"
    output = tmp_path / "same.yaml"
    assert main(["upgrade-config", str(current), "-o", str(output)]) == 0
    assert capsys.readouterr().out == (
        f"Wrote {output}; {current} was already in the current format.\n"
    )
    assert to_resolved_dict(load_run_options(output)) == to_resolved_dict(load_run_options(current))

    broken = tmp_path / "broken.yaml"
    broken.write_text("default:\n  trainer: ppo\n  batch_size: many\n")
    assert main(["upgrade-config", str(broken), "-o", str(tmp_path / "out.yaml")]) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'out.yaml'} was written but does not load yet:\n" in err
    assert (
        "  - default_settings.hyperparameters.batch_size: got 'many' (text), expected an integer\n"
        in err
    )

    missing = tmp_path / "missing.yaml"
    assert main(["upgrade-config", str(missing), "-o", str(tmp_path / "x.yaml")]) == 1
    assert capsys.readouterr().err.startswith(
        f"unity-sb3 upgrade-config: error: Training configuration file {missing} does not exist"
    )
