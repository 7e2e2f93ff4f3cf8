"""Fuzzing of training configurations: current and legacy formats, mutated from the reference
files and generated from the schema, as mappings and as files on the command line (a
fixed-seed slice of ``bench/fuzz.py``; see tests/fuzzing.py)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pydantic")
pytest.importorskip("stable_baselines3")

from hypothesis import given

from tests import fuzzing
from tests.fuzzing import ci_settings


@ci_settings(120)
@given(fuzzing.mutated_configs(fuzzing.CURRENT_CONFIGS))
def test_mutated_configs_parse_or_raise_config_errors(config: fuzzing.MutatedConfig) -> None:
    fuzzing.check_mutated_config(config)


@ci_settings(100)
@given(fuzzing.schema_configs())
def test_schema_generated_configs_parse_or_raise_config_errors(data: dict[str, Any]) -> None:
    fuzzing.check_config_mapping(data)


@ci_settings(100)
@given(fuzzing.legacy_inputs())
def test_mutated_legacy_configs_upgrade_or_raise_clear_errors(value: fuzzing.LegacyInput) -> None:
    fuzzing.check_legacy(value)


@ci_settings(60)
@given(fuzzing.config_files())
def test_mutated_config_files_on_the_command_line(files: fuzzing.ConfigFiles) -> None:
    fuzzing.check_config_files(files)


@pytest.mark.parametrize("sampler_type", [{"a": 1}, ["uniform"], None, 3])
def test_sampler_type_of_any_yaml_type_is_a_config_error(sampler_type: Any) -> None:
    """The defect found by the manual fuzz: a mapping or list raised TypeError (unhashable)."""
    from cli.config_errors import ConfigError
    from cli.training_config import parse_run_options

    data = {"environment_parameters": {"mass": {"sampler_type": sampler_type}}}
    with pytest.raises(ConfigError, match=r"environment_parameters\.mass\.sampler_type"):
        parse_run_options(data)
