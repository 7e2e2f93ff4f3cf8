"""Fully qualified behavior names ("<name>?team=<id>", as Unity sends them) and bare names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from unity_gym.base_env import behavior_name_without_team, matching_behaviors, team_id
from unity_gym.env_group import choose_behavior
from unity_gym.exception import UnityEnvironmentException
from unity_gym.players import list_players

TENNIS = ["Tennis?team=0", "Tennis?team=1"]


@pytest.mark.parametrize(
    ("name", "bare", "team"),
    [
        ("3DBall?team=0", "3DBall", 0),
        ("Tennis?team=1", "Tennis", 1),
        ("Walker", "Walker", 0),  # no team: team 0, as ML-Agents' BehaviorIdentifiers
        ("Soccer?team=12&x=1", "Soccer", 12),
        ("Odd?x=1&team=3", "Odd", 3),
        ("My Behavior?team=0", "My Behavior", 0),
        ("", "", 0),
    ],
)
def test_name_without_team_and_team_id(name: str, bare: str, team: int) -> None:
    assert behavior_name_without_team(name) == bare
    assert team_id(name) == team


def test_a_team_that_is_not_an_integer_is_an_error() -> None:
    with pytest.raises(ValueError, match="not an integer"):
        team_id("Tennis?team=left")


def test_matching_behaviors_prefers_the_exact_name_then_the_bare_one() -> None:
    assert matching_behaviors("3DBall", ["3DBall?team=0", "Basic?team=0"]) == ["3DBall?team=0"]
    assert matching_behaviors("3DBall?team=0", ["3DBall?team=0"]) == ["3DBall?team=0"]
    assert matching_behaviors("Tennis", TENNIS) == TENNIS
    assert matching_behaviors("Tennis?team=1", TENNIS) == ["Tennis?team=1"]
    assert matching_behaviors("Walker", ["Walker", "Walker?team=1"]) == ["Walker"]
    assert matching_behaviors("Tennis?team=2", TENNIS) == []
    assert matching_behaviors("Ten", TENNIS) == []


def test_every_builtin_behavior_is_fully_qualified_as_unity_names_it() -> None:
    for player in list_players():
        for behavior in player.behaviors:
            bare, team = behavior_name_without_team(behavior.name), team_id(behavior.name)
            assert behavior.name == f"{bare}?team={team}"
            # Unity's names: the scene's (Tennis), its roles' (StrikersVsGoalie: Striker), or
            # the scene's with a qualifier (WallJump: BigWallJump).
            assert bare in player.name or player.name in bare


def _scene(*names: str) -> Any:
    return SimpleNamespace(behavior_specs=dict.fromkeys(names))


def test_choose_behavior_takes_the_full_or_the_unambiguous_bare_name() -> None:
    scene = _scene("3DBall?team=0", "Basic?team=0")
    assert choose_behavior(scene, "3DBall") == "3DBall?team=0"
    assert choose_behavior(scene, "Basic?team=0") == "Basic?team=0"
    assert choose_behavior(_scene("3DBall?team=0"), None) == "3DBall?team=0"
    with pytest.raises(UnityEnvironmentException, match="'Tennis' matches several behaviors"):
        choose_behavior(_scene(*TENNIS), "Tennis")
    assert choose_behavior(_scene(*TENNIS), "Tennis?team=1") == "Tennis?team=1"
    with pytest.raises(UnityEnvironmentException, match=r"not in this scene.*3DBall\?team=0"):
        choose_behavior(scene, "Nope")


def test_pettingzoo_bare_names_stand_for_every_team() -> None:
    pytest.importorskip("pettingzoo")
    from unity_gym.pettingzoo_env import UnityParallelEnv, agent_name

    choose = UnityParallelEnv._choose
    scene = _scene(*TENNIS, "Ball?team=0")
    assert choose(scene, ["Tennis"]) == TENNIS
    assert choose(scene, ["Tennis", "Tennis?team=0", "Ball"]) == [*TENNIS, "Ball?team=0"]
    with pytest.raises(UnityEnvironmentException, match=r"\['Nope'\] are not in this scene"):
        choose(scene, ["Tennis", "Nope"])
    assert agent_name("Tennis?team=1", 4) == "Tennis?team=1?agent_id=4"
    assert agent_name("Walker", 2) == "Walker?team=0?agent_id=2"
