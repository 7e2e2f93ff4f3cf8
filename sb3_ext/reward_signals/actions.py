"""Actions as ML-Agents' reward models see them: continuous part and discrete branches.

ML-Agents' ``ActionFlattener`` feeds a reward model ``[continuous actions, one-hot(branch 1),
..., one-hot(branch k)]`` (width ``continuous_size + sum(branches)``). SB3 has ``Box``
(continuous), ``Discrete`` (one branch) and ``MultiDiscrete`` (several branches) action
spaces; a hybrid layout (both parts) can be built directly, with action tensors holding the
continuous values first and then one column of branch indices per branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from torch.nn import functional as F


@dataclass(frozen=True)
class ActionLayout:
    """ML-Agents' ``ActionSpec``: ``continuous_size`` floats, then one index per branch."""

    continuous_size: int = 0
    discrete_branches: tuple[int, ...] = ()
    # Subtracted from the branch indices (gymnasium's ``start`` of Discrete/MultiDiscrete).
    discrete_offsets: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.continuous_size < 0 or any(n < 1 for n in self.discrete_branches):
            raise ValueError(f"Invalid action layout {self}.")
        if self.continuous_size == 0 and not self.discrete_branches:
            raise ValueError("An action layout needs continuous actions or discrete branches.")
        if self.discrete_offsets and len(self.discrete_offsets) != len(self.discrete_branches):
            raise ValueError("discrete_offsets needs one offset per branch.")

    @classmethod
    def hybrid(cls, continuous_size: int, discrete_branches: tuple[int, ...]) -> ActionLayout:
        """A layout with both parts (ML-Agents' hybrid actions)."""
        return cls(int(continuous_size), tuple(int(n) for n in discrete_branches))

    @classmethod
    def from_space(cls, action_space: spaces.Space[Any]) -> ActionLayout:
        """The layout of a ``Box``, ``Discrete`` or one-dimensional ``MultiDiscrete`` space."""
        if isinstance(action_space, spaces.Box):
            return cls(continuous_size=int(np.prod(action_space.shape, dtype=np.int64)))
        if isinstance(action_space, spaces.Discrete):
            return cls(
                discrete_branches=(int(action_space.n),),
                discrete_offsets=(int(action_space.start),),
            )
        if isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
            starts = np.broadcast_to(np.asarray(action_space.start), action_space.nvec.shape)
            return cls(
                discrete_branches=tuple(int(n) for n in action_space.nvec),
                discrete_offsets=tuple(int(s) for s in starts),
            )
        raise ValueError(
            f"Reward signals take Box, Discrete or one-dimensional MultiDiscrete actions, not "
            f"{action_space} (ML-Agents' actions are continuous and/or discrete branches). For "
            "hybrid actions build ActionLayout.hybrid(continuous_size, branches)."
        )

    @property
    def discrete_size(self) -> int:
        """Number of discrete branches."""
        return len(self.discrete_branches)

    @property
    def flattened_size(self) -> int:
        """``continuous_size + sum(discrete_branches)``."""
        return self.continuous_size + sum(self.discrete_branches)

    def split(self, actions: th.Tensor) -> tuple[th.Tensor | None, th.Tensor | None]:
        """``[B, ...]`` actions -> (continuous ``[B, c]`` floats or None, branch indices
        ``[B, k]`` int64 from 0, or None)."""
        flat = actions.reshape(actions.shape[0], -1)
        width = self.continuous_size + self.discrete_size
        if flat.shape[1] != width:
            raise ValueError(
                f"Actions of shape {tuple(actions.shape)} do not fit the layout {self} "
                f"({width} columns expected)."
            )
        continuous = flat[:, : self.continuous_size].float() if self.continuous_size else None
        discrete = None
        if self.discrete_size:
            discrete = flat[:, self.continuous_size :].round().long()
            if self.discrete_offsets and any(self.discrete_offsets):
                discrete = discrete - th.as_tensor(self.discrete_offsets, device=discrete.device)
        return continuous, discrete

    def one_hot(self, discrete: th.Tensor) -> th.Tensor:
        """Branch indices ``[B, k]`` -> concatenated one-hot ``[B, sum(branches)]``."""
        return th.cat(
            [F.one_hot(discrete[:, i], n).float() for i, n in enumerate(self.discrete_branches)],
            dim=1,
        )

    def flatten(self, actions: th.Tensor) -> th.Tensor:
        """ML-Agents' flattened action ``[continuous, one-hot per branch]``."""
        continuous, discrete = self.split(actions)
        parts = [
            p
            for p in (continuous, None if discrete is None else self.one_hot(discrete))
            if p is not None
        ]
        return th.cat(parts, dim=1)
