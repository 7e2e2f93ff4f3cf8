"""``unity-sb3 learn``'s curriculum: lessons that advance while the behaviors train.

:class:`CurriculumDriver` does what mlagents-learn's trainer controller does after every
environment step: it asks the :class:`~sb3_ext.curriculum.Curriculum` whether a lesson is
complete (progress and episode returns of the behaviors the criteria name), and on a change
prints mlagents-learn's console line, sends the new values to every player (the next joint
step is a full reset when a finished lesson has ``require_reset``) and keeps the lesson
numbers for ``training_status.json`` (written with every checkpoint, so a killed run resumes
at its lesson). It also reports ``Environment/Lesson Number/<parameter>`` for every parameter
to every behavior's summaries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from cli.config_errors import ConfigError
from cli.run_artifacts import RunDirectory
from cli.training_stats import BehaviorStats
from sb3_ext.curriculum import LESSON_NUMBER_STAT, Curriculum
from unity_gym.lockstep_behaviors import LockstepBehaviors
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod

logger = logging.getLogger("unity_sb3")

Progress = Callable[[], float]


def check_criteria_behaviors(curriculum: Curriculum, behaviors: Sequence[str]) -> None:
    """Every completion criteria's ``behavior`` must be one the run trains."""
    for parameter, chain in curriculum.lessons.items():
        for index, lesson in enumerate(chain):
            criteria = lesson.completion_criteria
            if criteria is not None and criteria.behavior not in behaviors:
                raise ConfigError(
                    f"environment_parameters.{parameter}.curriculum[{index}]."
                    f"completion_criteria.behavior: {criteria.behavior!r} is not a behavior "
                    f"of this scene, so lesson {lesson.name!r} could never end. The scene's "
                    f"behaviors are: {', '.join(behaviors)}."
                )


class CurriculumDriver:
    """Advances ``curriculum`` after every joint step of ``lockstep``'s players.

    :param progress: behavior -> trained steps over its ``max_steps``, for the behaviors
        that train (others never complete a lesson).
    :param stats: every behavior's summaries.
    """

    def __init__(
        self,
        curriculum: Curriculum,
        lockstep: LockstepBehaviors,
        run: RunDirectory,
        progress: Mapping[str, Progress],
        stats: Sequence[BehaviorStats],
    ) -> None:
        self.curriculum = curriculum
        self.lockstep = lockstep
        self.run = run
        self.progress = dict(progress)
        self.stats = list(stats)
        run.set_lessons(curriculum.lesson_numbers)

    def log_lessons(self) -> None:
        """The current lesson of every parameter with more than one (at the start of a run)."""
        for parameter, chain in self.curriculum.lessons.items():
            if len(chain) > 1:
                number = self.curriculum.lesson_numbers[parameter]
                logger.info(
                    "Parameter '%s' starts in lesson %d of %d ('%s').",
                    parameter,
                    number,
                    len(chain),
                    chain[number].name,
                )

    def after_step(self) -> None:
        """A :attr:`LockstepBehaviors.step_listeners` entry (runs holding the players' lock)."""
        update = self.curriculum.update({name: get() for name, get in self.progress.items()})
        if update:
            for change in update.changes:
                logger.info(change.message())
            self.lockstep.set_environment_parameters(
                self.curriculum.values(), reset=update.require_reset
            )
            self.run.set_lessons(self.curriculum.lesson_numbers)
        for parameter, number in self.curriculum.lesson_numbers.items():
            key = LESSON_NUMBER_STAT.format(parameter)
            for stats in self.stats:
                stats.add(key, number, StatsAggregationMethod.MOST_RECENT)
