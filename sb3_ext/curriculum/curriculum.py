"""The lessons of every environment parameter, and when they advance (ML-Agents' rules).

:class:`Curriculum` plays the part of mlagents-learn's ``EnvironmentParameterManager``: it
keeps each parameter's lesson number, the recent episode returns of the behaviors named in
completion criteria, and decides at each call of :meth:`Curriculum.update` (ML-Agents calls it
once per environment step) which parameters move on - at most one lesson per parameter per
call. When any moves, every return buffer is cleared.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sb3_ext.curriculum.lessons import Lesson, ParameterValue, describe_value

LESSON_NUMBER_STAT = "Environment/Lesson Number/{}"  # ML-Agents' TensorBoard name, per parameter


@dataclass(frozen=True)
class LessonChange:
    """``parameter`` moved on to lesson number ``lesson_number``."""

    parameter: str
    lesson_number: int
    lesson: Lesson

    def message(self) -> str:
        """mlagents-learn's console line for the change."""
        return (
            f"Parameter '{self.parameter}' is in lesson '{self.lesson.name}' and has value "
            f"'{describe_value(self.lesson.value)}'."
        )


@dataclass(frozen=True)
class CurriculumUpdate:
    """What one :meth:`Curriculum.update` changed; false when nothing did."""

    changes: tuple[LessonChange, ...] = ()
    require_reset: bool = False

    def __bool__(self) -> bool:
        return bool(self.changes)


class EpisodeReturns:
    """The last episode returns of each behavior, as many as its criteria need (thread-safe:
    learners add from their own threads)."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self._buffers = {name: deque[float](maxlen=max(1, size)) for name, size in sizes.items()}
        self._lock = threading.Lock()

    def add(self, behavior: str, episode_return: float) -> None:
        """Record one finished episode (ignored for behaviors no criteria watch)."""
        buffer = self._buffers.get(behavior)
        if buffer is not None:
            with self._lock:
                buffer.append(float(episode_return))

    def of(self, behavior: str) -> list[float]:
        with self._lock:
            return list(self._buffers.get(behavior, ()))

    def clear(self) -> None:
        with self._lock:
            for buffer in self._buffers.values():
                buffer.clear()


class Curriculum:
    """Each parameter's lessons and current lesson.

    :param lessons: parameter name -> its lessons, first to last (a constant or a sampler is a
        one-lesson curriculum).
    :param lesson_numbers: where to start (a resumed run's saved lessons); default the first.
    """

    def __init__(
        self,
        lessons: Mapping[str, Sequence[Lesson]],
        lesson_numbers: Mapping[str, int] | None = None,
    ) -> None:
        for parameter, chain in lessons.items():
            if not chain:
                raise ValueError(f"environment parameter {parameter!r} has no lesson.")
            for index, lesson in enumerate(chain[:-1]):
                if lesson.completion_criteria is None:
                    raise ValueError(
                        f"Lesson {index} ({lesson.name!r}) of environment parameter "
                        f"{parameter!r} is not the last one, so it needs completion_criteria."
                    )
        self.lessons: dict[str, tuple[Lesson, ...]] = {k: tuple(v) for k, v in lessons.items()}
        self.lesson_numbers: dict[str, int] = dict.fromkeys(self.lessons, 0)
        self._smoothed: dict[str, float] = dict.fromkeys(self.lessons, 0.0)
        self.returns = EpisodeReturns({b: self.reward_buffer_size(b) for b in self.behaviors})
        if lesson_numbers is not None:
            self.load_state_dict({k: {"lesson_num": v} for k, v in lesson_numbers.items()})

    @property
    def behaviors(self) -> list[str]:
        """The behaviors completion criteria name, in order of first mention."""
        names: dict[str, None] = {}
        for chain in self.lessons.values():
            for lesson in chain[:-1]:
                if lesson.completion_criteria is not None:
                    names[lesson.completion_criteria.behavior] = None
        return list(names)

    def reward_buffer_size(self, behavior: str) -> int:
        """How many recent returns ``behavior``'s criteria look at: the largest
        ``min_lesson_length`` among them, at least 1 (ML-Agents' reward buffer size)."""
        sizes = [
            lesson.completion_criteria.min_lesson_length
            for chain in self.lessons.values()
            for lesson in chain
            if lesson.completion_criteria is not None
            and lesson.completion_criteria.behavior == behavior
        ]
        return max([1, *sizes])

    def lesson(self, parameter: str) -> Lesson:
        """``parameter``'s current lesson."""
        return self.lessons[parameter][self.lesson_numbers[parameter]]

    def values(self) -> dict[str, ParameterValue]:
        """Every parameter's current value (what the environment must receive)."""
        return {parameter: self.lesson(parameter).value for parameter in self.lessons}

    def record_episode(self, behavior: str, episode_return: float) -> None:
        """A finished episode of ``behavior`` and its raw environment return."""
        self.returns.add(behavior, episode_return)

    def update(self, progress: Mapping[str, float]) -> CurriculumUpdate:
        """Move every parameter whose current lesson is complete to its next lesson.

        :param progress: trained steps over ``max_steps`` of each behavior that trains; a
            lesson whose criteria name another behavior waits.
        """
        changes: list[LessonChange] = []
        require_reset = False
        for parameter, chain in self.lessons.items():
            number = self.lesson_numbers[parameter]
            criteria = chain[number].completion_criteria
            if criteria is None or number == len(chain) - 1 or criteria.behavior not in progress:
                continue
            done, self._smoothed[parameter] = criteria.need_increment(
                progress[criteria.behavior],
                self.returns.of(criteria.behavior),
                self._smoothed[parameter],
            )
            if done:
                self.lesson_numbers[parameter] = number + 1
                changes.append(LessonChange(parameter, number + 1, chain[number + 1]))
                require_reset = require_reset or criteria.require_reset
        if changes:
            self.returns.clear()
        return CurriculumUpdate(tuple(changes), require_reset)

    def state_dict(self) -> dict[str, dict[str, int]]:
        """ML-Agents' ``training_status.json`` layout: ``{parameter: {"lesson_num": n}}``."""
        return {parameter: {"lesson_num": n} for parameter, n in self.lesson_numbers.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, int]]) -> None:
        """Continue at saved lessons; parameters the state lacks keep their lesson, and a
        saved number past the last lesson (a shorter curriculum now) takes the last one."""
        for parameter, chain in self.lessons.items():
            entry = state.get(parameter)
            if entry is None or "lesson_num" not in entry:
                continue
            number = int(entry["lesson_num"])
            if number < 0:
                raise ValueError(
                    f"Saved lesson number {number} of environment parameter {parameter!r} is "
                    "negative."
                )
            self.lesson_numbers[parameter] = min(number, len(chain) - 1)
