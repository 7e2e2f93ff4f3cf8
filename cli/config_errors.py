"""Training-configuration problems as one-paragraph messages: :class:`ConfigError`.

A configuration fails in one of three places, and each becomes a message that names the file,
every offending key as the user wrote it, and how to fix it:

- reading the file (:func:`file_error_message`, :func:`mapping_error_message`): missing,
  unreadable, not UTF-8, bad YAML syntax (with line and column), or not a mapping;
- validating it against the pydantic schema (:func:`validation_error_message`): unknown keys
  with the closest valid one, wrong types, out-of-range values, unsupported trainers and
  samplers; the schema's own checks raise :func:`config_error` to be shown word for word;
- later checks by the command (demo files, unlisted behaviors), which raise
  :class:`ConfigError` directly.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import PydanticCustomError

# The error type of a sampler that is neither a number nor a known sampler_type; its context
# carries the valid kinds under this key.
INVALID_SAMPLER = "invalid_sampler"
SAMPLER_KINDS_CONTEXT = "kinds"
_MAX_LISTED_ERRORS = 20


class ConfigError(Exception):
    """A training configuration that cannot be used; ``str()`` is the message for the user."""


def config_error(message: str) -> PydanticCustomError:
    """An error for a schema validator to raise; the message is shown after the key's path."""
    return PydanticCustomError("config", "{message}", {"message": message})


# -- reading the file ------------------------------------------------------------------------------


def file_error_message(
    path: Path, what: str, err: OSError | UnicodeDecodeError | yaml.YAMLError
) -> str:
    """Why ``path`` (a ``what`` file, e.g. "Training configuration") could not be read."""
    if isinstance(err, FileNotFoundError):
        return (
            f"{what} file {path} does not exist (looked for {path.absolute()}). Check the path; "
            "a relative path is taken from the current directory."
        )
    if isinstance(err, IsADirectoryError):
        return f"{what} file {path} is a folder; give the YAML file in it."
    if isinstance(err, UnicodeDecodeError):
        return f"{what} file {path} is not UTF-8 text; save it as UTF-8."
    if isinstance(err, OSError):
        return f"{what} file {path} cannot be read: {err.strerror or err}."
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or err.context or "syntax error"
        return (
            f"{what} file {path} is not valid YAML{where}: {problem}. Fix the syntax there "
            "(indentation and a missing ':' after a key are the usual causes)."
        )
    return f"{what} file {path} is not valid YAML: {err}."


def mapping_error_message(path: Path, what: str, data: Any) -> str:
    """Why the parsed YAML ``data`` of ``path`` is not a configuration (it is not a mapping)."""
    if data is None:
        return f"{what} file {path} is empty; it needs at least one section."
    return (
        f"{what} file {path} must be a mapping of sections (key: value lines) at the top "
        f"level, but it holds {describe_type(data)}."
    )


# -- validation errors -----------------------------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "model_type": "a mapping (a section of key: value lines)",
    "model_attributes_type": "a mapping (a section of key: value lines)",
    "dict_type": "a mapping (a section of key: value lines)",
    "list_type": "a list",
    "tuple_type": "a list",
}
_BOUNDS = {
    "greater_than": ("gt", "a value greater than"),
    "greater_than_equal": ("ge", "a value of at least"),
    "less_than": ("lt", "a value less than"),
    "less_than_equal": ("le", "a value of at most"),
}


def validation_error_message(
    err: ValidationError,
    data: Mapping[str, Any],
    schema: type[BaseModel],
    source: Path | None,
    legacy: bool,
    origins: Mapping[str, str],
) -> str:
    """The paragraph for ``err``, raised validating ``data`` (the mapping as written) against
    ``schema``.

    ``source`` names the file (None: the command line); ``legacy`` adds that keys are those of
    the converted file; ``origins`` maps dotted keys to the command-line flags that set them.
    """
    errors = err.errors()
    # A behavior with an unsupported trainer_type: its hyperparameters cannot be judged.
    bad_trainers = [
        tuple(e["loc"][:-1])
        for e in errors
        if e["type"] == "literal_error" and e["loc"] and e["loc"][-1] == "trainer_type"
    ]
    tags = _union_tags(schema)
    lines: list[str] = []
    for error in errors:
        loc = tuple(error["loc"])
        if any(loc[: len(p) + 1] == (*p, "hyperparameters") for p in bad_trainers):
            continue
        parts = _display_path(loc, data, tags)
        path = ".".join(map(str, parts)) or "(top level)"
        line = _describe_error(error, path, schema)
        if path in origins:
            line += f" [set by {origins[path]}]"
        if line not in lines:
            lines.append(line)
    shown = lines[:_MAX_LISTED_ERRORS]
    if len(lines) > len(shown):
        shown.append(f"... and {len(lines) - len(shown)} more")
    where = str(source) if source is not None else "The command-line options"
    count = "a problem" if len(lines) == 1 else f"{len(lines)} problems"
    body = "\n".join(f"  - {line}" for line in shown)
    note = ""
    if legacy:
        note = (
            " Keys are named as in the current format the old file was converted to; "
            "`unity-sb3 upgrade-config` writes that file out."
        )
    return (
        f"{where}: the training configuration has {count}:\n{body}\n"
        f"Fix {'it' if len(lines) == 1 else 'them'} and run again; docs/config.md lists every "
        f"key with its default.{note}"
    )


def describe_type(value: Any) -> str:
    """What kind of YAML value ``value`` is, in words ("an integer", "a mapping", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, Mapping | list | tuple):
        text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10**6).strip()
        if "\n" in text:  # YAML breaks lines for odd keys (a newline); JSON escapes them
            text = json.dumps(_plain(value), ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _display_path(
    loc: tuple[Any, ...], data: Mapping[str, Any], tags: frozenset[str]
) -> tuple[Any, ...]:
    """The error's location as the user wrote it: union tags dropped, and a parameter given as
    a number or sampler shown without the one-lesson curriculum it is normalized into."""
    parts = [part for part in loc if part not in tags]
    parameters = data.get("environment_parameters")
    if len(parts) >= 2 and parts[0] == "environment_parameters" and isinstance(parameters, Mapping):
        written = parameters.get(parts[1])
        if not (isinstance(written, Mapping) and "curriculum" in written):
            if tuple(parts[2:5]) == ("curriculum", 0, "value"):
                del parts[2:5]
            elif tuple(parts[2:4]) == ("curriculum", 0):
                del parts[2:4]
    return tuple(parts)


@functools.cache
def _union_tags(schema: type[BaseModel]) -> frozenset[str]:
    """Every tag of a tagged union in ``schema`` (they appear in error locations)."""
    tags: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending: list[Any] = [schema]
    while pending:
        annotation = pending.pop()
        if get_origin(annotation) is Annotated:
            inner, *metadata = get_args(annotation)
            tags.update(m.tag for m in metadata if isinstance(m, Tag))
            pending.append(inner)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in seen:
                seen.add(annotation)
                pending.extend(field.annotation for field in annotation.model_fields.values())
        else:
            pending.extend(get_args(annotation))
    return frozenset(tags)


def _strip_annotations(annotation: Any) -> Any:
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        members = [m for m in get_args(annotation) if m is not type(None)]
        if _is_union(annotation) and len(members) == 1:
            annotation = members[0]
            continue
        return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _descend(annotation: Any, part: Any) -> Any:
    annotation = _strip_annotations(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        return field.annotation
    origin = get_origin(annotation)
    if origin is dict:
        return get_args(annotation)[1]
    if origin in (list, tuple):
        return get_args(annotation)[0]
    if _is_union(annotation):
        for member in get_args(annotation):
            tags = [m.tag for m in getattr(member, "__metadata__", ()) if isinstance(m, Tag)]
            if part in tags:
                return member
    return None


def _model_at(schema: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    annotation: Any = schema
    for part in loc:
        annotation = _descend(annotation, part)
        if annotation is None:
            return None
    annotation = _strip_annotations(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _section_models(model: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel]]]:
    """The sub-sections of a model, with every member model of a union."""
    for name, field in model.model_fields.items():
        annotation = _strip_annotations(field.annotation)
        members = get_args(annotation) if _is_union(annotation) else (annotation,)
        for member in members:
            member = _strip_annotations(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                yield name, member


def _unknown_key_hint(key: Any, model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    valid = list(model.model_fields)
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    for section, member in _section_models(model):
        if key in member.model_fields:
            return f"; it belongs in the {section} section ({section}.{key})"
    return f"; valid keys here: {', '.join(valid)}"


def _choices(expected: str) -> list[str]:
    """The quoted choices of a literal error's ``expected`` text (``'ppo' or 'sac'``)."""
    return re.findall(r"'([^']*)'", expected)


def _literal_hint(value: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe_error(error: Mapping[str, Any], path: str, schema: type[BaseModel]) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    shown = f"{_show(value)} ({describe_type(value)})"
    if kind == "extra_forbidden":
        hint = _unknown_key_hint(error["loc"][-1], _model_at(schema, tuple(error["loc"][:-1])))
        return f"{path}: unknown key{hint}"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "config":
        return f"{path}: {ctx.get('message', error['msg'])}"
    if kind == "literal_error" and str(error["loc"][-1]) == "trainer_type":
        trainers = _choices(str(ctx.get("expected", "")))
        return (
            f"{path}: trainer_type {_show(value)} is not supported; unity-sb3 trains "
            f"{' and '.join(trainers)}"
        )
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        return (
            f"{path}: got {shown}, expected one of {expected}"
            f"{_literal_hint(value, _choices(expected))}"
        )
    if kind == INVALID_SAMPLER:
        return _describe_sampler_error(value, path, str(ctx.get(SAMPLER_KINDS_CONTEXT, "")))
    if kind in _EXPECTED:
        return f"{path}: got {shown}, expected {_EXPECTED[kind]}"
    if kind in _BOUNDS:
        bound_key, phrase = _BOUNDS[kind]
        return f"{path}: got {shown}, expected {phrase} {ctx.get(bound_key)}"
    if kind == "too_short":
        return f"{path}: expected at least {ctx.get('min_length')} item(s), got {_show(value)}"
    if kind == "too_long":
        return f"{path}: expected at most {ctx.get('max_length')} item(s), got {_show(value)}"
    return f"{path}: {error['msg']} (got {shown})"


def _describe_sampler_error(value: Any, path: str, kinds: str) -> str:
    """``kinds``: the sampler types, comma-separated, as the schema's error context gives them."""
    if isinstance(value, Mapping) and "sampler_type" in value:
        kind = value["sampler_type"]
        hint = _literal_hint(kind, kinds.split(", "))
        return f"{path}.sampler_type: got {_show(kind)}, expected one of {kinds}{hint}"
    if isinstance(value, Mapping):
        return (
            f"{path}: a sampler needs sampler_type ({kinds}) and sampler_parameters; "
            f"got keys {', '.join(map(str, value))}"
        )
    return (
        f"{path}: got {_show(value)} ({describe_type(value)}), expected a number or a sampler "
        f"(sampler_type: {kinds}, with sampler_parameters)"
    )
