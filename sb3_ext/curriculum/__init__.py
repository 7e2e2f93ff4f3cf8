"""Curriculum learning for Stable-Baselines3: ML-Agents' lessons over environment parameters.

- ``lessons``: :class:`Lesson` (a parameter's value: a constant or a sampler the environment
  draws from) and :class:`CompletionCriteria` (``measure: reward | progress``, smoothing,
  ``min_lesson_length``, ``require_reset``), with ML-Agents' ``need_increment`` rule.
- ``curriculum``: :class:`Curriculum`, every parameter's lessons, the watched behaviors'
  recent returns, and the update that moves lessons on (ML-Agents'
  ``EnvironmentParameterManager``); its ``state_dict`` is ``training_status.json``'s layout.
- ``callback``: :class:`CurriculumCallback` for plain SB3 scripts, and :func:`channel_sink`
  to send the values to Unity environments.
"""

from sb3_ext.curriculum.callback import CurriculumCallback, ParameterSink, channel_sink
from sb3_ext.curriculum.curriculum import (
    LESSON_NUMBER_STAT,
    Curriculum,
    CurriculumUpdate,
    EpisodeReturns,
    LessonChange,
)
from sb3_ext.curriculum.lessons import (
    MEASURES,
    CompletionCriteria,
    Lesson,
    Measure,
    ParameterValue,
    describe_value,
)

__all__ = [
    "LESSON_NUMBER_STAT",
    "MEASURES",
    "CompletionCriteria",
    "Curriculum",
    "CurriculumCallback",
    "CurriculumUpdate",
    "EpisodeReturns",
    "Lesson",
    "LessonChange",
    "Measure",
    "ParameterSink",
    "ParameterValue",
    "channel_sink",
    "describe_value",
]
