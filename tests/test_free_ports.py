"""Environments take free ports by default: many in one process, in subprocesses, and
Gymnasium's and SB3's tools that build second instances, all just work."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from gymnasium.utils.env_checker import check_env

from tests.conftest import REPO, live_children, process_gone
from unity_gym import UnityEnvironment
from unity_gym.exception import UnityWorkerInUseException
from unity_gym.sb3_vec_env import UnityVecEnv


def test_make_twice_in_one_process_both_step() -> None:
    first = gymnasium.make("unity_gym:unity_gym/Basic-v0")
    second = gymnasium.make("unity_gym/Basic-v0")
    try:
        ports = {first.unwrapped.unity_env.port, second.unwrapped.unity_env.port}
        assert len(ports) == 2 and UnityEnvironment.BASE_ENVIRONMENT_PORT not in ports
        for env in (first, second):
            obs, _ = env.reset()
            assert obs.shape == (20,)
            assert env.step(2)[1] == pytest.approx(-0.01)
    finally:
        first.close()
        second.close()


@pytest.mark.filterwarnings("ignore:.*Box observation space m:UserWarning")
def test_gymnasium_check_env_on_a_made_environment() -> None:
    before = live_children()
    env = gymnasium.make("unity_gym:unity_gym/Basic-v0")
    try:
        # check_env builds a second instance from the spec while this one is open.
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()
    assert live_children() <= before


SUBPROC_SCRIPT = """
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

if __name__ == "__main__":
    venv = make_vec_env("unity_gym:unity_gym/Basic-v0", n_envs=2, vec_env_cls=SubprocVecEnv)
    try:
        assert venv.reset().shape == (2, 20)
        pids = venv.get_attr("player_pid")
        assert len(set(pids)) == 2, pids
        for _ in range(5):
            _, rewards, _, _ = venv.step(np.array([2, 2]))
        assert rewards.shape == (2,)
    finally:
        venv.close()
    print(*pids)
"""


def test_sb3_make_vec_env_with_subprocesses_over_two_players(tmp_path: Path) -> None:
    # In a process of its own: SubprocVecEnv's forkserver outlives the VecEnv.
    script = tmp_path / "subproc_vec_env.py"
    script.write_text(SUBPROC_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert all(process_gone(int(pid)) for pid in done.stdout.split())


def test_training_and_evaluation_vec_envs_in_one_process() -> None:
    train = UnityVecEnv("builtin:3DBall", n_envs=1, seed=1)
    evaluate = UnityVecEnv("builtin:3DBall", n_envs=1, seed=2)
    pids = [e.player_pid for v in (train, evaluate) for e in v.envs]
    try:
        assert train.envs[0].port != evaluate.envs[0].port
        for venv in (train, evaluate):
            venv.reset()
            obs, *_ = venv.step(np.zeros((12, 2), np.float32))
            assert obs.shape == (12, 8)
    finally:
        train.close()
        evaluate.close()
    assert all(pid is not None and process_gone(pid) for pid in pids)


def test_an_explicit_port_keeps_ml_agents_meaning_and_a_taken_one_is_refused() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        before = live_children()
        with pytest.raises(
            UnityWorkerInUseException, match=f"Port {taken}.*worker_id or base_port"
        ):
            UnityVecEnv("builtin:Basic", base_port=taken)
        with pytest.raises(UnityWorkerInUseException, match=f"Port {taken}"):
            UnityEnvironment("builtin:Basic", base_port=taken - 2, worker_id=2)
        assert live_children() <= before
    with UnityEnvironment("builtin:Basic", base_port=taken - 1, worker_id=1) as env:
        assert env.port == taken


def test_make_vec_sync_mode_over_a_single_agent_id() -> None:
    envs = gymnasium.make_vec("unity_gym/Basic-v0", num_envs=2, vectorization_mode="sync")
    try:
        obs, _ = envs.reset(seed=3)
        assert obs.shape == (2, 20)
        _, rewards, *_ = envs.step(np.array([2, 2]))
        assert rewards.tolist() == pytest.approx([-0.01, -0.01])
    finally:
        envs.close()
