"""``unity-sb3 match``: play saved policies against each other on a scene; print win/draw/loss.

The scene (a built-in player ``builtin:NAME`` or a Unity build's path) runs through the
low-level API, each behavior driven by the policy ``--policy BEHAVIOR=SPEC`` gives it (an SB3
checkpoint ``FILE.zip``, an exported ``FILE.onnx``, ``random`` or ``heuristic``; see
:mod:`cli.scene_policies`). Results are those of the first ``--policy``'s behavior: each end
of an episode of one of its agents (one per area and point) is a game, won when the final
step's reward is positive, lost when negative, drawn when zero or cut short by the step limit,
as ML-Agents' self-play rates games. Unity restarts episodes itself; the match counts the first
``--games`` games that ended, of episodes that started after it began.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cli.command import Command
from cli.scene_policies import (
    SPEC_SYNTAX,
    InputError,
    Policy,
    builtin_player,
    check_spec,
    open_scene,
    policy_for,
)
from unity_gym.base_env import BehaviorSpec, matching_behaviors
from unity_gym.launcher import builtin_player_name

if TYPE_CHECKING:
    from unity_gym.environment import UnityEnvironment

PROG = "unity-sb3 match"


class MatchError(InputError):
    """Input the command cannot use; the message names the flag or value and the fix."""


@dataclass(frozen=True)
class MatchResult:
    """Games of ``behavior`` (its agents' episode ends) against the other behaviors."""

    wins: int
    draws: int
    losses: int
    behavior: str = ""
    policies: dict[str, str] = field(default_factory=dict)  # full behavior name -> spec
    seed: int | None = None

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def win_rate(self) -> float:
        return self.wins / self.games if self.games else 0.0

    @property
    def score(self) -> float:
        """Wins plus half the draws, per game: the expected score of a rating system."""
        return (self.wins + 0.5 * self.draws) / self.games if self.games else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "behavior": self.behavior,
            "policies": dict(self.policies),
            "games": self.games,
            "wins": self.wins,
            "draws": self.draws,
            "losses": self.losses,
            "win_rate": self.win_rate,
            "score": self.score,
            "seed": self.seed,
        }

    def describe(self) -> str:
        """One line: ``A (spec) vs B (spec): N games: W wins, D draws, L losses (...)``."""
        players = [f"{name} ({spec})" for name, spec in self.policies.items()]
        versus = f"{players[0]} vs {', '.join(players[1:])}" if len(players) > 1 else players[0]
        return (
            f"{versus}: {_count(self.games, 'game')}: "
            f"{_count(self.wins, 'win')}, {_count(self.draws, 'draw')}, "
            f"{_count(self.losses, 'loss', 'losses')} "
            f"(win rate {self.win_rate:.3f}, score {self.score:.3f})"
        )


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="builtin:NAME (see `unity-sb3 envs`) or a Unity build's path")
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="BEHAVIOR=SPEC",
        help=f"who plays a behavior; SPEC: {SPEC_SYNTAX}. Give one per behavior; results are "
        "those of the first one's behavior",
    )
    parser.add_argument("--games", type=int, required=True, help="games to play (episode ends)")
    parser.add_argument("--seed", type=int, help="environment and sampling seed (default random)")
    parser.add_argument("--num-areas", type=int, help="training areas (default 1)")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="models take their most likely action instead of sampling one",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output")


def run(args: argparse.Namespace) -> int:
    try:
        result = play_match(
            args.env,
            parse_policies(args.policy),
            args.games,
            seed=args.seed,
            num_areas=args.num_areas,
            deterministic=args.deterministic,
        )
    except InputError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the match was not finished.", file=sys.stderr)
        return 130
    if args.format == "json":
        print(json.dumps({"env": args.env, **result.as_dict()}, indent=2))
    else:
        print(result.describe())
    return 0


def parse_policies(values: list[str]) -> dict[str, str]:
    """``--policy BEHAVIOR=SPEC`` values -> {BEHAVIOR: SPEC}, in order. The behavior is what
    comes before the last ``=`` (behavior names hold one: ``Tennis?team=0``)."""
    policies: dict[str, str] = {}
    for value in values:
        behavior, equals, spec = value.rpartition("=")
        if not equals or not behavior or not spec:
            raise MatchError(
                f"--policy {value}: write it as BEHAVIOR=SPEC, for example --policy "
                f"'Tennis?team=0=results/run/Tennis/Tennis-50000.zip'; SPEC is {SPEC_SYNTAX}."
            )
        if behavior in policies:
            raise MatchError(
                f"--policy {value}: {behavior} already has a policy "
                f"({behavior}={policies[behavior]}); give one --policy per behavior."
            )
        policies[behavior] = spec
    return policies


def play_match(
    env_path: str,
    policies: Mapping[str, str],
    games: int,
    seed: int | None = None,
    num_areas: int | None = None,
    deterministic: bool = False,
) -> MatchResult:
    """Play ``games`` games on ``env_path``, each behavior driven by ``policies[behavior]``
    (a full or unambiguous bare behavior name -> ``FILE.zip``, ``FILE.onnx``, ``random`` or
    ``heuristic``); results are those of the first behavior of ``policies``.

    ``seed`` seeds the scene, the random policies and SB3 sampling (None: a random seed);
    ``deterministic`` makes models take their most likely actions. The environment is closed
    on every path. Raises :class:`~cli.scene_policies.InputError` for unusable input, before
    the scene starts when it can.
    """
    if games < 1:
        raise MatchError(
            f"--games {games}: play at least one game (for example --games 100); a game is an "
            "episode end of the first --policy's behavior."
        )
    if num_areas is not None and num_areas < 1:
        raise MatchError(f"--num-areas {num_areas}: give 1 or more training areas.")
    if not policies:
        raise MatchError(
            f"{env_path}: no --policy given; give one per behavior as --policy BEHAVIOR=SPEC "
            f"(SPEC: {SPEC_SYNTAX}); `unity-sb3 envs` lists the built-ins' behaviors."
        )
    if builtin_player_name(env_path) is not None:
        builtin_player(env_path)  # an unknown name fails here; a build's path when it starts
    for behavior, spec in policies.items():
        check_spec(spec, env_path, f"--policy {behavior}={spec}")
    if seed is None:
        seed = random.randrange(2**31)
    with _inference_threads(any(spec.endswith(".zip") for spec in policies.values())):
        return _match(env_path, policies, games, seed, num_areas or 1, deterministic)


@contextmanager
def _inference_threads(sb3: bool) -> Iterator[None]:
    """With SB3 models (``sb3``): torch set as ``learn`` sets it for vector networks, for the
    match only. Torch's default, a thread per core, makes each small batch wait for busy
    cores (on two busy cores one decision took 97 ms with two threads, 7 ms with one)."""
    if not sb3:
        yield
        return
    try:
        import torch

        from cli.torch_threads import configure_torch_threads
    except ImportError as err:
        raise MatchError(
            f"--policy FILE.zip: SB3 checkpoints need torch and stable-baselines3 ({err.name} "
            "is missing), dependencies of unity-sb3: pip install stable-baselines3 sb3-contrib."
        ) from None
    previous = torch.get_num_threads()
    configure_torch_threads(None, visual=False)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _match(
    env_path: str,
    policies: Mapping[str, str],
    games: int,
    seed: int,
    num_areas: int,
    deterministic: bool,
) -> MatchResult:
    """:func:`play_match` once its input is checked: start the scene, play, close it."""
    with open_scene(env_path, seed, num_areas, MatchError, "during the match") as unity:
        specs = dict(unity.behavior_specs)
        chosen = _assign_behaviors(env_path, specs, policies)
        players = {
            name: policy_for(
                spec,
                specs[name],
                name,
                env_path,
                deterministic=deterministic,
                seed=seed + i,
                what=f"--policy {given}={spec}",
            )
            for i, (name, (given, spec)) in enumerate(chosen.items())
        }
        counts = _play(unity, players, next(iter(chosen)), games)
    return MatchResult(
        *counts,
        behavior=next(iter(chosen)),
        policies={name: spec for name, (_, spec) in chosen.items()},
        seed=seed,
    )


def _assign_behaviors(
    env: str, specs: dict[str, BehaviorSpec], policies: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """Full behavior name -> (name as given, spec), in the order given; every behavior of the
    scene must have exactly one."""
    chosen: dict[str, tuple[str, str]] = {}
    for given, spec in policies.items():
        matches = matching_behaviors(given, specs)
        if len(matches) != 1:
            problem = (
                f"{env} has no behavior {given!r}"
                if not matches
                else f"{given!r} names several behaviors of {env} ({', '.join(matches)})"
            )
            raise MatchError(
                f"--policy {given}={spec}: {problem}; give one of {', '.join(specs)} "
                "(the bare name when only one behavior has it)."
            )
        name = matches[0]
        if name in chosen:
            raise MatchError(
                f"--policy {given}={spec}: {name} already has a policy "
                f"({chosen[name][0]}={chosen[name][1]}); give one --policy per behavior."
            )
        chosen[name] = (given, spec)
    missing = [name for name in specs if name not in chosen]
    if missing:
        example = " ".join(f"--policy '{name}=SPEC'" for name in missing)
        raise MatchError(
            f"{env}: no policy for {', '.join(missing)}; every behavior needs one: add "
            f"{example} (SPEC: {SPEC_SYNTAX})."
        )
    return chosen


def _play(
    unity: UnityEnvironment, policies: dict[str, Policy], counted: str, games: int
) -> tuple[int, int, int]:
    """Step until ``games`` episodes of ``counted``'s agents ended; (wins, draws, losses).

    The games are shared out evenly among the agents (one per area) present at the start,
    each counting its first ones: stopping at the first ``games`` episode ends of all areas
    together would over-count short games (quick points against long draws). Only episodes
    begun since the match began count.
    """
    outcomes = [0, 0, 0]  # wins, draws, losses
    quota: dict[int, int] | None = None  # agent -> games still to count
    playing: set[int] = set()  # agents in an episode that began in the match
    while quota is None or any(quota.values()):
        for name, policy in policies.items():
            decisions, terminals = unity.get_steps(name)
            policy.end_episodes(terminals.agent_id)
            if name == counted:
                for agent, reward, interrupted in zip(
                    terminals.agent_id.tolist(),
                    terminals.reward.tolist(),
                    terminals.interrupted.tolist(),
                    strict=True,
                ):
                    if agent in playing and quota is not None and quota.get(agent, 0) > 0:
                        quota[agent] -= 1
                        outcomes[_outcome(reward, interrupted)] += 1
                    playing.discard(agent)
                agents = decisions.agent_id.tolist()
                if quota is None and agents:
                    quota = _share(games, sorted(agents))
                playing.update(agents)
            if len(decisions):
                unity.set_actions(name, policy(decisions))
        if quota is None or any(quota.values()):
            unity.step()
    wins, draws, losses = outcomes
    return wins, draws, losses


def _outcome(reward: float, interrupted: bool) -> int:
    """Index in (wins, draws, losses): the final step's reward sign; a draw when cut short."""
    if interrupted or reward == 0:
        return 1
    return 0 if reward > 0 else 2


def _share(games: int, agents: list[int]) -> dict[int, int]:
    """``games`` spread over ``agents`` as evenly as possible, the first ones taking the rest."""
    share, rest = divmod(games, len(agents))
    return {agent: share + (i < rest) for i, agent in enumerate(agents)}


COMMAND = Command(
    name="match",
    help="Play saved policies against each other on a scene and print win/draw/loss.",
    description=__doc__.splitlines()[0] if __doc__ else "",
    add_arguments=add_arguments,
    run=run,
)
