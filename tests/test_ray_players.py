"""Players on a two-node Ray cluster (both nodes on this machine, loopback): they land on both
nodes, step exactly like local players, survive a killed player and a lost node, and leave
nothing running after close(); ``unity-sb3 learn --ray-address`` trains on them."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "unity-sb3[ray]"')
pytest.importorskip("stable_baselines3")

from gymnasium import spaces as gym_spaces
from ray.cluster_utils import Cluster

from tests.conftest import process_gone
from unity_gym.exception import UnityEnvironmentException
from unity_gym.ray_players import RayPlayers
from unity_gym.remote_environment import RemoteEnvironment
from unity_gym.restart_policy import RestartPolicy
from unity_gym.sb3_vec_env import UnityVecEnv
from unity_gym.side_channel.stats_side_channel import StatsSideChannel

REPO = Path(__file__).resolve().parents[1]
NO_RATE_LIMIT = RestartPolicy(max_lifetime_restarts=10, restarts_rate_limit_n=-1)
# Every player asks for one "player_slot": both nodes have some, so players spread over them.
ON_CLUSTER = RayPlayers(cpus_per_player=0.5, resources={"player_slot": 1})


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head node and a second node, each with 4 player slots, and this process connected."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 3,
            "resources": {"player_slot": 4},
            "include_dashboard": False,
        },
    )
    try:
        cluster.add_node(num_cpus=3, resources={"player_slot": 4})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _remote(env: UnityVecEnv) -> list[RemoteEnvironment]:
    envs = env.envs
    assert all(isinstance(e, RemoteEnvironment) for e in envs)
    return [e for e in envs if isinstance(e, RemoteEnvironment)]


def _all_gone(pids: list[int], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not all(process_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return all(process_gone(p) for p in pids)


def _pids(envs: list[RemoteEnvironment]) -> list[int]:
    return [p for e in envs for p in (e.info.host_pid, e.info.player_pid) if p is not None]


def _stats_channels(store: list[StatsSideChannel]) -> Any:
    def factory(_index: int) -> list[StatsSideChannel]:
        channel = StatsSideChannel()
        store.append(channel)
        return [channel]

    return factory


def _rollout(env: UnityVecEnv, steps: int, seed: int) -> list[Any]:
    """Observations, rewards, dones, final observations and (discrete) action masks."""
    env.action_space.seed(seed)
    discrete = not isinstance(env.action_space, gym_spaces.Box)
    trace: list[Any] = [env.reset()]
    for _ in range(steps):
        actions = np.stack([env.action_space.sample() for _ in range(env.num_envs)])
        obs, rewards, dones, infos = env.step(actions)
        finals = [info.get("terminal_observation") for info in infos]
        masks = env.action_masks() if discrete else None
        trace.append((obs, rewards, dones, finals, masks))
    return trace


def _assert_same(got: list[Any], expected: list[Any]) -> None:
    np.testing.assert_array_equal(got[0], expected[0])
    for step, (mine, theirs) in enumerate(zip(got[1:], expected[1:], strict=True)):
        obs, rewards, dones, finals, masks = mine
        e_obs, e_rewards, e_dones, e_finals, e_masks = theirs
        np.testing.assert_array_equal(obs, e_obs, err_msg=f"step {step}")
        np.testing.assert_array_equal(rewards, e_rewards, err_msg=f"step {step}")
        np.testing.assert_array_equal(dones, e_dones, err_msg=f"step {step}")
        np.testing.assert_array_equal(masks, e_masks, err_msg=f"step {step}")
        for final, e_final in zip(finals, e_finals, strict=True):
            assert (final is None) == (e_final is None)
            if final is not None:
                np.testing.assert_array_equal(final, e_final)
    assert sum(step[2].sum() for step in got[1:]) > 0  # episodes ended along the way


@pytest.mark.parametrize("players_per_host", [1, 2])
def test_players_land_on_both_nodes_and_step_exactly_like_local_players(
    cluster: Cluster, players_per_host: int
) -> None:
    """Same seeds, parameters and actions: the Ray VecEnv's every observation, reward, done
    and final observation equals the local one's; side channels work both ways (parameters
    out, stats back). With 2 players per host, 4 players make 2 hosts, one per node."""
    local_stats: list[StatsSideChannel] = []
    ray_stats: list[StatsSideChannel] = []

    def open_3dball(stats: list[StatsSideChannel], **where: Any) -> UnityVecEnv:
        return UnityVecEnv(
            "builtin:3DBall",
            n_envs=4,
            seed=5,
            environment_parameters={"gravity": 12.0, "scale": 1.5},
            side_channels=_stats_channels(stats),
            **where,
        )

    local = open_3dball(local_stats)
    try:
        expected = _rollout(local, 120, seed=1)
        spaces = (local.observation_space, local.action_space, local.num_envs)
    finally:
        local.close()
    env = open_3dball(
        ray_stats, ray_players=dataclasses.replace(ON_CLUSTER, players_per_host=players_per_host)
    )
    try:
        remote = _remote(env)
        nodes = {e.info.node_id for e in remote}
        assert nodes == {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        assert len({e.info.host_pid for e in remote}) == 4 // players_per_host
        assert (env.observation_space, env.action_space, env.num_envs) == spaces
        got = _rollout(env, 120, seed=1)
        pids = _pids(remote)
    finally:
        env.close()
    _assert_same(got, expected)
    drops = [c.get_and_reset_stats().get("Ball/Drops") for c in ray_stats]
    assert drops == [c.get_and_reset_stats().get("Ball/Drops") for c in local_stats]
    assert any(d for d in drops)
    assert _all_gone(pids), "a player or its actor outlived close()"


def test_visual_observations_and_action_masks_match_local_players(cluster: Cluster) -> None:
    """GridWorld: camera images (PNG decoded on the host) and discrete actions with masks."""
    local = UnityVecEnv("builtin:GridWorld", n_envs=2, seed=3)
    try:
        expected = _rollout(local, 60, seed=2)
    finally:
        local.close()
    env = UnityVecEnv("builtin:GridWorld", n_envs=2, seed=3, ray_players=ON_CLUSTER)
    try:
        got = _rollout(env, 60, seed=2)
        pids = _pids(_remote(env))
    finally:
        env.close()
    _assert_same(got, expected)
    assert _all_gone(pids)


def test_without_ray_settings_ray_is_never_imported() -> None:
    code = (
        "import sys, numpy as np\n"
        "from cli import learn_command, training_environment\n"
        "from unity_gym.sb3_vec_env import UnityVecEnv\n"
        "env = UnityVecEnv('builtin:3DBall', seed=0)\n"
        "env.reset(); env.step(np.zeros((12, 2), np.float32)); env.close()\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_lost_node_and_killed_player_are_restarted(cluster: Cluster) -> None:
    doomed = cluster.add_node(num_cpus=2, resources={"player_slot": 2})
    cluster.wait_for_nodes()
    env = UnityVecEnv(
        "builtin:3DBall",
        n_envs=3,
        seed=0,
        ray_players=ON_CLUSTER,
        restart_policy=NO_RATE_LIMIT,
    )
    try:
        env.reset()
        zeros = np.zeros((env.num_envs, 2), np.float32)
        first = _remote(env)
        assert len({e.info.node_id for e in first}) == 3  # spread: one player per node
        pids = _pids(first)
        # A lost node: its player's actor dies with it and starts again on another node.
        cluster.remove_node(doomed)
        deadline = time.monotonic() + 120
        while any(e.info.node_id == doomed.node_id for e in _remote(env)):
            assert time.monotonic() < deadline, "the lost node's player was never restarted"
            env.step(zeros)
        pids += _pids(_remote(env))
        # A killed player: its actor reports the exit, a new actor replaces it.
        killed = _remote(env)[0].info.player_pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        ended = np.zeros(env.num_envs, bool)
        for _ in range(3):
            _, _, dones, infos = env.step(zeros)
            for i in np.flatnonzero(dones):
                ended[i] = True
                if i < 12:
                    assert infos[i]["TimeLimit.truncated"] is True
        assert ended[:12].all()
        assert _remote(env)[0].info.player_pid != killed
        obs, *_ = env.step(zeros)
        assert obs.shape == (env.num_envs, 8) and np.isfinite(obs).all()
        pids += _pids(_remote(env))
    finally:
        env.close()
    assert _all_gone(pids), "a player or its actor outlived close()"


def test_killed_player_restarts_in_its_host_and_its_neighbour_plays_on(cluster: Cluster) -> None:
    env = UnityVecEnv(
        "builtin:3DBall",
        n_envs=2,
        seed=0,
        ray_players=dataclasses.replace(ON_CLUSTER, players_per_host=2),
        restart_policy=NO_RATE_LIMIT,
    )
    try:
        env.reset()
        zeros = np.zeros((env.num_envs, 2), np.float32)
        first = _remote(env)
        host = first[0].info.host_pid
        assert first[1].info.host_pid == host
        killed = first[0].info.player_pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        for _ in range(3):
            infos = env.step(zeros)[3]
            assert not any(infos[i].get("TimeLimit.truncated") for i in range(12, 24))
        now = _remote(env)
        assert now[0].info.player_pid != killed and now[0].info.host_pid == host
        assert now[1].info.player_pid == first[1].info.player_pid
        pids = _pids(first) + _pids(now)
    finally:
        env.close()
    assert _all_gone(pids), "a player or its actor outlived close()"


def test_missing_resource_is_refused_with_what_the_cluster_has(cluster: Cluster) -> None:
    with pytest.raises(UnityEnvironmentException) as caught:
        UnityVecEnv("builtin:3DBall", ray_players=RayPlayers(resources={"unity_build": 1}), seed=0)
    message = str(caught.value)
    assert "unity_build=1" in message and "player_slot=" in message
    assert "--ray-resource" in message


def test_editor_cannot_run_on_ray(cluster: Cluster) -> None:
    with pytest.raises(UnityEnvironmentException, match="need a player build"):
        UnityVecEnv(None, ray_players=ON_CLUSTER)


def test_learn_on_the_cluster_writes_the_usual_artifacts(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "3DBall.yaml"
    config.write_text(
        (REPO / "configs" / "3DBall.yaml")
        .read_text()
        .replace("max_steps: 400000", "max_steps: 3000")
        .replace("summary_freq: 12000", "summary_freq: 1000")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "learn",
            str(config),
            "--run-id=ray",
            f"--results-dir={tmp_path / 'results'}",
            "--num-envs=2",
            f"--ray-address={cluster.address}",
            "--ray-cpus-per-player=0.5",
            "--ray-resource",
            "player_slot=1",
            "--seed=1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = tmp_path / "results" / "ray"
    assert (run / "3DBall.onnx").is_file()
    assert (run / "run_logs" / "timers.json").is_file()
    assert (run / "configuration.yaml").read_text().count("ray_address") == 1
    output = result.stdout + result.stderr
    assert "Step: 3000" in output
    assert "2 players on Ray: " in output
