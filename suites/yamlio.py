"""YAML loading that remembers where every key came from.

pydantic tells us *which* key is wrong; this module lets us also say on which
line, so that a lab engineer can jump straight to it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from suites.errors import SuiteError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


# A suite or lab file is a few hundred nodes; a "billion laughs" file of aliases to
# aliases expands to billions. Far above any real file, far below a hang.
MAX_NODES = 20_000
# A real file nests a handful of levels (variants.0.recipe.1.STEP.param). PyYAML composes
# and we construct recursively, so a file of thousands of "[" (or an alias to itself)
# would end in a RecursionError instead of a line saying what is wrong.
MAX_DEPTH = 64
# How much of a key a message quotes: a 2000-character key stays a readable line.
_KEY_SHOWN = 60

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _YamlProblem(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space: an error
    is one line on the terminal, whatever the YAML library or a value put in it."""
    return " ".join(text.split())


def _scalar(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    """A scalar as the safe loader resolves it (ints, floats, bools, nulls, strings),
    refused where it is no plain JSON-like value: suites and lab files are stored as
    JSON, and a date, bytes or NaN would fail there (or at a build) far from the file."""
    line = node.start_mark.line + 1
    shown = _quoted(node.value)
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as e:
        # An unknown or unsafe tag (!foo, !!python/object): no constructor for it.
        problem = getattr(e, "problem", None) or str(e)
        raise _YamlProblem(_one_line(f"cannot read {shown}: {problem}"), line) from None
    except (ValueError, OverflowError) as e:
        # PyYAML's own int()/date() calls: a 5000-digit number, the date 2024-13-45.
        raise _YamlProblem(_one_line(f"cannot read {shown}: {e}"), line) from None
    if isinstance(value, (datetime.date, datetime.datetime)):
        raise _YamlProblem(f"{node.value!r} reads as a date; quote it if it is meant as text", line)
    if isinstance(value, bytes):
        raise _YamlProblem("binary (!!binary) values are not supported", line)
    if isinstance(value, float) and not math.isfinite(value):
        raise _YamlProblem(f"{node.value!r} is not a finite number", line)
    return value


def _construct(
    node: yaml.Node,
    path: Loc,
    lines: dict[Loc, int],
    budget: list[int],
    loader: yaml.SafeLoader,
    depth: int = 0,
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _YamlProblem(
            f"more than {MAX_NODES} values (aliases expanding without end?)",
            node.start_mark.line + 1,
        )
    if depth > MAX_DEPTH:
        raise _YamlProblem(
            f"nested more than {MAX_DEPTH} levels deep (an alias to itself?)",
            node.start_mark.line + 1,
        )
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                raise _YamlProblem("merge keys (<<) are not supported: write the keys out", line)
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise _YamlProblem(f"a key must be a string, not a {kind}", line)
            key = _scalar(key_node, loader)
            if not isinstance(key, str):
                # Every key of a suite or lab file is a name; YAML reads yes/no/on/off,
                # ~ and numbers as other types, which pydantic would report as "Keys
                # should be strings" at a line it cannot find.
                kind = {bool: "a boolean", int: "a number", float: "a number"}.get(
                    type(key), "null"
                )
                raise _YamlProblem(
                    f"key {_quoted(key_node.value)} reads as {kind}, not a string; quote it", line
                )
            if key in out:
                # YAML would keep the last value silently: a typo'd copy-paste is a mistake.
                first = lines.get((*path, key))
                raise _YamlProblem(f"duplicate key {_quoted(key)} (first on line {first})", line)
            lines[(*path, key)] = line
            out[key] = _construct(value_node, (*path, key), lines, budget, loader, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, i), lines, budget, loader, depth + 1)
            for i, item in enumerate(node.value)
        ]
    return _scalar(node, loader)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing: PyYAML's composer recurses
    once per level, its event parser does not."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _YamlProblem(
                    f"nested more than {MAX_DEPTH} levels deep", event.start_mark.line + 1
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _yaml_error(e: yaml.YAMLError, text: str) -> tuple[str, int | None]:
    """(one-line problem, line) of a PyYAML error."""
    if isinstance(e, yaml.reader.ReaderError):
        # A character YAML does not allow (NUL, other control characters): the reader
        # knows only its position in the text.
        code = e.character if isinstance(e.character, int) else ord(e.character)
        line = text.count("\n", 0, e.position) + 1
        return f"unacceptable character #x{code:04x}: {e.reason}", line
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
    # An unclosed "[", "{" or quote is noticed lines later: name where it began.
    opened = _open_flow(text, mark.index) if mark is not None else None
    if opened is not None and opened[1] != mark.line + 1:
        problem += f" (the {opened[0]!r} on line {opened[1]} is not closed)"
    elif context and start is not None and (mark is None or start.line != mark.line):
        problem += f" ({context} on line {start.line + 1})"
    return _one_line(problem), (mark.line + 1 if mark else None)


_FLOW_OPEN = {yaml.FlowSequenceStartToken: "[", yaml.FlowMappingStartToken: "{"}
_FLOW_CLOSE = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)


def _open_flow(text: str, until: int) -> tuple[str, int] | None:
    """The innermost "[" or "{" still open at character ``until``, and its line."""
    stack: list[tuple[str, int]] = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= until:
                break
            if type(token) in _FLOW_OPEN:
                stack.append((_FLOW_OPEN[type(token)], token.start_mark.line + 1))
            elif isinstance(token, _FLOW_CLOSE) and stack:
                stack.pop()
    except yaml.YAMLError:
        pass  # the scanner's own error: what it read so far is all there is
    return stack[-1] if stack else None


def _quoted(text: str) -> str:
    """``text`` as a quoted Python string, a very long one shortened."""
    return repr(text) if len(text) <= _KEY_SHOWN else repr(text[:_KEY_SHOWN]) + "..."


def _shown_key(part: str | int) -> str:
    """A key path element as a message shows it: a plain name as it is, anything that
    could be misread (spaces, newlines, dots, control characters, the empty string) as
    a quoted Python string, a very long one shortened."""
    if isinstance(part, int):
        return str(part)
    if part and part.isprintable() and not any(c.isspace() or c in ".'\"" for c in part):
        return part if len(part) <= _KEY_SHOWN else part[:_KEY_SHOWN] + "..."
    return _quoted(part)


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file; return the data and a map from key path to line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"cannot read: {e}", file=str(path)) from None
    try:
        _check_depth(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        problem, line = _yaml_error(e, text)
        raise SuiteError(f"not valid YAML: {problem}", file=str(path), line=line) from None
    except _YamlProblem as e:
        raise SuiteError(str(e), file=str(path), line=e.line) from None
    lines: dict[Loc, int] = {}
    if node is None:
        return {}, lines
    try:
        # One safe constructor for the file's scalars (it resolves ints, floats, bools,
        # nulls and strings as yaml.safe_load does, and knows no unsafe tag).
        return _construct(node, (), lines, [MAX_NODES], yaml.SafeLoader("")), lines
    except _YamlProblem as e:
        raise SuiteError(str(e), file=str(path), line=e.line) from None


def line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """Line of the deepest known prefix of ``loc`` (a missing key points at its parent)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def validate_file(model: type[M], path: Path) -> M:
    """Load ``path`` and validate it as ``model``; the first problem becomes a SuiteError."""
    data, lines = load_yaml_with_lines(path)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        key = ".".join(_shown_key(p) for p in loc) or "(top level)"
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise SuiteError(
            _one_line(err["msg"] + more), file=str(path), key=key, line=line_for(loc, lines)
        ) from None


def error_at(loc: Loc, message: str, value: Any) -> ValidationError:
    """One validation error at ``loc`` (relative to the validator that raises it), with
    ``message`` as it is (no "Value error, " in front)."""
    kind = PydanticCustomError("invalid", "{message}", {"message": message})
    detail: InitErrorDetails = {"type": kind, "loc": loc, "input": value}
    return ValidationError.from_exception_data("suite", [detail])


@contextmanager
def errors_at(where: Callable[[Loc], Loc]) -> Iterator[None]:
    """Re-raise a ValidationError of the block with every location mapped by ``where``.

    For a value that is validated apart from the file's own model (a recipe step's
    params, by the step's params model): its errors are then reported at the key the
    file wrote it under, so that ``validate_file`` finds the line.
    """
    try:
        yield
    except ValidationError as e:
        details: list[InitErrorDetails] = [
            {
                "type": PydanticCustomError(err["type"], "{message}", {"message": err["msg"]}),
                "loc": where(tuple(err["loc"])),
                "input": err["input"],
            }
            for err in e.errors()
        ]
        raise ValidationError.from_exception_data(e.title, details) from None
