"""ELO ratings as ML-Agents' self-play computes them.

A game's result comes from the sign of the learning agent's final reward (win 1, loss 0, draw
0.5). The expected score against an opponent rated ``R_opp`` is
``10^(R/400) / (10^(R/400) + 10^(R_opp/400))``, and the rating moves by ``K (result - E)``;
the opponent's rating moves the other way. ML-Agents' code applies no K-factor (``K = 1``)
although its documentation's example uses 16: :data:`MLAGENTS_K_FACTOR` follows the code.
"""

from __future__ import annotations

MLAGENTS_K_FACTOR = 1.0
WIN, DRAW, LOSS = 1.0, 0.5, 0.0


def game_result(final_reward: float) -> float:
    """1 for a positive final reward (a win), 0 for a negative one, 0.5 for zero."""
    if final_reward > 0:
        return WIN
    if final_reward < 0:
        return LOSS
    return DRAW


def expected_score(rating: float, opponent_rating: float) -> float:
    """The score ``rating`` expects against ``opponent_rating`` (0.5 between equals)."""
    mine = 10.0 ** (rating / 400.0)
    theirs = 10.0 ** (opponent_rating / 400.0)
    return mine / (mine + theirs)


def rating_change(
    rating: float, opponent_rating: float, result: float, k_factor: float = MLAGENTS_K_FACTOR
) -> float:
    """How much ``rating`` moves after a game with ``result`` (the opponent moves by minus this)."""
    return k_factor * (result - expected_score(rating, opponent_rating))
