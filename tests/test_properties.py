"""Property tests of what users write (issue 11, "bad input, systematically").

Suite and lab files: documents are generated from the schema (``suites.schema`` and
``harness.lab``, with the registered recipe steps, runtimes, datasets and transports),
written out as YAML with a known line for every key, and mutated one way at a time:

* a value of the wrong type, an unknown key, a missing required key, a number out of
  its range - each must be refused;
* an odd string (empty, very long, unicode, NUL, newlines) or a YAML special written
  unquoted (``yes``, ``~``, ``.nan``, a date, ``*alias``, ``!!python/...``) at a
  scalar, and damage to the text itself (a line dropped or cut, a tab, deep nesting)
  - each may load or be refused.

A refusal is a :class:`~suites.errors.SuiteError` whose message is one line naming the
file; for a mutation at a key it also names that key (or its parent, for a missing
one) and a line inside that key's block of text. Never another exception. A sample
goes through the real CLI (``edgebench variants FILE``, ``edgebench lab import FILE``):
exit code 2, one ``edgebench: error:`` line, the same message, no traceback.

Command options: every command of the typer app (walked from the app object, so that
a new command is covered without a change here) gets unknown options, bad values for
its typed options and arguments (ints, floats, ranges, choices), a missing required
argument or option, an option without its value and a flag given one. In process
through ``harness.cli.main`` (what the console script runs) and, for a sample, through
the console script: exit code 2, one ``edgebench: error:`` line naming the option or
argument (plus at most click's "Try ... --help" hint), nothing on stdout, no work done.

Examples are derandomized (no database) so CI runs the same inputs every time.
``TALLY`` counts them; ``test_zz_properties_tally`` (last) prints the counts and
asserts that none was a traceback.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import pytest
import typer
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from devices.transport import transport_class
from harness.cli import app, main
from harness.lab import LabDevice, LabFile, import_lab
from harness.store import Store
from suites.datasets import DATASETS
from suites.errors import SuiteError
from suites.recipes import STEPS
from suites.runtimes import runtimes
from suites.schema import AccuracySpec, MeasureSpec, ModelSpec, Suite, VariantSpec, load_suite
from tests.conftest import make_runner

PROPERTIES = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # No shrinking: a failing document is shown as generated, at once (shrinking one
    # can take minutes, longer than the whole file's budget in CI).
    phases=(Phase.explicit, Phase.generate),
)


def examples(n: int) -> settings:
    """PROPERTIES with ``n`` examples: many in process, few where each spawns the CLI."""
    return settings(PROPERTIES, max_examples=n)


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # the documented one line
    loaded: Counter[str] = field(default_factory=Counter)  # a mutation that is still valid
    tracebacks: Counter[str] = field(default_factory=Counter)


TALLY = Tally()


# --------------------------------------------------------------------------- YAML out


@dataclass(frozen=True)
class Raw:
    """A scalar written into the YAML as it is (unquoted): a YAML special."""

    text: str


# Characters YAML lets stand in a file as they are (its "printable" set), less the line
# breaks: anything else is written as an escape inside double quotes.
_YAML_PRINTABLE = re.compile("[\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def quoted(text: str) -> str:
    """``text`` as a one-line double-quoted YAML scalar."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif _YAML_PRINTABLE.fullmatch(c) and c not in "\u2028\u2029\ufeff":
            out.append(c)
        elif ord(c) <= 0xFF:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def scalar(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        # YAML 1.1 reads a float only with a dot ("1e-05" is a string to PyYAML).
        text = repr(value)
        return text if "." in text and "e" not in text else f"{value:.17e}"
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    return quoted(str(value))


Loc = tuple[str | int, ...]


def emit(doc: dict[str, Any]) -> tuple[str, dict[Loc, tuple[int, int]]]:
    """``doc`` as block-style YAML (one key or item per line, every key quoted) and the
    span of lines (first, last) of every key path's block."""
    lines: list[str] = []
    spans: dict[Loc, tuple[int, int]] = {}

    def block(value: dict[str, Any] | list[Any], indent: int, path: Loc) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            start = len(lines) + 1
            head = " " * indent + (f"{quoted(str(key))}:" if isinstance(value, dict) else "-")
            if isinstance(item, dict | list) and item:
                lines.append(head)
                block(item, indent + 2, (*path, key))
            else:
                lines.append(f"{head} {scalar(item)}")
            spans[(*path, key)] = (start, len(lines))

    block(doc, 0, ())
    spans[()] = (1, max(len(lines), 1))
    return "\n".join(lines) + "\n", spans


# --------------------------------------------------------------------------- schema


def _optional(annotation: Any) -> Any:
    """``X`` of ``X | None``; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _bounds(info: FieldInfo) -> dict[str, float]:
    found: dict[str, float] = {}
    for meta in info.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(meta, getattr(annotated_types, name.capitalize())):
                found[name] = getattr(meta, name)
    return found


def valid_scalar(info: FieldInfo) -> st.SearchStrategy[Any] | None:
    """Valid values of a plain scalar field (bool, bounded int or float, Literal); None
    for any other field (those are generated by hand below)."""
    annotation = _optional(info.annotation)
    bounds = _bounds(info)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = bounds["ge"] if "ge" in bounds else bounds.get("gt", -1) + 1
        high = bounds["le"] if "le" in bounds else bounds.get("lt", low + 101) - 1
        return st.integers(int(low), int(high))
    if annotation is float:
        gap = 1e-3
        low = bounds["ge"] if "ge" in bounds else bounds.get("gt", -gap) + gap
        high = bounds["le"] if "le" in bounds else bounds.get("lt", low + 100 + gap) - gap
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if get_origin(annotation) is Literal:
        return st.sampled_from(get_args(annotation))
    return None


def out_of_range(info: FieldInfo) -> list[Any]:
    """Numbers just outside a numeric field's bounds (empty where it has none)."""
    bounds = _bounds(info)
    numeric = _optional(info.annotation)
    step = 1 if numeric is int else 0.5
    values = []
    if "ge" in bounds:
        values.append(bounds["ge"] - step)
    if "gt" in bounds:
        values.append(bounds["gt"])
    if "le" in bounds:
        values.append(bounds["le"] + step)
    if "lt" in bounds:
        values.append(bounds["lt"])
    return [int(v) if numeric is int else float(v) for v in values]


@dataclass
class Schema:
    """What the generator knows of a document, by key path: the closed mappings (a
    model: unknown keys are mistakes) with their required keys, the numeric fields with
    their out-of-range values, and the free mappings (whose keys are the user's)."""

    closed: dict[Loc, set[str]] = field(default_factory=dict)
    ranged: dict[Loc, list[Any]] = field(default_factory=dict)
    free: set[Loc] = field(default_factory=set)

    def model(self, path: Loc, model: type[BaseModel], value: dict[str, Any]) -> None:
        self.closed[path] = {n for n, f in model.model_fields.items() if f.is_required()}
        for name, info in model.model_fields.items():
            if name in value and (bad := out_of_range(info)):
                self.ranged[(*path, name)] = bad


def _fields(model: type[BaseModel], skip: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of ``model``'s plain scalar fields, with valid values."""
    plain = {
        name: strategy
        for name, info in model.model_fields.items()
        if name not in skip and (strategy := valid_scalar(info)) is not None
    }
    return st.fixed_dictionaries({}, optional=plain)


SAFE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=12
)
NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True)
STEP_NAMES = sorted(STEPS)
# The runtimes edgebench declares (suites/runtimes.py), not ones a test module adds to
# the registry in this process (test_scheduler's "scripted"): the console script the
# CLI cases run knows only the former.
RUNTIME_NAMES = [r.name for r in runtimes() if r.settings.__module__ == "suites.runtimes"]


@st.composite
def suites(draw: st.DrawFn) -> tuple[dict[str, Any], Schema]:
    """A valid suite document and what is known of its keys."""
    schema = Schema()
    doc: dict[str, Any] = {"name": draw(NAME)}
    schema.model((), Suite, {})
    models = []
    for i, name in enumerate(draw(st.lists(NAME, min_size=1, max_size=2, unique=True))):
        model: dict[str, Any] = {"name": name, "builder": "digits_cnn"}
        if draw(st.booleans()):
            model["params"] = draw(st.dictionaries(NAME, st.integers(0, 9), max_size=2))
            schema.free.add(("models", i, "params"))
        schema.model(("models", i), ModelSpec, model)
        schema.closed[("models", i)] |= {"builder"}  # one of builder/file is required
        models.append(model)
    doc["models"] = models
    variants = []
    for i, name in enumerate(draw(st.lists(NAME, min_size=1, max_size=2, unique=True))):
        recipe: list[Any] = []
        for j, step in enumerate(
            draw(st.lists(st.sampled_from(STEP_NAMES), min_size=1, max_size=2))
        ):
            form = draw(st.sampled_from(["bare", "short", "long"]))
            path: Loc = ("variants", i, "recipe", j)
            params = draw(_fields(STEPS[step].params, set()))
            try:  # a step's params may have rules across fields: keep only valid ones
                STEPS[step].params.model_validate(params)
            except ValidationError:
                params = {}
            if form == "bare" and not params:
                recipe.append(step)
            elif form == "long":
                recipe.append({"name": step, "params": params})
                schema.closed[path] = {"name"}
                schema.model((*path, "params"), STEPS[step].params, params)
            else:
                recipe.append({step: params})
                schema.model((*path, step), STEPS[step].params, params)
        variant = {"name": name, "recipe": recipe}
        schema.model(("variants", i), VariantSpec, variant)
        variants.append(variant)
    doc["variants"] = variants
    settings_list = []
    for i, runtime in enumerate(
        draw(st.lists(st.sampled_from(RUNTIME_NAMES), min_size=1, max_size=2))
    ):
        setting: dict[str, Any] = {"runtime": runtime}
        if draw(st.booleans()):
            setting["threads"] = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
        schema.closed[("settings", i)] = {"runtime"}
        settings_list.append(setting)
    doc["settings"] = settings_list
    if draw(st.booleans()):
        measure = draw(_fields(MeasureSpec, {"processes"}))
        doc["measure"] = measure
        schema.model(("measure",), MeasureSpec, measure)
    if draw(st.booleans()):
        accuracy = {"dataset": draw(st.sampled_from(sorted(DATASETS)))}
        accuracy |= draw(_fields(AccuracySpec, {"dataset"}))
        doc["accuracy"] = accuracy
        schema.model(("accuracy",), AccuracySpec, accuracy)
    if draw(st.booleans()):
        doc["devices"] = {"names": draw(st.lists(NAME, max_size=2)), "tags": {"rack": "a"}}
        schema.closed[("devices",)] = set()
        schema.free.add(("devices", "tags"))
    top = draw(_fields(Suite, {"name"}))
    if draw(st.booleans()):
        top["description"] = draw(SAFE_TEXT)
    if draw(st.booleans()):
        top["baseline"] = draw(st.sampled_from([v["name"] for v in variants]))
    doc |= top
    schema.model((), Suite, doc)
    return doc, schema


# Options of a transport that a lab file may set, with values each transport takes.
TRANSPORT_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "local": ("", {"python": "python3", "power_interval_ms": 100, "cooldown_limit_s": 5.0}),
    "ssh": ("pi@rpi5.lab", {"connect_timeout": 5.0, "workdir": "/tmp/eb"}),
    "qemu": ("", {"board": "mps2-an386", "ram_bytes": 65536, "protocol": "framed"}),
}


@st.composite
def labs(draw: st.DrawFn) -> tuple[dict[str, Any], Schema]:
    """A valid lab document and what is known of its keys."""
    schema = Schema()
    devices = []
    names = draw(st.lists(NAME, min_size=1, max_size=3, unique=True))
    for i, name in enumerate(names):
        transport = draw(st.sampled_from(sorted(TRANSPORT_OPTIONS)))
        address, options = TRANSPORT_OPTIONS[transport]
        keys = draw(st.sets(st.sampled_from(sorted(options))))
        if transport == "qemu":
            keys.add("board")  # the profile QEMU emulates
        device: dict[str, Any] = {"name": name, "transport": transport}
        if address:
            device["address"] = address
        if draw(st.booleans()):
            device["tags"] = {"rack": draw(NAME)}
            schema.free.add(("devices", i, "tags"))
        if keys:
            device["options"] = {k: options[k] for k in sorted(keys)}
            model = transport_class(transport).Options
            schema.model(("devices", i, "options"), model, device["options"])
        schema.model(("devices", i), LabDevice, device)
        devices.append(device)
    doc = {"version": 1, "devices": devices}
    schema.model((), LabFile, doc)
    schema.ranged[("version",)] = [2, 0]
    return doc, schema


# --------------------------------------------------------------------------- mutations

ODD_STRINGS = [
    "",
    " ",
    "x" * 5000,
    "\x00",
    "a\x00b",
    "line\nbreak",
    "tab\there",
    "\r",
    "\u2028",
    "\ufeff",
    "\u202eevil",
    "ünïcødé",
    "名前",
    "🙂",
    "../../etc/passwd",
    "$(id)",
    "[red]x",
    "%s%n",
    "{x}",
    "a.b",
    "yes",
    "null",
]
odd_string = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=30))
RAW_SPECIALS = [
    "yes",
    "no",
    "off",
    "~",
    "null",
    "0x1F",
    "0o17",
    "1_000",
    "1e3",
    "1.0e+400",
    ".inf",
    "-.inf",
    ".nan",
    "2020-01-01",
    "2020-13-45",
    "12:30:00",
    "*undefined",
    "&anchor",
    "&a 1",
    "!!binary aGk=",
    "!!python/object:os.system x",
    "!!python/name:os.system",
    "!foo bar",
    "!!int x",
    "!!float x",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    "|",
    ">",
    "%x",
    "@x",
    "`x",
    "- x",
    "? x",
    ": x",
    "#comment",
    "a: b",
    "<<",
    "9" * 5000,
    "[" * 200 + "]" * 200,
    "{a: " * 100 + "1" + "}" * 100,
    "--- x",
    "... x",
    "\t",
]
# Mutations that make any document invalid, and those that may leave it valid.
INVALID = ("wrong_type", "unknown_key", "missing_key", "out_of_range")
MAYBE = ("odd_string", "raw_special", "odd_key")


def _paths(doc: Any, path: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    yield path, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*path, i))


def _inside(path: Loc, folders: set[Loc]) -> bool:
    return any(path[: len(f)] == f and len(path) > len(f) for f in folders)


def _set(doc: Any, path: Loc, value: Any) -> Any:
    """A copy of ``doc`` with the value at ``path`` replaced (``...`` removes it)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        copy = dict(doc)
        new = _set(doc[head], rest, value) if rest else value
        if new is ...:
            del copy[head]
        else:
            copy[head] = new
        return copy
    copy_list = list(doc)
    copy_list[head] = _set(doc[head], rest, value) if rest else value
    return copy_list


@dataclass(frozen=True)
class Mutation:
    kind: str
    path: Loc  # the key the mutation is at (for a missing key: the mapping it left)

    @property
    def must_fail(self) -> bool:
        return self.kind in INVALID


@st.composite
def mutated(
    draw: st.DrawFn,
    documents: st.SearchStrategy[tuple[dict[str, Any], Schema]],
    kinds: tuple[str, ...],
) -> tuple[dict[str, Any], Mutation]:
    doc, schema = draw(documents)
    nodes = [(p, v) for p, v in _paths(doc) if p and not _inside(p, schema.free)]
    choices = []
    for kind in kinds:
        if kind == "wrong_type":
            choices += [(kind, p) for p, _ in nodes]
        elif kind in ("odd_string", "raw_special"):
            choices += [(kind, p) for p, v in nodes if isinstance(v, str | int | float | bool)]
        elif kind in ("unknown_key", "odd_key"):
            choices += [(kind, p) for p in schema.closed]
        elif kind == "missing_key":
            present = dict(_paths(doc))
            choices += [
                (kind, (*p, k)) for p, keys in schema.closed.items() for k in keys
                if k in present[p]
            ]  # fmt: skip
        elif kind == "out_of_range":
            choices += [(kind, p) for p in schema.ranged]
    assume(choices)  # e.g. no number with a range in this document
    kind, path = draw(st.sampled_from(choices))
    value = dict(nodes)[path] if path in dict(nodes) else None
    if kind == "wrong_type":
        # A container where a scalar belongs, and the other container where one does:
        # no schema type takes those (a scalar where a list belongs may be valid, as
        # `threads: 2` is).
        new = {"wrong": 1} if isinstance(value, list) else [1]
        return _set(doc, path, new), Mutation(kind, path)
    if kind == "odd_string":
        return _set(doc, path, draw(odd_string)), Mutation(kind, path)
    if kind == "raw_special":
        return _set(doc, path, Raw(draw(st.sampled_from(RAW_SPECIALS)))), Mutation(kind, path)
    if kind == "out_of_range":
        return _set(doc, path, draw(st.sampled_from(schema.ranged[path]))), Mutation(kind, path)
    if kind == "missing_key":
        return _set(doc, path, ...), Mutation(kind, path[:-1])
    mapping = dict(_paths(doc))[path]
    key = "bogus_key" if kind == "unknown_key" else draw(odd_string)
    if key in mapping:
        key += "_x"
    return _set(doc, path, {**mapping, key: 1}), Mutation(kind, (*path, key))


def text_damage(text: str, ops: list[tuple[str, float, str]]) -> str:
    """``text`` with lines dropped, repeated, swapped or cut, or something inserted."""
    for kind, where, payload in ops:
        lines = text.splitlines(keepends=True)
        at = min(int(where * len(lines)), max(len(lines) - 1, 0))
        if kind == "cut":
            text = text[: int(where * len(text))]
        elif kind == "insert":
            pos = int(where * len(text))
            text = text[:pos] + payload + text[pos:]
        elif lines and kind == "drop":
            del lines[at]
            text = "".join(lines)
        elif lines and kind == "repeat":
            lines.insert(at, lines[at])
            text = "".join(lines)
        elif lines and kind == "indent":
            lines[at] = payload + lines[at]
            text = "".join(lines)
    return text


damage = st.lists(
    st.tuples(
        st.sampled_from(["cut", "insert", "drop", "repeat", "indent"]),
        st.floats(0, 1, exclude_max=True),
        st.one_of(
            st.sampled_from(["\t", " ", "  - ", ": ", "\x00", "&a ", "*a", "\n", "? "]),
            st.sampled_from(RAW_SPECIALS),
            st.text(max_size=6),
        ),
    ),
    min_size=1,
    max_size=3,
)


# --------------------------------------------------------------------------- checks


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def check_refusal(
    err: SuiteError,
    path: Path,
    text: str,
    mutation: Mutation | None,
    spans: dict[Loc, tuple[int, int]] | None,
) -> None:
    """One line naming the file; at a mutated key, also that key (or a key inside or
    above it) and a line within the block of the key it names."""
    message = str(err)
    assert "\n" not in message and "\r" not in message, repr(message)
    assert err.file == str(path) and message.startswith(str(path)), message
    if mutation is None or spans is None:
        if err.line is not None:
            assert 1 <= err.line <= text.count("\n") + 1, message
        return
    assert err.line is not None, f"no line: {message}"
    where: Loc = mutation.path if mutation.path in spans else mutation.path[:-1]
    if err.key is not None and mutation.kind != "odd_key":
        # The key named is the mutated one, one inside it, or one above it (a rule
        # across keys: "give exactly one of 'builder' or 'file'" on the model).
        named = () if err.key == "(top level)" else tuple(err.key.split("."))
        want = tuple(str(p) for p in mutation.path)
        n = min(len(named), len(want))
        assert named[:n] == want[:n], f"{err.key!r} is not at {'.'.join(want)}: {message}"
        # Its line: within the block of the deepest key of that name the file has.
        by_name = {tuple(str(p) for p in loc): loc for loc in spans}
        where = next(
            by_name[named[:end]] for end in range(len(named), -1, -1) if named[:end] in by_name
        )
    first, last = spans[where]
    if "not valid YAML" in message:
        # The parser notices bad syntax at the token after it (on the next line at the
        # latest); an unquoted "[", "{" or quote opens a collection or a scalar that it
        # reads on into the lines after it, and the message names where that began.
        began = [int(n) for n in re.findall(r"on line (\d+)", message)]
        near = first <= err.line <= last + 1 or any(first <= n <= last for n in began)
        assert near, f"{first}-{last} of {where}: {message}"
        return
    assert first <= err.line <= last, (
        f"line {err.line} outside {first}-{last} of {where}: {message}"
    )


def load_or_refuse(
    family: str,
    loader: Callable[[Path], Any],
    path: Path,
    text: str,
    mutation: Mutation | None,
    spans: dict[Loc, tuple[int, int]] | None,
) -> SuiteError | None:
    """Load ``path``: the SuiteError it is refused with (checked), or None if it loads.
    Any other exception is a traceback for the user."""
    TALLY.tried[family] += 1
    try:
        loader(path)
    except SuiteError as err:
        TALLY.refused[family] += 1
        check_refusal(err, path, text, mutation, spans)
        return err
    except Exception:
        TALLY.tracebacks[family] += 1
        raise
    TALLY.loaded[family] += 1
    assert mutation is None or not mutation.must_fail, f"{mutation} was accepted:\n{text}"
    return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@pytest.fixture(scope="module")
def lab_store(folder: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{folder / 'lab.db'}")
    yield store
    store.engine.dispose()


# --------------------------------------------------------------------------- suite files


@examples(60)
@given(generated=suites())
def test_generated_suites_are_valid(folder: Path, generated: tuple[dict[str, Any], Schema]) -> None:
    """The generator's documents load: the mutations below start from valid files."""
    text, _ = emit(generated[0])
    load_suite(write(folder, "valid.yaml", text))


# One hypothesis run per kind of mistake: each kind gets its share of examples (drawn
# together, hypothesis would favour the first).
@pytest.mark.parametrize("kind", INVALID + MAYBE)
@examples(45)
@given(data=st.data())
def test_suite_mistakes_are_one_line_naming_file_key_and_line(
    folder: Path, kind: str, data: st.DataObject
) -> None:
    doc, mutation = data.draw(mutated(suites(), (kind,)), label="case")
    text, spans = emit(doc)
    path = write(folder, "suite.yaml", text)
    load_or_refuse(f"suite file: {mutation.kind}", load_suite, path, text, mutation, spans)


@examples(150)
@given(generated=suites(), ops=damage)
# Regressions (each was a traceback): a list as a key, a 5000-digit number, deep
# nesting, an unknown or python tag, a merge key, a bad date.
@example(generated=({"name": "s"}, Schema()), ops=[("insert", 0.0, "? [1, 2]\n: x\n")])
@example(
    generated=({"name": "s"}, Schema()), ops=[("insert", 0.0, "retries: " + "9" * 5000 + "\n")]
)
@example(
    generated=({"name": "s"}, Schema()),
    ops=[("insert", 0.0, "x: " + "[" * 3000 + "]" * 3000 + "\n")],
)
@example(
    generated=({"name": "s"}, Schema()), ops=[("insert", 0.0, "x: !!python/object:os.system x\n")]
)
@example(generated=({"name": "s"}, Schema()), ops=[("insert", 0.0, "x: !foo bar\n")])
@example(generated=({"name": "s"}, Schema()), ops=[("insert", 0.0, "<<: {a: 1}\n")])
@example(generated=({"name": "s"}, Schema()), ops=[("insert", 0.0, "x: 2020-13-45\n")])
@example(generated=({"name": "s"}, Schema()), ops=[("insert", 0.0, "x: &a [*a]\n")])
def test_damaged_suite_text_is_refused_in_one_line(
    folder: Path, generated: tuple[dict[str, Any], Schema], ops: list[tuple[str, float, str]]
) -> None:
    text = text_damage(emit(generated[0])[0], ops)
    path = write(folder, "damaged.yaml", text)
    load_or_refuse("suite file: damaged text", load_suite, path, text, None, None)


# Key mistakes the loader used to mis-report: keys YAML reads as other types (their
# line was lost and the message said "Keys should be strings"), a key with a newline
# (the message broke in two), NUL (a multi-line YAML library message).
@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ("~: 1\n", ["key '~' reads as null"]),
        ("true: 1\n", ["key 'true' reads as a boolean"]),
        ("1.5: 1\n", ["key '1.5' reads as a number"]),
        ('"a\\nb": 1\n', ["'a\\nb'", "Extra inputs are not permitted"]),
        ("description: a\x00b\n", ["unacceptable character #x0000"]),
        ("description: 2020-01-01\n", ["reads as a date"]),
        ("description: !!binary aGk=\n", ["binary"]),
        ("retries: .nan\n", ["not a finite number"]),
    ],
    ids=["null-key", "bool-key", "float-key", "newline-key", "nul", "date", "binary", "nan"],
)
def test_yaml_pitfalls_name_their_line(folder: Path, extra: str, names: list[str]) -> None:
    base = emit({"name": "s", "models": [{"name": "m", "builder": "digits_cnn"}],
                 "variants": [{"name": "v", "recipe": ["export_onnx"]}],
                 "settings": [{"runtime": "onnxruntime"}]})[0]  # fmt: skip
    path = write(folder, "pitfall.yaml", base + extra)
    err = load_or_refuse("suite file: YAML pitfall", load_suite, path, base + extra, None, None)
    assert err is not None and err.line == base.count("\n") + 1, err
    for name in names:
        assert name in str(err), str(err)


@pytest.fixture(scope="module")
def cli(folder: Path) -> Callable[..., Any]:
    return make_runner(folder / "cli-home", folder)


def _cli_refusal(proc: Any, err: SuiteError) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    # The same message, but for the runtimes listed: other test modules register
    # runtimes of their own in this process (test_scheduler's "scripted").
    expected = f"edgebench: error: {err}".replace(", scripted", "")
    assert [line.replace(", scripted", "") for line in lines] == [expected], proc.stderr


@pytest.mark.parametrize("kind", INVALID)
@examples(3)
@given(data=st.data())
def test_suite_mistakes_through_edgebench_variants(
    folder: Path, cli: Callable[..., Any], kind: str, data: st.DataObject
) -> None:
    doc, mutation = data.draw(mutated(suites(), (kind,)), label="case")
    text, spans = emit(doc)
    path = write(folder, "cli-suite.yaml", text)
    err = load_or_refuse("suite file (edgebench variants)", load_suite, path, text, mutation, spans)
    assert err is not None  # an invalid mutation: nothing is built
    _cli_refusal(cli("variants", str(path), check=False, timeout=120), err)


# --------------------------------------------------------------------------- lab files


def _import_lab(store: Store) -> Callable[[Path], Any]:
    return lambda path: import_lab(store, path)


@examples(40)
@given(generated=labs())
def test_generated_labs_are_valid(
    folder: Path, lab_store: Store, generated: tuple[dict[str, Any], Schema]
) -> None:
    text, _ = emit(generated[0])
    import_lab(lab_store, write(folder, "valid-lab.yaml", text))


@pytest.mark.parametrize("kind", INVALID + MAYBE)
@examples(35)
@given(data=st.data())
def test_lab_mistakes_are_one_line_naming_file_key_and_line(
    folder: Path, lab_store: Store, kind: str, data: st.DataObject
) -> None:
    doc, mutation = data.draw(mutated(labs(), (kind,)), label="case")
    text, spans = emit(doc)
    path = write(folder, "lab.yaml", text)
    load_or_refuse(f"lab file: {kind}", _import_lab(lab_store), path, text, mutation, spans)


# Regressions: bytes in options were stored and crashed the database write; unknown
# transports and duplicate names were named without their line.
LAB_REGRESSIONS = {
    "binary-option": (
        {
            "version": 1,
            "devices": [
                {"name": "a", "transport": "local", "options": {"python": Raw("!!binary aGk=")}}
            ],
        },
        Mutation("raw_special", ("devices", 0, "options", "python")),
    ),
    "unknown-transport": (
        {"version": 1, "devices": [{"name": "a", "transport": "nosuch"}]},
        Mutation("out_of_range", ("devices", 0, "transport")),
    ),
    "duplicate-name": (
        {"version": 1, "devices": [{"name": "a", "transport": "local"}] * 2},
        Mutation("out_of_range", ("devices", 1, "name")),
    ),
}


@pytest.mark.parametrize("name", sorted(LAB_REGRESSIONS))
def test_lab_regressions(folder: Path, lab_store: Store, name: str) -> None:
    doc, mutation = LAB_REGRESSIONS[name]
    text, spans = emit(doc)
    path = write(folder, "lab.yaml", text)
    importer = _import_lab(lab_store)
    err = load_or_refuse("lab file: regressions", importer, path, text, mutation, spans)
    assert err is not None


@examples(100)
@given(generated=labs(), ops=damage)
def test_damaged_lab_text_is_refused_in_one_line(
    folder: Path,
    lab_store: Store,
    generated: tuple[dict[str, Any], Schema],
    ops: list[tuple[str, float, str]],
) -> None:
    text = text_damage(emit(generated[0])[0], ops)
    path = write(folder, "damaged-lab.yaml", text)
    load_or_refuse("lab file: damaged text", _import_lab(lab_store), path, text, None, None)


@pytest.mark.parametrize("kind", INVALID)
@examples(2)
@given(data=st.data())
def test_lab_mistakes_through_edgebench_lab_import(
    folder: Path, lab_store: Store, cli: Callable[..., Any], kind: str, data: st.DataObject
) -> None:
    doc, mutation = data.draw(mutated(labs(), (kind,)), label="case")
    text, spans = emit(doc)
    path = write(folder, "cli-lab.yaml", text)
    err = load_or_refuse(
        "lab file (edgebench lab import)", _import_lab(lab_store), path, text, mutation, spans
    )
    assert err is not None
    _cli_refusal(cli("lab", "import", str(path), check=False, timeout=120), err)


# --------------------------------------------------------------------------- command options


@dataclass(frozen=True)
class Param:
    """One parameter of a command, as the tests need it."""

    name: str
    opts: tuple[str, ...]  # ("--port",) for an option, () for an argument
    kind: str  # int, float, choice, flag, text
    required: bool
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    params: tuple[Param, ...]

    def base(self) -> tuple[list[str], dict[str, int]]:
        """A command line that satisfies every required parameter, and where each
        required parameter's value is in it."""
        argv = list(self.path)
        at: dict[str, int] = {}
        for p in self.params:
            if p.required:
                argv += [*p.opts[:1], placeholder(p)]
                at[p.name] = len(argv) - 1
        return argv, at


def placeholder(p: Param) -> str:
    if p.kind == "choice":
        return p.choices[0]
    if p.kind in ("int", "float"):
        return str(int(p.low) if p.low is not None else 1)
    return "x"


def _kind(param: Any) -> tuple[str, dict[str, Any]]:
    """What values a click/typer parameter takes: typer's own type description where
    it has one (typer >= 0.29 converts with pydantic), click's ParamType otherwise."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is None:
        click_type = getattr(param, "type", None)
        annotation = {"integer": int, "float": float, "boolean": bool}.get(
            getattr(click_type, "name", ""), str
        )
        choices = tuple(getattr(click_type, "choices", ()) or ())
        if choices:
            return "choice", {"choices": tuple(str(c) for c in choices)}
    if getattr(param, "is_flag", False) or annotation is bool:
        return "flag", {}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice", {"choices": tuple(str(m.value) for m in annotation)}
    if get_origin(annotation) is Literal:
        return "choice", {"choices": tuple(str(v) for v in get_args(annotation))}
    if annotation is int:
        return "int", {"low": getattr(param, "min", None), "high": getattr(param, "max", None)}
    if annotation is float:
        return "float", {"low": getattr(param, "min", None), "high": getattr(param, "max", None)}
    return "text", {}


def commands() -> list[Command]:
    """Every leaf command of the app, walked from the app object."""
    found = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            for name, sub in sorted(subcommands.items()):
                walk(sub, (*path, name))
            return
        params = []
        for p in command.params:
            kind, extra = _kind(p)
            opts = tuple(p.opts) if p.param_type_name == "option" else ()
            params.append(Param(p.name, opts, kind, bool(p.required), **extra))
        found.append(Command(path, tuple(params)))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = commands()
NO_DIGITS = re.compile(r"[^0-9]*")


def not_an_int(text: str) -> bool:
    return NO_DIGITS.fullmatch(text) is not None and not text.startswith("-")


def not_a_float(text: str) -> bool:
    return not_an_int(text) and re.search(r"inf|nan", text, re.IGNORECASE) is None


@dataclass(frozen=True)
class Misuse:
    argv: tuple[str, ...]
    names: tuple[str, ...]  # the error line names one of these (case-insensitively)
    what: str


def mistake_kinds(command: Command) -> list[str]:
    """The kinds of mistake a command's parameters allow."""
    params = command.params
    kinds = ["unknown_option"]
    kinds += ["bad_value"] * any(p.kind in ("int", "float", "choice") for p in params)
    kinds += ["missing"] * any(p.required for p in params)
    kinds += ["no_value"] * any(p.opts and p.kind != "flag" for p in params)
    kinds += ["flag_value"] * any(p.opts and p.kind == "flag" for p in params)
    return kinds


@st.composite
def misuses(draw: st.DrawFn, command: Command, kind: str, spawnable: bool = False) -> Misuse:
    """One mistake of ``kind`` on ``command``'s otherwise valid command line."""
    base, at = command.base()
    known = {o for p in command.params for o in p.opts} | {"--help"}
    valued = [p for p in command.params if p.kind in ("int", "float", "choice")]
    required = [p for p in command.params if p.required]
    needs_value = [p for p in command.params if p.opts and p.kind != "flag"]
    flags = [p for p in command.params if p.opts and p.kind == "flag"]
    text = st.text(max_size=12)
    if spawnable:  # argv cannot carry NUL, and a terminal would not pass lone surrogates
        text = st.text(
            alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
            max_size=12,
        )
    if kind == "unknown_option":
        option = draw(
            st.from_regex(r"--[a-z][a-z0-9-]{0,14}", fullmatch=True).filter(
                lambda o: o not in known
            )
        )
        return Misuse((*base, option), (option,), kind)
    if kind == "bad_value":
        p = draw(st.sampled_from(valued))
        if p.kind == "choice":
            bad = draw(text.filter(lambda v: v not in p.choices and not v.startswith("-")))
        elif p.kind == "int":
            outside = [int(p.low) - 1] if p.low is not None else []
            outside += [int(p.high) + 1] if p.high is not None else []
            words = st.sampled_from(["1.5", "1e3", "0x10", "12abc", *map(str, outside)])
            bad = draw(st.one_of(text.filter(not_an_int), words))
        else:
            bad = draw(
                st.one_of(text.filter(not_a_float), st.sampled_from(["1.2.3", "1e", "1,5", "0x"]))
            )
        argv = list(base)
        if p.required:
            argv[at[p.name]] = bad
        else:
            argv += [p.opts[0], bad]
        return Misuse(tuple(argv), p.opts or (p.name,), f"{kind} {p.name}={bad!r}")
    if kind == "missing":
        p = draw(st.sampled_from(required))
        argv = list(base)
        del argv[at[p.name] - len(p.opts[:1]) : at[p.name] + 1]
        # Without one positional argument the others move up: the last one is missing.
        last = [q for q in required if not q.opts][-1] if not p.opts else p
        return Misuse(tuple(argv), p.opts or (last.name,), f"{kind} {p.name}")
    if kind == "no_value":
        p = draw(st.sampled_from(needs_value))
        argv = list(base)
        if p.required:
            del argv[at[p.name] - 1 : at[p.name] + 1]
        return Misuse((*argv, p.opts[0]), (p.opts[0],), f"{kind} {p.name}")
    p = draw(st.sampled_from(flags))
    value = draw(st.sampled_from(["yes", "1", "true", ""]))
    return Misuse((*base, f"{p.opts[0]}={value}"), (p.opts[0],), f"{kind} {p.name}")


ROOT_MISUSES = [
    Misuse(("--bogus", "runs", "list"), ("--bogus",), "unknown root option"),
    Misuse(("--db",), ("--db",), "root option without a value"),
    Misuse(("--version=1",), ("--version",), "root flag with a value"),
    Misuse(("no-such-command",), ("no-such-command",), "unknown command"),
]


def check_usage_error(family: str, misuse: Misuse, code: int | None, out: str, err: str) -> None:
    TALLY.tried[family] += 1
    if "Traceback" in err or code not in (2,):
        TALLY.tracebacks[family] += 1
        raise AssertionError(f"{misuse}: exit {code}\n{err}")
    TALLY.refused[family] += 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2 and lines[0].startswith("edgebench: error: "), (misuse, err)
    assert any(n.lower() in lines[0].lower() for n in misuse.names), (misuse, lines[0])
    if len(lines) == 2:
        assert re.fullmatch(r"Try '.+ --help' for help\.", lines[1]), (misuse, err)
    assert out == "", (misuse, out)


@contextlib.contextmanager
def isolated_home() -> Iterator[Path]:
    """EDGEBENCH_HOME and the results database in a fresh folder: a mistake must be
    refused before any work, so the folder must still not exist afterwards."""
    root = Path(tempfile.mkdtemp(prefix="eb-usage-"))
    home = root / "home"
    saved = {k: os.environ.get(k) for k in ("EDGEBENCH_HOME", "EDGEBENCH_DB")}
    os.environ["EDGEBENCH_HOME"] = str(home)
    os.environ["EDGEBENCH_DB"] = f"sqlite:///{root / 'results.db'}"
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def run_main(argv: tuple[str, ...]) -> tuple[int | None, str, str]:
    """``harness.cli.main`` in process, as the console script runs it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
            code: int | None = 0
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def test_every_command_is_walked() -> None:
    """The walk finds the app's commands (a broken walk would test nothing)."""
    paths = {" ".join(c.path) for c in COMMANDS}
    assert {"variants", "run", "import", "lab import", "device add", "emulate"} <= paths
    typed = {p.kind for c in COMMANDS for p in c.params}
    assert {"int", "choice", "flag", "text"} <= typed


def _refused_in_process(misuse: Misuse) -> None:
    with isolated_home() as root:
        code, out, err = run_main(misuse.argv)
        check_usage_error("command options (in process)", misuse, code, out, err)
        assert not (root / "home").exists() and not (root / "results.db").exists(), misuse


# One hypothesis run per command and kind of mistake, so that each gets its share.
COMMAND_MISTAKES = [
    pytest.param(command, kind, id=f"{' '.join(command.path)}: {kind}")
    for command in COMMANDS
    for kind in mistake_kinds(command)
]


@pytest.mark.parametrize(("command", "kind"), COMMAND_MISTAKES)
@examples(5)
@given(data=st.data())
def test_command_mistakes_are_one_line_and_exit_2(
    command: Command, kind: str, data: st.DataObject
) -> None:
    _refused_in_process(data.draw(misuses(command, kind), label="misuse"))


@pytest.mark.parametrize("misuse", ROOT_MISUSES, ids=lambda m: m.what)
def test_top_level_mistakes_are_one_line_and_exit_2(misuse: Misuse) -> None:
    _refused_in_process(misuse)


@examples(6)
@given(
    misuse=st.sampled_from(COMMAND_MISTAKES).flatmap(
        lambda case: misuses(*case.values, spawnable=True)
    )
)
def test_command_mistakes_through_the_console_script(folder: Path, misuse: Misuse) -> None:
    """A sample as a user types them: the same exit code and line as in process."""
    with isolated_home() as root:
        proc = make_runner(root / "home", root)(*misuse.argv, check=False, timeout=120)
        check_usage_error(
            "command options (console script)", misuse, proc.returncode, proc.stdout, proc.stderr
        )
        code, _, err = run_main(misuse.argv)
        assert code == proc.returncode
        assert err.splitlines()[0] == proc.stderr.splitlines()[0], (err, proc.stderr)
        assert not (root / "home").exists()


# --------------------------------------------------------------------------- the tally


def test_zz_properties_tally() -> None:
    """Runs last in this file: what was tried, and that nothing was a traceback."""
    if not TALLY.tried:
        pytest.skip("no property test ran in this session")
    width = max(len(name) for name in TALLY.tried)
    print("\nproperty tally (tried / refused in one line / still valid / tracebacks):")
    for name in sorted(TALLY.tried):
        print(
            f"  {name:<{width}}  {TALLY.tried[name]:5d} {TALLY.refused[name]:5d} "
            f"{TALLY.loaded[name]:5d} {TALLY.tracebacks[name]:3d}"
        )
    print(f"  total tried {sum(TALLY.tried.values())}, tracebacks {sum(TALLY.tracebacks.values())}")
    assert not TALLY.tracebacks
