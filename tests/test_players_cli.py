"""Player registry, the player's command line, and the `envs` and `env-executable` commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli import env_executable_command
from cli.main import main
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.players import UnknownPlayerError, get_player, list_players
from unity_gym.players.academy import Academy
from unity_gym.players.ball3d import DEFAULT_GRAVITY, DEFAULT_MASS, DEFAULT_SCALE
from unity_gym.players.channels import EnvironmentParameters, PlayerChannels
from unity_gym.players.options import OptionsError, parse_player_args
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler

pytestmark = pytest.mark.protocol


# -- registry ------------------------------------------------------------------------------


def test_registry_lists_players_with_specs() -> None:
    players = {p.name: p for p in list_players()}
    assert list(players) == [
        "Basic",
        "3DBall",
        "GridWorld",
        "Tennis",
        "Pyramids",
        "StrikersVsGoalie",
        "WallJump",
    ]
    ball = players["3DBall"].behaviors[0]
    assert (ball.name, ball.agents_per_area, ball.decision_period, ball.max_step) == (
        "3DBall?team=0",
        12,
        5,
        5000,
    )
    assert players["GridWorld"].behavior_specs["GridWorld?team=0"].observation_specs[0].shape == (
        3,
        64,
        84,
    )


def test_get_player_is_case_insensitive_and_unknown_names_list_valid_ones() -> None:
    assert get_player("3dball").name == "3DBall"
    with pytest.raises(
        UnknownPlayerError,
        match="valid names: Basic, 3DBall, GridWorld, Tennis, Pyramids, StrikersVsGoalie, WallJump",
    ):
        get_player("Walker")


class RecordingParameters(EnvironmentParameters):
    """Environment parameters that remember every key a task asks about, with the defaults
    it passes."""

    def __init__(self) -> None:
        super().__init__()
        self.read: dict[str, set[float]] = {}

    def __contains__(self, key: object) -> bool:
        self.read.setdefault(str(key), set())
        return super().__contains__(key)

    def get(self, key: str, default: float) -> float:
        self.read.setdefault(key, set()).add(default)
        return super().get(key, default)

    def sample(self, key: str, default: float, count: int) -> np.ndarray:
        self.read.setdefault(key, set()).add(default)
        return super().sample(key, default, count)


def _play(player: str, set_defaults: bool) -> tuple[dict[str, set[float]], list[bytes]]:
    """A few short episodes of ``player`` (3 areas, no actions): the parameter keys its tasks
    read (with the defaults they passed) and every output, with the declared parameters
    unset or set to their defaults."""
    channels = PlayerChannels()
    channels.parameters = parameters = RecordingParameters()
    if set_defaults:
        for declared in get_player(player).environment_parameters:
            parameters.set(declared.name, ParameterSampler(None, (declared.default,)))
    academy = Academy(get_player(player).tasks, max_step=10, channels=channels)
    academy.initialize(seed=3, num_areas=3)
    out = UnityRLOutputProto()
    academy.reset(out)
    outputs = [out.SerializeToString(deterministic=True)]
    for _ in range(30):
        out = UnityRLOutputProto()
        academy.step(UnityRLInputProto().agent_actions, out)
        outputs.append(out.SerializeToString(deterministic=True))
    return parameters.read, outputs


@pytest.mark.parametrize("player", [p.name for p in list_players()])
def test_every_environment_parameter_a_builtin_reads_is_declared(player: str) -> None:
    declared = {p.name: p.default for p in get_player(player).environment_parameters}
    read_unset, outputs_unset = _play(player, set_defaults=False)
    read_set, outputs_set = _play(player, set_defaults=True)
    assert set(read_unset) <= set(declared) and set(read_set) == set(declared)
    # The declared defaults are the ones the task passes, and setting them changes nothing.
    for read in (read_unset, read_set):
        assert all(defaults <= {declared[key]} for key, defaults in read.items())
    assert outputs_set == outputs_unset


def test_3dball_declares_mass_gravity_and_scale() -> None:
    parameters = get_player("3DBall").environment_parameters
    assert [(p.name, p.default) for p in parameters] == [
        ("mass", DEFAULT_MASS),
        ("gravity", DEFAULT_GRAVITY),
        ("scale", DEFAULT_SCALE),
    ]
    assert all(p.description and "episode start" in p.read_at for p in parameters)
    wall_jump = get_player("WallJump")
    assert [p.name for p in wall_jump.environment_parameters] == [
        "big_wall_height",
        "small_wall_height",
        "no_wall_height",
    ]
    assert get_player("Basic").environment_parameters == ()


# -- the player's own command line ---------------------------------------------------------


def test_player_args_parse_like_a_unity_build() -> None:
    options = parse_player_args(
        [
            "3DBall",
            "-nographics",
            "-batchmode",
            "--mlagents-port",
            "5005",
            "-logfile",
            "p.log",
            "-screen-width",
            "80",
            "--decision-period=2",
            "--max-step",
            "0",
            "--mlagents-host",
            "localhost",
        ]
    )
    assert (options.name, options.port, options.host, options.log_file) == (
        "3DBall",
        5005,
        "localhost",
        "p.log",
    )
    assert options.batchmode and options.nographics
    assert (options.decision_period, options.max_step) == (2, 0)
    assert options.ignored == ("-screen-width", "80")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--mlagents-port", "5005"],
        ["Basic"],
        ["Basic", "--mlagents-port"],
        ["Basic", "--mlagents-port", "0"],
        ["Basic", "--mlagents-port", "5005", "--decision-period", "0"],
        ["Basic", "--mlagents-port", "5005", "--max-step", "-1"],
    ],
)
def test_bad_player_args_are_rejected(argv: list[str]) -> None:
    with pytest.raises(OptionsError):
        parse_player_args(argv)


def test_player_help_lists_players() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "unity_gym.players", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--mlagents-port" in result.stdout and "GridWorld" in result.stdout


# -- unity-sb3 envs ------------------------------------------------------------------------


def test_envs_lists_players_behaviors_and_specs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for text in ("3DBall?team=0", "(8,)", "2 continuous", "(3, 64, 84)", "discrete branches (5,)"):
        assert text in out


def test_envs_lists_environment_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    ball = lines.index(next(line for line in lines if line.startswith("3DBall - ")))
    parameters = [line for line in lines[ball:] if "environment parameter" in line][:3]
    for line, start in zip(
        parameters,
        (
            f"  environment parameter mass (default {DEFAULT_MASS:g}): ",
            f"  environment parameter gravity (default {DEFAULT_GRAVITY:g}): ",
            f"  environment parameter scale (default {DEFAULT_SCALE:g}): ",
        ),
        strict=True,
    ):
        assert line.startswith(start) and line.endswith(
            "read at each episode start, per agent (a sampler draws anew at every read)"
        )
    assert "environment parameter big_wall_height (default 8)" in out
    assert "environment parameters: none" in out  # Basic, Tennis


def test_envs_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "--json"]) == 0
    players = json.loads(capsys.readouterr().out)
    basic = players[0]["behaviors"][0]
    assert basic["name"] == "Basic?team=0"
    assert basic["observations"][0]["shape"] == [20] and basic["discrete_branches"] == [3]
    assert players[0]["environment_parameters"] == []
    ball = {p["name"]: p for p in players}["3DBall"]["environment_parameters"]
    assert [(p["name"], p["default"]) for p in ball] == [
        ("mass", DEFAULT_MASS),
        ("gravity", DEFAULT_GRAVITY),
        ("scale", DEFAULT_SCALE),
    ]
    assert all(p["description"] and "episode start" in p["read_at"] for p in ball)


def test_no_subcommand_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


# -- unity-sb3 env-executable --------------------------------------------------------------


def test_env_executable_writes_an_executable_launcher(tmp_path: Path) -> None:
    path = tmp_path / "Ball.x86_64"
    assert main(["env-executable", "3dball", str(path)]) == 0
    script = path.read_text()
    assert script.startswith("#!/bin/sh\n")
    assert f'exec {sys.executable} -m unity_gym.players 3DBall "$@"' in script
    assert path.stat().st_mode & stat.S_IXUSR
    help_run = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0 and "--mlagents-port" in help_run.stdout


def test_launcher_sets_pythonpath_when_the_package_is_not_installed(tmp_path: Path) -> None:
    root = Path(env_executable_command.__file__).resolve().parents[1]
    script = env_executable_command.launcher_script("Basic", root)
    assert f"PYTHONPATH={root}" in script and "export PYTHONPATH" in script
    path = tmp_path / "basic"
    path.write_text(script)
    path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(path), "--help"], capture_output=True, text=True, timeout=60, cwd="/", env=env
    )
    assert result.returncode == 0, result.stderr


def test_env_executable_unknown_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env-executable", "Walker", str(tmp_path / "w")]) == 2
    assert (
        "valid names: Basic, 3DBall, GridWorld, Tennis, Pyramids, StrikersVsGoalie, WallJump"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("where", ["missing-folder/player", "."])
def test_env_executable_unwritable_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    assert main(["env-executable", "Basic", str(tmp_path / where)]) == 1
    assert str(tmp_path) in capsys.readouterr().err
