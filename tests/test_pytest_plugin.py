"""The pytest plugin (harness/pytest_plugin.py): a team's own tests as edgebench benchmarks.

Each test writes a small user test file and runs it in a pytest session of its own
(pytester, as a subprocess: what a user's `pytest` does, with the plugin loaded from its
installed entry point), measuring the digits model on the real local device with very
short windows. The model files are built once per session in the shared EDGEBENCH_HOME;
every session gets its own results database.

The example CI workflow (examples/github-actions.yml) is checked here too: valid YAML
with the keys GitHub reads, and every `edgebench` command line in it a real command with
real options, so that the example cannot rot.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, make_runner, write_suite

pytest_plugins = ["pytester"]

# As short as FAST_SUITE's windows: enough samples for real statistics, seconds a job.
FAST_MEASURE = {
    "warmup_runs": 3,
    "warmup_min_s": 0.0,
    "min_runs": 20,
    "min_duration_s": 0.02,
    "repetitions": 3,
}
TWO_ONNX_VARIANTS = """
  - name: fp32-onnx
    recipe: [export_onnx]
  - name: int8-onnx
    recipe: [export_onnx, {onnx_int8_static: {per_channel: true}}]
"""
ONNX_T1 = "  - runtime: onnxruntime\n    threads: [1]\n"
# A shared VM's latency and memory figures move between identical runs (README,
# "Comparing runs"): the gate tests judge what is deterministic, the file size.
DETERMINISTIC_ONLY = [
    "--edgebench-threshold=p50=1000",
    "--edgebench-threshold=p90=1000",
    "--edgebench-threshold=memory=1000",
]
SESSION_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def digits_models(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The digits model as a team has it: a suite file, and two ONNX files of one model,
    fp32 (about 150 KiB) and int8 (about 45 KiB), copied out of a build in the shared
    EDGEBENCH_HOME (the same recipes as FAST_SUITE's, so other tests' builds are reused)."""
    work = tmp_path_factory.mktemp("plugin-models")
    suite = write_suite(
        work / "digits-two.yaml",
        settings=ONNX_T1,
        measure=json.dumps(FAST_MEASURE),
        variants=TWO_ONNX_VARIANTS,
    )
    built = json.loads(make_runner(shared_home, work)("variants", str(suite), "--json").stdout)
    files: dict[str, Any] = {"suite": suite}
    for row in built:
        artifact = Path(row["path"])
        # Out of the cache, as a team keeps its model files.
        copy = work / row["variant"] / artifact.name
        copy.parent.mkdir()
        shutil.copyfile(artifact, copy)
        files[row["variant"]] = copy
    return files


@pytest.fixture
def session_env(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, shared_home: Path
) -> dict[str, str]:
    """The options every session below is run with: the shared workspace, and a results
    database of this test's own."""
    # The plugin must load from its entry point, as in a user's session.
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("EDGEBENCH_HOME", raising=False)
    monkeypatch.delenv("EDGEBENCH_DB", raising=False)
    return {
        "home": str(shared_home),
        "db": f"sqlite:///{pytester.path / 'results.db'}",
    }


def run_session(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=SESSION_TIMEOUT_S)


def edgebench_section(result: pytest.RunResult) -> list[str]:
    """The lines of the plugin's terminal summary."""
    lines = result.outlines
    starts = [i for i, line in enumerate(lines) if re.fullmatch(r"-+ edgebench -+", line)]
    assert starts, "no edgebench section in the terminal summary:\n" + result.stdout.str()
    section = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("=="):
            break
        section.append(line)
    return section


def stored_runs(home: str, db: str, workdir: Path) -> list[dict[str, Any]]:
    """`edgebench runs list --json` on the session's database, as a user would look."""
    eb = make_runner(Path(home), workdir)
    eb.env["EDGEBENCH_DB"] = db  # type: ignore[attr-defined]
    return json.loads(eb("runs", "list", "--json").stdout)


@pytest.mark.slow
def test_a_test_gets_real_metrics_and_the_runs_are_ordinary_runs(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    session_env: dict[str, str],
    digits_models: dict[str, Any],
) -> None:
    pytester.makepyfile(
        test_digits=f"""
        import os

        FAST = {FAST_MEASURE!r}
        FP32 = {str(digits_models["fp32-onnx"])!r}
        SUITE = {str(digits_models["suite"])!r}

        def test_one_model(edgebench):
            result = edgebench.measure(FP32, measure=FAST, name="digits", dataset="digits")
            job = result.job()
            assert (job.model, job.variant, job.runtime, job.threads) == (
                "digits", "as-given", "onnxruntime", 1)
            assert result.p50_s > 0 and result.p90_s >= result.p50_s
            assert result.n >= FAST["min_runs"]
            assert result.peak_rss_bytes > 0
            assert result.file_size_bytes == os.path.getsize(FP32)
            assert result.accuracy > 0.9
            assert result.comparison is None and not result.failed

        def test_a_suite(edgebench):
            result = edgebench.run_suite(SUITE, measure={{"repetitions": 2}})
            assert sorted(j.variant for j in result.jobs) == ["fp32-onnx", "int8-onnx"]
            int8, fp32 = result.job(variant="int8-onnx"), result.job(variant="fp32-onnx")
            assert int8.latency_s.p50 > 0 and int8.latency_s.n >= FAST["min_runs"]
            assert len(int8.window_p50_s) == 2  # the override: 2 repetitions, not 3
            assert int8.accuracy > 0.9
            assert int8.file_size_bytes < fp32.file_size_bytes
        """
    )
    # The workspace and database from the environment, as the CLI takes them.
    monkeypatch.setenv("EDGEBENCH_HOME", session_env["home"])
    monkeypatch.setenv("EDGEBENCH_DB", session_env["db"])
    result = run_session(pytester)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=2)

    section = edgebench_section(result)
    jobs = [line for line in section if line.startswith("test_digits.py::")]
    assert len(jobs) == 3, section  # one line per job: one model, then a suite of two
    assert "local digits/as-given [onnxruntime t=1]: p50 " in jobs[0]
    assert "accuracy 9" in jobs[0] and "size 150." in jobs[0]
    assert "digits_cnn/int8-onnx [onnxruntime t=1]" in "".join(jobs[1:])
    printed = {line.split()[1] for line in jobs}  # "nodeid: RUN device ..."

    runs = stored_runs(session_env["home"], session_env["db"], pytester.path)
    assert {r["id"] for r in runs} == printed
    assert {r["suite_name"] for r in runs} == {"test_digits.py.test_one_model", "digits-fast"}
    assert all(r["status"] == "finished" and r["done"] == r["jobs"] for r in runs)
    # An ordinary run: the CLI reads it like any other.
    eb = make_runner(Path(session_env["home"]), pytester.path)
    eb.env["EDGEBENCH_DB"] = session_env["db"]  # type: ignore[attr-defined]
    one_model = next(r["id"] for r in runs if r["suite_name"] != "digits-fast")
    csv = eb("export", one_model).stdout.splitlines()
    assert len(csv) == 2 and ",digits,as-given," in csv[1]


@pytest.mark.slow
def test_the_gate_fails_the_session_on_a_regression_and_passes_without_one(
    pytester: pytest.Pytester, session_env: dict[str, str], digits_models: dict[str, Any]
) -> None:
    def session(model: Path, *options: str) -> pytest.RunResult:
        # The same test each time: a team's benchmark, the model file what changed.
        pytester.makepyfile(
            test_model=f"""
            def test_model(edgebench):
                result = edgebench.measure({str(model)!r}, measure={FAST_MEASURE!r},
                                           name="digits")
                assert result.p50_s > 0
            """
        )
        return run_session(
            pytester,
            f"--edgebench-home={session_env['home']}",
            f"--edgebench-db={session_env['db']}",
            *options,
        )

    def measured_run(result: pytest.RunResult) -> str:
        (line,) = [x for x in edgebench_section(result) if x.startswith("test_model.py::")]
        return line.split()[1]  # "nodeid: RUN device model/variant ..."

    baseline = session(digits_models["int8-onnx"])
    assert baseline.ret == 0, baseline.stdout.str()
    base_run = measured_run(baseline)

    # The int8 file is replaced by the fp32 one: three times the bytes, and the size
    # rule is exact. The test itself passes; the session fails.
    gate = ["--edgebench-fail-on-regression", *DETERMINISTIC_ONLY]
    grown = session(digits_models["fp32-onnx"], f"--edgebench-baseline={base_run}", *gate)
    assert grown.ret == 1, grown.stdout.str()
    grown.assert_outcomes(passed=1)
    section = edgebench_section(grown)
    assert any(line.startswith(f"compare {base_run} → ") for line in section), section
    assert any("REGRESSED" in line and "File size: 45." in line for line in section), section
    assert section[-1].startswith("edgebench: 1 regression against the baseline in")
    assert section[-1].endswith("the session fails (--edgebench-fail-on-regression)")

    # Back to the int8 file, judged against the newest earlier run of the same test
    # (the fp32 one): smaller again, so better, and the session passes.
    fp32_run = measured_run(grown)
    back = session(digits_models["int8-onnx"], "--edgebench-baseline=previous", *gate)
    assert back.ret == 0, back.stdout.str()
    section = edgebench_section(back)
    assert any(
        line.startswith(f"compare {fp32_run} → ") and "0 worse, 1 better" in line
        for line in section
    ), section
    assert section[-1] == "edgebench: no regression against the baseline"


def one_line_failures(result: pytest.RunResult) -> dict[str, list[str]]:
    """Each failed test's section of the report: its name -> the lines under it."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in result.outlines:
        header = re.fullmatch(r"_+ (\S+) _+", line)
        if header:
            current = sections.setdefault(header.group(1), [])
        elif line.startswith("=") or re.fullmatch(r"-+ edgebench -+", line):
            current = None
        elif current is not None and line.strip():
            current.append(line)
    return sections


def test_usage_mistakes_fail_the_test_in_one_line_naming_the_thing(
    pytester: pytest.Pytester, session_env: dict[str, str]
) -> None:
    # A typo in a suite file: reported with the file, the line and the key.
    write_suite(pytester.path / "typo.yaml", settings=ONNX_T1, measure="{min_run: 3}")
    model = pytester.path / "model.onnx"
    model.write_bytes(b"not used: every mistake below is found before a measurement")
    pytester.makepyfile(
        test_mistakes=f"""
        MODEL = {str(model)!r}

        def test_unknown_device(edgebench):
            edgebench.measure(MODEL)  # the session's --edgebench-device

        def test_missing_suite(edgebench):
            edgebench.run_suite("no-such-suite.yaml", device="local")

        def test_missing_model(edgebench):
            edgebench.measure("no-such-model.onnx", device="local")

        def test_suite_mistake(edgebench):
            edgebench.run_suite("typo.yaml", device="local")

        def test_override_mistake(edgebench):
            edgebench.run_suite("digits", device="local", measure={{"min_runs": 0}})

        def test_unknown_runtime(edgebench):
            edgebench.measure(MODEL, runtime="onnxrt", device="local")

        def test_unknown_baseline(edgebench):
            edgebench.measure(MODEL, device="local")
        """
    )
    result = run_session(
        pytester,
        f"--edgebench-home={session_env['home']}",
        f"--edgebench-db={session_env['db']}",
        "--edgebench-device=no-such-board",
        "--edgebench-baseline=no-such-run",
    )
    result.assert_outcomes(failed=7)
    failures = one_line_failures(result)
    expected = {
        "test_unknown_device": "edgebench: no device 'no-such-board' (see `edgebench device list`)",
        "test_missing_suite": "edgebench: suite no-such-suite.yaml: no such file",
        "test_missing_model": "edgebench: model file ",
        "test_suite_mistake": "edgebench: ",
        "test_override_mistake": "edgebench: ",
        "test_unknown_runtime": "edgebench: unknown runtime 'onnxrt' (known: onnxruntime, ",
        "test_unknown_baseline": "edgebench: no run 'no-such-run' (see `edgebench runs list`)",
    }
    for test, start in expected.items():
        assert len(failures[test]) == 1, (test, failures[test])
        assert failures[test][0].startswith(start), (test, failures[test])
    assert "no-such-model.onnx: no such file" in failures["test_missing_model"][0]
    assert re.match(
        r"edgebench: \S*typo\.yaml:\d+: measure\.min_run: ", failures["test_suite_mistake"][0]
    )
    assert "overrides: measure.min_runs: " in failures["test_override_mistake"][0]
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "harness/" not in output
    # Found before any work: nothing was run.
    assert stored_runs(session_env["home"], session_env["db"], pytester.path) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--edgebench-fail-on-regression"],
            "ERROR: --edgebench-fail-on-regression needs --edgebench-baseline RUN",
        ),
        (
            ["--edgebench-baseline=latest", "--edgebench-threshold=p50=fast"],
            "ERROR: --edgebench-threshold 'p50=fast': 'fast' is not a number",
        ),
        (["--edgebench-baseline="], "ERROR: --edgebench-baseline needs a run id"),
    ],
)
def test_a_mistaken_option_stops_the_session_in_one_line(
    pytester: pytest.Pytester, session_env: dict[str, str], options: list[str], message: str
) -> None:
    pytester.makepyfile("def test_nothing(edgebench):\n    pass\n")
    result = run_session(pytester, f"--edgebench-home={session_env['home']}", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(message), result.errlines


def test_a_session_that_does_not_use_it_sees_nothing_of_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("EDGEBENCH_HOME", raising=False)
    pytester.makepyfile(
        test_plain="""
        import json, os, sys

        def test_plain():
            with open(os.environ["MODULES_FILE"], "w") as f:
                json.dump(sorted(sys.modules), f)
        """
    )
    imported = {}
    for label, options in (("with", []), ("without", ["-p", "no:edgebench"])):
        monkeypatch.setenv("MODULES_FILE", str(pytester.path / f"{label}.json"))
        result = run_session(pytester, *options)
        assert result.ret == 0, result.stdout.str()
        # No summary section, no output of its own (the header's plugin list aside).
        assert not any(re.fullmatch(r"-+ edgebench -+", line) for line in result.outlines)
        imported[label] = set(json.loads((pytester.path / f"{label}.json").read_text()))
    # Loading the plugin imports the plugin, and nothing else.
    assert imported["with"] - imported["without"] == {"harness", "harness.pytest_plugin"}
    assert not (pytester.path / ".edgebench").exists()
    # ... and its options are there for whoever wants them.
    help_text = run_session(pytester, "--help").stdout.str()
    for option in ("--edgebench-device", "--edgebench-baseline", "--edgebench-fail-on-regression"):
        assert option in help_text


# --------------------------------------------------------------------------- the example
EXAMPLE = REPO / "examples" / "github-actions.yml"
# `edgebench` as a word: not a path (/edgebench), a name (edgebench-site) or a variable.
_EDGEBENCH_WORD = re.compile(r"(?<![\w./$-])edgebench(?=\s)")
_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}
_REDIRECTS = {">", ">>", "<", "2>", ">&"}


def example_workflow() -> dict[Any, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def shell_lines(script: str) -> list[str]:
    """A `run:` script's logical lines (backslash continuations joined)."""
    return script.replace("\\\n", " ").splitlines()


def edgebench_commands(line: str) -> list[list[str]]:
    """Each `edgebench ...` command of a shell line as its argv after `edgebench`:
    commands start a line or follow |, ||, &&, ; and stop at one; redirections are not
    arguments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = []
    segment: list[str] = []
    tokens = list(lexer)
    i = 0
    while i <= len(tokens):
        token = tokens[i] if i < len(tokens) else ";"
        if token in _SEPARATORS:
            if segment and segment[0] == "edgebench":
                commands.append(segment[1:])
            segment = []
        elif token in _REDIRECTS:
            i += 1  # and its target
        else:
            segment.append(token)
        i += 1
    return commands


def check_command_line(argv: list[str]) -> str:
    """Parse ``edgebench ARGV`` with the CLI's own click commands (nothing runs); the
    command's path, or a usage error (unknown command or option, missing argument)."""
    import typer

    from harness.cli import app

    command: Any = typer.main.get_command(app)
    name, args, parent = "edgebench", argv, None
    while True:
        ctx = command.make_context(name, list(args), parent=parent)
        if not hasattr(command, "resolve_command"):
            return ctx.command_path
        rest = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        name, command, args = command.resolve_command(ctx, rest)
        parent = ctx


def test_the_github_actions_example_is_a_workflow_github_reads() -> None:
    workflow = example_workflow()
    # YAML 1.1 reads the key `on` as true; GitHub reads it as "on".
    triggers = workflow.get("on", workflow.get(True))
    assert set(triggers) == {"push", "pull_request"}
    assert workflow["permissions"]["pull-requests"] == "write"  # the comment
    (job,) = workflow["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    steps = job["steps"]
    assert steps and all(isinstance(step, dict) for step in steps)
    for step in steps:
        assert ("uses" in step) != ("run" in step), step
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w/-]+@v\d+", step["uses"]), step
    uses = [step.get("uses", "") for step in steps]
    # Main's run is the baseline: restored from the cache on every run, saved on main only.
    assert "actions/cache/restore@v4" in uses and "actions/upload-artifact@v4" in uses
    saved = next(s for s in steps if s.get("uses") == "actions/cache/save@v4")
    assert "github.event_name == 'push'" in saved["if"]
    scripts = "\n".join(step.get("run", "") for step in steps)
    assert "gh pr comment" in scripts and "--format md" in scripts


def test_every_edgebench_command_in_the_example_is_real() -> None:
    commands: list[list[str]] = []
    for step in example_workflow()["jobs"]["benchmark"]["steps"]:
        for line in shell_lines(step.get("run", "")):
            found = edgebench_commands(line) if _EDGEBENCH_WORD.search(line) else []
            # Every use of the word is a command this test parses: none slips past it.
            assert len(found) == len(_EDGEBENCH_WORD.findall(line)), line
            commands.extend(found)
    paths = [check_command_line(argv) for argv in commands]
    assert sorted(set(paths)) == [
        "edgebench compare",
        "edgebench device add",
        "edgebench publish",
        "edgebench run",
        "edgebench runs list",
    ]


def test_the_command_check_refuses_what_the_cli_refuses() -> None:
    import click
    import typer

    usage_errors: tuple[type[Exception], ...] = (click.exceptions.UsageError,)
    vendored = getattr(getattr(typer, "_click", None), "exceptions", None)
    if vendored is not None:
        usage_errors += (vendored.UsageError,)
    assert check_command_line(["compare", "A", "B", "--format", "md"]) == "edgebench compare"
    for argv in (["compare", "A", "B", "--fail-on-regresion"], ["runs", "lst"], ["compare"]):
        with pytest.raises(usage_errors):
            check_command_line(argv)
    assert edgebench_commands('x=1 && edgebench run "$SUITE" --no-report > out.txt || s=$?') == [
        ["run", "$SUITE", "--no-report"]
    ]
