"""YAML loading that remembers where every key came from.

pydantic tells us *which* key is wrong; this module lets us also say on which
line, so that a lab engineer can jump straight to it.
"""

from __future__ import annotations

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


class _YamlProblem(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _construct(node: yaml.Node, path: Loc, lines: dict[Loc, int], budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _YamlProblem(
            f"more than {MAX_NODES} values (aliases expanding without end?)",
            node.start_mark.line + 1,
        )
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            line = key_node.start_mark.line + 1
            if key in out:
                # YAML would keep the last value silently: a typo'd copy-paste is a mistake.
                first = lines.get((*path, key))
                raise _YamlProblem(f"duplicate key {key!r} (first on line {first})", line)
            lines[(*path, key)] = line
            out[key] = _construct(value_node, (*path, key), lines, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, i), lines, budget) for i, item in enumerate(node.value)
        ]
    # Scalars: let the safe constructor resolve ints, floats, bools, nulls.
    return yaml.safe_load(yaml.serialize(node))


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file; return the data and a map from key path to line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"cannot read: {e}", file=str(path)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise SuiteError(
            f"not valid YAML: {problem}", file=str(path), line=mark.line + 1 if mark else None
        ) from None
    lines: dict[Loc, int] = {}
    if node is None:
        return {}, lines
    try:
        return _construct(node, (), lines, [MAX_NODES]), lines
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
        key = ".".join(str(p) for p in loc) or "(top level)"
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise SuiteError(
            err["msg"] + more, file=str(path), key=key, line=line_for(loc, lines)
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
