"""The one owner of a set of players: every adapter's players go through :class:`PlayerSet`.

It opens ``n_players`` players (all or none), lets the adapter choose the behaviors, builds the
lock-step :class:`~unity_gym.agent_slots.AgentSlots` over them, restarts every player for a new
seed (Unity seeds a player only at its handshake), replaces a crashed or hung player when the
settings carry a :class:`~unity_gym.restart_policy.RestartPolicy`, and closes everything on
failure, so no process or port is left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from unity_gym.agent_slots import DEFAULT_MAX_EXCHANGES, AgentSlots, SlotStep
from unity_gym.base_env import ActionTuple, BehaviorSpec
from unity_gym.env_group import (
    WorkerSettings,
    close_all,
    open_environments,
    send_environment_parameter,
)
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException, UnityException
from unity_gym.restart_policy import RESTARTABLE_ERRORS, RestartBudget
from unity_gym.side_channel.environment_parameters_channel import (
    ENVIRONMENT_PARAMETERS_CHANNEL_ID,
    EnvironmentParametersChannel,
    ParameterSampler,
)

logger = logging.getLogger(__name__)

# The first player, just reset -> the behaviors to step (full names).
ChooseBehaviors = Callable[[UnityEnvironment], list[str]]


class PlayerSet:
    """``n_players`` players started from ``settings``, stepped in lock step.

    :param choose: picks the behaviors from the first player after its first reset.
    :param max_exchanges: exchanges to wait for a slot's next decision before giving up.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        n_players: int,
        choose: ChooseBehaviors,
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
    ) -> None:
        self.settings = settings
        self.n_players = n_players
        self.max_exchanges = max_exchanges
        policy = settings.restart_policy
        self.restarts: RestartBudget | None = None if policy is None else RestartBudget(policy)
        self._open(choose)

    def _open(self, choose: ChooseBehaviors) -> None:
        """Start and reset the players; the first result waits in :attr:`last`."""
        envs = open_environments(self.settings, self.n_players)
        self.slots = AgentSlots(envs, [], self.max_exchanges, self._recover)
        try:
            envs[0].reset()
            names = choose(envs[0])
            if not names:
                raise UnityEnvironmentException(
                    "The scene announced no behavior at its first reset; its agents must "
                    "request a decision at the start of an episode."
                )
            self.slots.behavior_names = list(names)
            self.last: dict[str, SlotStep] = self.slots.reset()
        except BaseException:
            self.close()
            raise

    @property
    def envs(self) -> list[UnityEnvironment]:
        """One low-level environment per player (a restarted player's replaces it)."""
        return self.slots.envs

    @property
    def behavior_names(self) -> list[str]:
        return self.slots.behavior_names

    @property
    def specs(self) -> dict[str, BehaviorSpec]:
        return self.slots.specs

    @property
    def player_pids(self) -> list[int | None]:
        return [env.player_pid for env in self.envs]

    def env_of_slot(self, behavior: str, slot: int) -> UnityEnvironment:
        return self.envs[self.slots.worker_of_slot(behavior, slot)]

    def set_environment_parameters(
        self, values: Mapping[str, float | ParameterSampler], resend: bool = False
    ) -> None:
        """Send ``values`` to every player with its next message (Unity builds each sampler
        anew, so its draws restart from its seed); players restarted later get them too.

        :param resend: send every parameter known so far, not only ``values`` (what
            mlagents-learn does before each full reset).
        """
        merged = {**self.settings.environment_parameters, **values}
        self.settings.environment_parameters = merged
        for env in self.envs:
            channel = env.side_channels.get(ENVIRONMENT_PARAMETERS_CHANNEL_ID)
            if not isinstance(channel, EnvironmentParametersChannel):
                continue
            for key, value in (merged if resend else values).items():
                send_environment_parameter(channel, key, value)

    def reset(self) -> dict[str, SlotStep]:
        """A Unity reset of every player: new episodes in every slot."""
        self.last = self.slots.reset()
        return self.last

    def step(self, actions: Mapping[str, ActionTuple]) -> dict[str, SlotStep]:
        self.last = self.slots.step(actions)
        return self.last

    def reseed(self, seed: int) -> dict[str, SlotStep]:
        """Start every player anew with ``seed`` (player *i* gets ``seed + i``), same behaviors."""
        names = list(self.behavior_names)
        close_all(self.envs)
        self.settings.seed = seed
        self._open(lambda _env: names)
        return self.last

    def close(self) -> None:
        """End every player; safe to call twice."""
        close_all(self.envs)

    def _recover(self, index: int, error: UnityException) -> UnityEnvironment:
        """:class:`AgentSlots`' hook: replace failed player ``index`` within the budget."""
        self.envs[index].terminate()
        if self.restarts is None:
            raise error
        while True:
            self.restarts.take(index, error)
            logger.warning(
                "Player %d (%s) failed and is restarted (restart %d of this player, %d in all): %s",
                index,
                self.settings.file_name or "the Editor",
                self.restarts.restarts_of(index),
                self.restarts.total,
                _first_line(error),
            )
            try:
                return self.settings.open(index)
            except RESTARTABLE_ERRORS as again:
                error = again


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
