"""RLlib trains a built-in through our PettingZoo environment (RLlib's PettingZoo wrapper and
env registration), with two env runners; the episode return rises within a few iterations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "unity-sb3[rllib]"')
pytest.importorskip("ray.rllib", reason='RLlib is not installed: pip install "unity-sb3[rllib]"')
pytest.importorskip("pettingzoo")

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

from tests.conftest import live_children
from unity_gym.pettingzoo_env import UnityParallelEnv


@pytest.fixture
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=3, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.timeout(600)
def test_rllib_ppo_learns_3dball_through_the_pettingzoo_env(local_ray: None) -> None:
    def unity_3dball(config: EnvContext) -> ParallelPettingZooEnv:
        # One built-in player per env runner, seeded by the runner's index. (A nested
        # function: Ray ships it by value to the runners, which cannot import this file.)
        return ParallelPettingZooEnv(
            UnityParallelEnv("builtin:3DBall", seed=100 + config.worker_index)
        )

    register_env("unity_3dball", unity_3dball)
    config = (
        PPOConfig()
        .environment("unity_3dball")
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent, *_a, **_k: "shared")
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={"shared": RLModuleSpec()}))
        .training(train_batch_size_per_learner=1000, minibatch_size=250, num_epochs=6, lr=1e-3)
        .debugging(seed=0)
    )
    before = live_children()
    algo = config.build_algo()
    try:
        returns = []
        for _ in range(6):
            runners = algo.train()["env_runners"]
            assert runners["num_env_steps_sampled"] > 0
            returns.append(runners["episode_return_mean"])
    finally:
        algo.stop()
    # A 3DBall game is 12 balls, each 0.1 per decision held and -1 when it drops.
    assert max(returns[-2:]) > returns[0] + 0.5, returns
    assert live_children() <= before
