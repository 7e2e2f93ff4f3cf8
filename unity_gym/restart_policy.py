"""When a crashed or hung player may be restarted: mlagents-learn's three restart settings.

A player counts as failed when its process exits, it closes the connection, it sends bytes that
are not a protocol message, or it sends nothing for ``timeout_wait`` seconds. As in
mlagents-learn, the limits hold per player: at most ``max_lifetime_restarts`` restarts over the
run and at most ``restarts_rate_limit_n`` within any ``restarts_rate_limit_period_s`` seconds
(-1 lifts either limit).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from unity_gym.exception import (
    UnityCommunicationException,
    UnityCommunicatorStoppedException,
    UnityException,
    UnityPlayerExitedException,
    UnityRestartLimitException,
    UnityTimeOutException,
)

# What a restart can cure: the player died, hung, or garbled the link.
RESTARTABLE_ERRORS: tuple[type[UnityException], ...] = (
    UnityPlayerExitedException,
    UnityCommunicatorStoppedException,
    UnityCommunicationException,
    UnityTimeOutException,
)


@dataclass(frozen=True)
class RestartPolicy:
    """mlagents-learn's ``env_settings`` restart keys, with its defaults."""

    max_lifetime_restarts: int = 10
    restarts_rate_limit_n: int = 1
    restarts_rate_limit_period_s: float = 60.0


class RestartBudget:
    """Counts the restarts of each player against a :class:`RestartPolicy`."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.total = 0
        self._lifetime: dict[int, int] = {}
        self._recent: dict[int, deque[float]] = {}

    def restarts_of(self, player: int) -> int:
        return self._lifetime.get(player, 0)

    def take(self, player: int, error: UnityException) -> None:
        """Record a restart of ``player``, or raise when the policy allows no more."""
        policy, now = self.policy, time.monotonic()
        recent = self._recent.setdefault(player, deque())
        while recent and recent[0] <= now - policy.restarts_rate_limit_period_s:
            recent.popleft()
        lifetime = self._lifetime.get(player, 0)
        if 0 <= policy.max_lifetime_restarts <= lifetime:
            raise UnityRestartLimitException(
                f"Player {player} failed again after {lifetime} restarts, the limit "
                f"max_lifetime_restarts={policy.max_lifetime_restarts} (--max-lifetime-restarts; "
                f"-1 lifts it). Its last failure: {error}"
            ) from error
        if 0 <= policy.restarts_rate_limit_n <= len(recent):
            raise UnityRestartLimitException(
                f"Player {player} failed again after {len(recent)} restarts within "
                f"{policy.restarts_rate_limit_period_s:g} s, the limit restarts_rate_limit_n="
                f"{policy.restarts_rate_limit_n} per restarts_rate_limit_period_s="
                f"{policy.restarts_rate_limit_period_s:g} (--restarts-rate-limit-n, "
                f"--restarts-rate-limit-period-s; -1 lifts it). Its last failure: {error}"
            ) from error
        recent.append(now)
        self._lifetime[player] = lifetime + 1
        self.total += 1
