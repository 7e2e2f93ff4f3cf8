"""UnityEnvironment driving each built-in player over real loopback gRPC."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, free_port, process_gone
from unity_gym import ActionTuple, UnityEnvironment
from unity_gym.exception import UnityActionException, UnityEnvironmentException
from unity_gym.side_channel import (
    EngineConfigurationChannel,
    EnvironmentParametersChannel,
    StatsSideChannel,
)

pytestmark = pytest.mark.protocol

# Behavior names as Unity sends them: "<name>?team=<id>".
BASIC, BALL, GRID = "Basic?team=0", "3DBall?team=0", "GridWorld?team=0"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def open_env() -> Iterator:
    """Factory that opens environments and always closes them, even when a test fails."""
    envs: list[UnityEnvironment] = []

    def make(name: str, **kwargs: object) -> UnityEnvironment:
        kwargs.setdefault("base_port", free_port())
        kwargs.setdefault("timeout_wait", 30)
        env = UnityEnvironment(f"builtin:{name}", **kwargs)  # type: ignore[arg-type]
        envs.append(env)
        return env

    yield make
    for env in envs:
        pid = env.player_pid
        with contextlib.suppress(UnityEnvironmentException):  # already closed by the test
            env.close()
        if pid is not None:
            assert process_gone(pid), f"player {pid} survived close()"


def _random_steps(env: UnityEnvironment, name: str, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    spec = env.behavior_specs[name].action_spec
    history = []
    for _ in range(n):
        decisions, terminals = env.get_steps(name)
        history.append((decisions, terminals))
        env.set_actions(name, spec.random_action(len(decisions), rng))
        env.step()
    return history


def test_basic_spec_and_one_hot_observations(open_env) -> None:
    env = open_env("Basic")
    env.reset()
    assert list(env.behavior_specs) == [BASIC]
    with pytest.raises(UnityActionException, match=r"Did you mean 'Basic\?team=0'\?"):
        env.get_steps("Basic")
    spec = env.behavior_specs[BASIC]
    assert [o.shape for o in spec.observation_specs] == [(20,)]
    assert spec.action_spec.continuous_size == 0 and spec.action_spec.discrete_branches == (3,)
    decisions, _ = env.get_steps(BASIC)
    assert len(decisions) == 1
    assert decisions.obs[0].sum() == 1.0 and decisions.obs[0][0, 10] == 1.0


def test_basic_walking_right_reaches_the_large_goal(open_env) -> None:
    env = open_env("Basic")
    env.reset()
    for step in range(20):  # noqa: B007 - read after the loop
        decisions, terminals = env.get_steps(BASIC)
        if len(terminals):
            assert terminals.reward[0] == pytest.approx(1.0 - 0.01, abs=0.011)
            assert not terminals.interrupted[0]
            break
        env.set_actions(BASIC, ActionTuple(discrete=np.full((len(decisions), 1), 2)))
        env.step()
    else:
        pytest.fail("walking right never reached the large goal")
    assert step == 7


def test_3dball_has_twelve_agents_per_area(open_env) -> None:
    env = open_env("3DBall", num_areas=2)
    env.reset()
    spec = env.behavior_specs[BALL]
    assert [o.shape for o in spec.observation_specs] == [(8,)]
    assert spec.action_spec.continuous_size == 2 and spec.action_spec.discrete_branches == ()
    decisions, terminals = env.get_steps(BALL)
    assert len(decisions) == 24 and len(terminals) == 0
    assert len(set(decisions.agent_id.tolist())) == 24
    assert decisions.action_mask is None


def test_3dball_random_play_drops_balls_with_minus_one(open_env) -> None:
    env = open_env("3DBall")
    env.reset()
    terminals = [t for _, t in _random_steps(env, BALL, 150) if len(t)]
    assert terminals, "random play never dropped a ball"
    rewards = np.concatenate([t.reward for t in terminals])
    assert (rewards <= -0.9).any()
    assert not np.concatenate([t.interrupted for t in terminals]).any()


def test_max_step_marks_terminal_steps_interrupted(open_env) -> None:
    env = open_env("3DBall", additional_args=["--max-step", "20"])
    env.reset()
    interrupted = []
    for _ in range(10):
        decisions, terminals = env.get_steps(BALL)
        interrupted += terminals.interrupted.tolist()
        env.set_actions(BALL, ActionTuple(continuous=np.zeros((len(decisions), 2))))
        env.step()
    assert interrupted and all(interrupted)


def test_gridworld_visual_observation_and_masks(open_env) -> None:
    env = open_env("GridWorld")
    env.reset()
    spec = env.behavior_specs[GRID]
    assert spec.observation_specs[0].shape == (3, 64, 84)
    assert spec.action_spec.discrete_branches == (5,)
    masked_any = False
    for decisions, _ in _random_steps(env, GRID, 40):
        if len(decisions):
            image = decisions.obs[0]
            assert image.dtype == np.float32 and image.min() >= 0.0 and image.max() <= 1.0
            assert image.std() > 0  # something is drawn
            assert decisions.action_mask is not None and decisions.action_mask[0].shape == (
                len(decisions),
                5,
            )
            assert not decisions.action_mask[0][:, 0].any()  # "no action" is never masked
            masked_any |= bool(decisions.action_mask[0].any())
    assert masked_any, "no wall ever masked a move in 40 steps"


def test_same_seed_reproduces_episodes_and_other_seed_differs(open_env) -> None:
    runs = []
    for seed in (3, 3, 4):
        env = open_env("3DBall", seed=seed)
        env.reset()
        runs.append([d.obs[0].copy() for d, _ in _random_steps(env, BALL, 30, seed=0)])
        env.close()
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_side_channels_round_trip(open_env) -> None:
    stats = StatsSideChannel()
    params = EnvironmentParametersChannel()
    env = open_env("3DBall", side_channels=[stats, params])
    params.set_float_parameter("gravity", 0.0)
    env.reset()
    history = _random_steps(env, BALL, 60)
    # Without gravity the balls never roll off, whatever the platforms do.
    assert not any(len(t) for _, t in history[1:])
    params.set_float_parameter("gravity", 9.81)
    env.reset()
    history = _random_steps(env, BALL, 150)
    assert any(len(t) for _, t in history)
    received = stats.get_and_reset_stats()
    assert received, "the player sent no custom stat"


def test_engine_time_scale_paces_the_player(open_env) -> None:
    engine = EngineConfigurationChannel()
    env = open_env("Basic", side_channels=[engine])
    env.reset()
    start = time.perf_counter()
    _random_steps(env, BASIC, 10)
    fast = time.perf_counter() - start
    engine.set_configuration_parameters(time_scale=1.0)  # real time: 0.02 s per academy step
    env.step()
    start = time.perf_counter()
    _random_steps(env, BASIC, 10)
    paced = time.perf_counter() - start
    assert paced >= 0.15 and paced > 3 * fast


def test_wrong_action_shape_names_the_behavior_and_shapes(open_env) -> None:
    env = open_env("3DBall")
    env.reset()
    with pytest.raises(UnityActionException, match=r"3DBall.*\(12, 2\).*\(12, 3\)"):
        env.set_actions(BALL, ActionTuple(continuous=np.zeros((12, 3))))
    with pytest.raises(UnityActionException, match="Known behaviors: 3DBall"):
        env.get_steps("Nope")


def test_set_action_for_agent_moves_only_that_agent(open_env) -> None:
    env = open_env("3DBall", seed=5)
    env.reset()
    decisions, _ = env.get_steps(BALL)
    first, other = int(decisions.agent_id[0]), int(decisions.agent_id[1])
    before = decisions.obs[0].copy()
    env.set_action_for_agent(BALL, first, ActionTuple(continuous=np.array([[1.0, 1.0]])))
    env.step()
    after = env.get_steps(BALL)[0]
    moved = np.abs(after[first].obs[0][:2] - before[decisions.agent_id_to_index[first]][:2]).sum()
    still = np.abs(after[other].obs[0][:2] - before[decisions.agent_id_to_index[other]][:2]).sum()
    assert moved > still


def test_killed_player_is_reported_quickly_and_cleaned_up(open_env) -> None:
    env = open_env("3DBall")
    env.reset()
    port, pid = env.port, env.player_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(UnityEnvironmentException, match=r"SIGKILL|disconnected"):
        for _ in range(5):
            env.step()
    assert time.monotonic() - start < 3
    env.close()
    assert process_gone(pid) and _port_free(port)


def test_close_ends_the_player_and_frees_the_port(open_env) -> None:
    env = open_env("GridWorld")
    env.reset()
    port, pid = env.port, env.player_pid
    env.close()
    assert pid is not None and process_gone(pid)
    assert _port_free(port)


def test_player_log_is_written_to_log_folder(open_env, tmp_path: Path) -> None:
    env = open_env("Basic", log_folder=str(tmp_path))
    env.reset()
    env.close()
    assert (tmp_path / "Player-0.log").exists()


def test_readme_low_level_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (REPO / "README.md").read_text()
    code = re.search(r"## Low-level API in five lines\n\n```python\n(.*?)```", readme, re.S)
    assert code, "README lost its low-level API example"
    lines = code.group(1).strip().splitlines()
    assert len(lines) <= 5
    source = code.group(1).replace(
        'UnityEnvironment("builtin:3DBall", seed=1)',
        f'UnityEnvironment("builtin:3DBall", seed=1, base_port={free_port()})',
    )
    exec(compile(source, "README.md", "exec"), {})


def test_a_script_that_never_closes_its_environment_still_exits(tmp_path: Path) -> None:
    script = tmp_path / "forgets_close.py"
    script.write_text(
        "from unity_gym import UnityEnvironment\n"
        "env = UnityEnvironment('builtin:Basic')\n"
        "env.reset()\n"
        "print(env.player_pid, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 5
    while not process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(pid)
