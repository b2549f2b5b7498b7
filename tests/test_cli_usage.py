"""Command-line mistakes: one `edgebench: error:` line (plus at most a help hint) and exit 2.

Every command is run as the installed console script with an unknown option, without
each required argument or option, and with a bad value for its options. A usage error
happens before any work, so these build no model and open no database.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import click
import pytest
import typer

from harness import __version__
from harness.cli import app, main
from tests.conftest import Runner, make_runner


class Mistake(NamedTuple):
    argv: tuple[str, ...]
    names: str  # what the error line must name (compared case-insensitively)


def _mistakes(command: str, valid: tuple[str, ...], *cases: Mistake) -> list:
    """An unknown option after a valid command line, then the command's own ``cases``."""
    argv = tuple(command.split())
    unknown = Mistake((*argv, *valid, "--bogus"), "no such option: --bogus")
    return [
        pytest.param(m, id=f"{command or 'edgebench'}: {' '.join(m.argv[len(argv) :])}")
        for m in (unknown, *cases)
    ]


def wrong(*argv: str, names: str) -> Mistake:
    return Mistake(argv, names)


MISSING_NAME = "missing argument 'name'"
NO_VALUE = "does not take a value"
NEEDS_VALUE = "requires an argument"
EXTRA = "unexpected extra argument"

# Keyed by command path; "" is the top level. Every command of the app has an entry
# (test_every_command_is_covered), so a new command gets its mistakes tested here too.
CASES: dict[str, list] = {
    "": _mistakes(
        "",
        ("device", "list"),
        wrong("--db", "sqlite:///x.db", names="missing command"),
        wrong("--db", names="option '--db' " + NEEDS_VALUE),
        wrong("--version=yes", names="option '--version' " + NO_VALUE),
        wrong("no-such-command", names="no such command 'no-such-command'"),
        wrong("device", "no-such-command", names="no such command 'no-such-command'"),
        wrong("device", "--bogus", names="no such option: --bogus"),
        wrong("lab", "--bogus", names="no such option: --bogus"),
        wrong("runs", "--bogus", names="no such option: --bogus"),
    ),
    "device add": _mistakes(
        "device add",
        ("bench1",),
        wrong("device", "add", names=MISSING_NAME),
        wrong("device", "add", "--transport", "ssh", names=MISSING_NAME),
        wrong(
            "device", "add", "bench1", "--transport", names="option '--transport' " + NEEDS_VALUE
        ),
        wrong("device", "add", "bench1", "--replace=yes", names="option '--replace' " + NO_VALUE),
        wrong(
            "device",
            "add",
            "bench1",
            "--trust-on-first-use=1",
            names="option '--trust-on-first-use' " + NO_VALUE,
        ),
        wrong("device", "add", "bench1", "surplus", names=EXTRA + "(s) (surplus)"),
        wrong("device", "add", "m4", "--board", names="option '--board' " + NEEDS_VALUE),
        wrong(
            "device",
            *("add", "p", "--adb-serial", "S1", "--adb-host", "h:5555"),
            names="two routes to a phone",
        ),
        wrong("device", "add", "p", "--transport", "ssh", "--adb-host", "h:5555",
              names="are for --transport adb"),  # fmt: skip
        wrong(
            "device",
            *("add", "m4", "--transport", "qemu", "--board", "mps2-an999"),
            names="unknown board 'mps2-an999'",
        ),
    ),
    "device list": _mistakes(
        "device list",
        (),
        wrong("device", "list", "--json=yes", names="option '--json' " + NO_VALUE),
        wrong("device", "list", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "device show": _mistakes(
        "device show",
        ("bench1",),
        wrong("device", "show", names=MISSING_NAME),
        wrong("device", "show", "--json", names=MISSING_NAME),
        wrong("device", "show", "bench1", "--json=yes", names="option '--json' " + NO_VALUE),
        wrong("device", "show", "bench1", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "device check": _mistakes(
        "device check",
        ("bench1",),
        wrong("device", "check", names=MISSING_NAME),
        wrong("device", "check", "bench1", "--json=yes", names="option '--json' " + NO_VALUE),
        wrong("device", "check", "bench1", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "device remove": _mistakes(
        "device remove",
        ("bench1",),
        wrong("device", "remove", names=MISSING_NAME),
        wrong("device", "remove", "bench1", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "device setup": _mistakes(
        "device setup",
        ("bench1",),
        wrong("device", "setup", names=MISSING_NAME),
        wrong("device", "setup", "bench1", "--wheels", names="option '--wheels' " + NEEDS_VALUE),
        wrong("device", "setup", "bench1", "--package", names="option '--package' " + NEEDS_VALUE),
    ),
    "lab import": _mistakes(
        "lab import",
        ("lab.yaml",),
        wrong("lab", "import", names="missing argument 'file'"),
        wrong("lab", "import", "lab.yaml", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "lab export": _mistakes(
        "lab export",
        ("lab.yaml",),
        wrong("lab", "export", names="missing argument 'file'"),
        wrong("lab", "export", "lab.yaml", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "variants": _mistakes(
        "variants",
        ("digits",),
        wrong("variants", names="missing argument 'suite'"),
        wrong("variants", "digits", "--json=yes", names="option '--json' " + NO_VALUE),
    ),
    "run": _mistakes(
        "run",
        ("digits",),
        wrong("run", names="missing argument 'suite'"),
        wrong("run", "--device", "local", names="missing argument 'suite'"),
        wrong("run", "digits", "--device", names="option '--device' " + NEEDS_VALUE),
        wrong("run", "digits", "--tag", names="option '--tag' " + NEEDS_VALUE),
        wrong("run", "digits", "--resume", names="option '--resume' " + NEEDS_VALUE),
        wrong("run", "digits", "--report=no", names="option '--report' " + NO_VALUE),
        wrong("run", "digits", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "runs list": _mistakes(
        "runs list",
        (),
        wrong("runs", "list", "--json=yes", names="option '--json' " + NO_VALUE),
        wrong("runs", "list", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "report": _mistakes(
        "report",
        ("latest",),
        wrong("report", names="missing argument 'run'"),
        wrong("report", "latest", "-o", names="option '-o' " + NEEDS_VALUE),
        wrong("report", "latest", "--baseline", names="option '--baseline' " + NEEDS_VALUE),
        wrong("report", "latest", "--threshold", names="option '--threshold' " + NEEDS_VALUE),
    ),
    "compare": _mistakes(
        "compare",
        ("run-a", "run-b"),
        wrong("compare", names="missing argument 'run_a'"),
        wrong("compare", "run-a", names="missing argument 'run_b'"),
        wrong("compare", "run-a", "run-b", "--format", "xml", names="--format 'xml'"),
        wrong("compare", "run-a", "run-b", "--format", names="option '--format' " + NEEDS_VALUE),
        wrong(
            "compare",
            "run-a",
            "run-b",
            "--fail-on-regression=1",
            names="option '--fail-on-regression' " + NO_VALUE,
        ),
        wrong("compare", "run-a", "run-b", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "export": _mistakes(
        "export",
        ("latest",),
        wrong("export", names="missing argument 'run'"),
        wrong("export", "latest", "--format", "xlsx", names="--format 'xlsx'"),
        wrong("export", "latest", "--format", names="option '--format' " + NEEDS_VALUE),
        wrong("export", "latest", "--samples=1", names="option '--samples' " + NO_VALUE),
    ),
    "publish": _mistakes(
        "publish",
        (),
        wrong("publish", "-o", names="option '-o' " + NEEDS_VALUE),
        wrong("publish", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
    "infer": _mistakes(
        "infer",
        ("m.onnx", "--device", "local", "--input", "x.npy"),
        wrong("infer", "--device", "local", "--input", "x.npy", names="missing argument 'model'"),
        wrong("infer", "m.onnx", "--input", "x.npy", names="missing option '--device'"),
        wrong("infer", "m.onnx", "--device", "local", names="missing option '--input'"),
        wrong(
            "infer",
            *("m.onnx", "--device", "local", "--input", "x.npy", "--threads", "abc"),
            names="invalid value for '--threads'",
        ),
        wrong(
            "infer",
            *("m.onnx", "--device", "local", "--input", "x.npy", "--threads", "1.5"),
            names="invalid value for '--threads'",
        ),
        wrong(
            "infer",
            *("m.onnx", "--device", "local", "--input", "x.npy", "--threads"),
            names="option '--threads' " + NEEDS_VALUE,
        ),
        wrong("infer", "m.onnx", "--device", names="option '--device' " + NEEDS_VALUE),
    ),
    "emulate": _mistakes(
        "emulate",
        ("mcu",),
        wrong("emulate", names="missing argument 'target"),
        wrong("emulate", "phone2", names="invalid value for 'target"),
        wrong("emulate", "mcu", "--port", "0", names="invalid value for '--port'"),
        wrong("emulate", "mcu", "--port", "70000", names="invalid value for '--port'"),
        wrong("emulate", "mcu", "--port", "x", names="invalid value for '--port'"),
        wrong("emulate", "mcu", "--board", names="option '--board' " + NEEDS_VALUE),
        wrong("emulate", "mcu", "--board", "nope", names="unknown board 'nope'"),
        wrong("emulate", "mcu", "--board", "nucleo-f746zg", names="qemu does not emulate"),
        wrong("emulate", "mcu", "--model", "missing.tflite", names="--model missing.tflite"),
        wrong("emulate", "mcu", "extra", names=EXTRA),
        wrong("emulate", "phone", "--model", "m.tflite", names="are for `emulate mcu`"),
        wrong("emulate", "phone", "--port", "0", names="invalid value for '--port'"),
    ),
    "import": _mistakes(
        "import",
        ("--tool", "trtexec", "build.log"),
        wrong("import", "--tool", "trtexec", names="missing argument 'files"),
        wrong("import", "build.log", names="missing option '--tool'"),
        wrong("import", "build.log", "--tool", names="option '--tool' " + NEEDS_VALUE),
        wrong(
            "import",
            *("--tool", "trtexec", "build.log", "--device"),
            names="option '--device' " + NEEDS_VALUE,
        ),
    ),
    "demo": _mistakes(
        "demo",
        (),
        wrong("demo", "surplus", names=EXTRA + "(s) (surplus)"),
    ),
}


@pytest.fixture
def fresh(tmp_path: Path) -> Runner:
    """``eb`` with a workspace of its own, so a test can see that nothing was written."""
    return make_runner(tmp_path / "home", tmp_path)


def _leaf_command_paths() -> set[str]:
    def walk(command: object, path: str) -> set[str]:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            return {path}
        return {p for name, sub in subcommands.items() for p in walk(sub, f"{path} {name}")}

    return {p.strip() for p in walk(typer.main.get_command(app), "")}


def test_every_command_is_covered() -> None:
    assert _leaf_command_paths() == set(CASES) - {""}


@pytest.mark.parametrize("mistake", [case for cases in CASES.values() for case in cases])
def test_usage_error_is_one_line_and_exit_2(
    fresh: Runner, tmp_path: Path, mistake: Mistake
) -> None:
    proc = fresh(*mistake.argv, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, proc.stderr
    assert lines[0].startswith("edgebench: error: "), proc.stderr
    assert mistake.names in lines[0].lower(), proc.stderr
    if len(lines) == 2:
        assert lines[1].startswith("Try 'edgebench") and lines[1].endswith(" --help' for help.")
    assert proc.stdout == ""
    # Refused before any work: no workspace, no results database.
    assert not (tmp_path / "home").exists() and not (tmp_path / "results.db").exists()


def test_usage_hint_names_the_command(fresh: Runner) -> None:
    proc = fresh("device", "show", check=False)
    assert proc.stderr.splitlines() == [
        "edgebench: error: Missing argument 'name'.",
        "Try 'edgebench device show --help' for help.",
    ]


@pytest.mark.parametrize("argv", [("--version",), ("--version", "device", "list")])
def test_version(fresh: Runner, tmp_path: Path, argv: tuple[str, ...]) -> None:
    proc = fresh(*argv)
    assert proc.stdout == f"edgebench {__version__}\n" and proc.stderr == ""
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    "argv", [(), ("device",), ("device", "show"), ("infer",), ("runs", "list")], ids=repr
)
def test_help(fresh: Runner, argv: tuple[str, ...]) -> None:
    proc = fresh(*argv, "--help")
    assert "Usage: edgebench" in proc.stdout and proc.stderr == ""


@pytest.mark.parametrize("argv", [(), ("device",), ("lab",), ("runs",)], ids=repr)
def test_group_alone_shows_its_help(fresh: Runner, argv: tuple[str, ...]) -> None:
    proc = fresh(*argv, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "Usage: edgebench" in proc.stdout + proc.stderr


# main() itself, in process: exits and interruptions raised by a command, by typer
# (which vendors click) or by real click, each end with their code and no traceback.
# An error's line may be followed by the "Try '... --help' for help." hint.
@pytest.mark.parametrize(
    ("exc", "code", "first_line"),
    [
        (typer.Exit(3), 3, ""),
        (typer.Exit(), 0, ""),
        (click.exceptions.Exit(4), 4, ""),
        (typer.Abort(), 130, "aborted"),
        (click.exceptions.Abort(), 130, "aborted"),
        (KeyboardInterrupt(), 130, ""),
        (click.UsageError("bad --thing"), 2, "edgebench: error: bad --thing"),
        (typer.BadParameter("bad --thing"), 2, "edgebench: error: Invalid value: bad --thing"),
        (
            click.FileError("f.txt", "gone"),
            1,
            "edgebench: error: Could not open file 'f.txt': gone",
        ),
    ],
    ids=lambda v: (
        f"{type(v).__module__}.{type(v).__name__}" if isinstance(v, BaseException) else None
    ),
)
def test_main_maps_exceptions_to_exit_codes(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
    first_line: str,
) -> None:
    def probe() -> None:
        raise exc

    monkeypatch.setattr(app, "registered_commands", [*app.registered_commands])
    app.command("probe")(probe)
    try:
        main(["probe"])
        exit_code = 0
    except SystemExit as exited:
        exit_code = exited.code
    assert exit_code == code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err, captured.err
    lines = captured.err.splitlines() or [""]
    assert lines[0] == first_line and len(lines) <= 2, captured.err
    # The program name in process is pytest's ("pytest", "python -m pytest").
    assert all(re.fullmatch(r"Try '.+ probe --help' for help\.", hint) for hint in lines[1:])
