"""A pytest plugin: benchmarks in a team's own pytest suite, as ordinary edgebench runs.

A test asks for the ``edgebench`` fixture and measures a suite or one model file on the
chosen device; it gets a :class:`Result` (the run id and one
``runners.records.JobResult`` per job) to assert on::

    def test_int8_is_fast(edgebench):
        result = edgebench.measure("build/model_int8.onnx", measure={"repetitions": 3})
        assert result.p50_s < 2e-3

Every measurement is an ordinary run in the results store (``edgebench runs list``,
``edgebench report RUN``). At the end of the session a summary lists what was measured,
one line per job, and with ``--edgebench-baseline RUN`` each run's verdicts against that
run as ``edgebench compare`` gives them; ``--edgebench-fail-on-regression`` then makes
the session fail (exit 1) when a job measured in it is worse or newly failing.

Installed as the ``pytest11`` entry point ``edgebench`` (``-p no:edgebench`` turns it
off). A session that neither asks for the fixture nor gives an ``--edgebench-*`` option
sees nothing of it: this module imports only pytest and the standard library at load
time, and the workspace is opened on the first measurement, not before.

A usage mistake (an unknown device, a missing suite or model file, a baseline run that
is not in the store, a suite key that does not validate) fails the test with one line
naming the thing; a mistake in the options themselves stops the session before any test
runs (pytest's usage error, exit 4).

The run below repeats what ``edgebench run`` does (``harness.cli.do_run``, without
``--resume``) with the harness's own pieces, because the CLI's version prints to the
terminal and exits; the comparison is ``harness.compare.compare_reports`` restricted to
the jobs this session measured.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # only for annotations: importing them is what a bare session must not do
    from harness.store import Store
    from harness.workspace import Workspace
    from runners.records import JobResult, RunReport
    from suites.schema import Suite

# `--edgebench-baseline previous`: each run against the newest earlier run of its suite.
PREVIOUS = "previous"
# The one variant of a model measured with `edgebench.measure`: the file as given.
AS_GIVEN = "as-given"

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_SUITE_NAME_MAX = 120  # a nodeid can be long; the store's column holds 200


# --------------------------------------------------------------------------- options
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "edgebench", "edgebench: benchmark models on edge devices from tests (fixture edgebench)"
    )
    group.addoption(
        "--edgebench-device",
        metavar="NAME",
        default="local",
        help="Registered device to measure on (default: local, this machine; registered "
        "on first use when it is not).",
    )
    group.addoption(
        "--edgebench-home",
        metavar="DIR",
        default=None,
        help="Workspace: artifact and build caches, and the SQLite results database "
        "(default: $EDGEBENCH_HOME, else ./.edgebench).",
    )
    group.addoption(
        "--edgebench-db",
        metavar="URL",
        default=None,
        help="Results database URL (default: $EDGEBENCH_DB, else SQLite in the workspace).",
    )
    group.addoption(
        "--edgebench-baseline",
        metavar="RUN",
        default=None,
        help="Judge every run of this session against RUN (a run id, a unique prefix or "
        "'latest', as `edgebench compare` takes), or 'previous': each run against the "
        "newest run of its suite made before this session.",
    )
    group.addoption(
        "--edgebench-fail-on-regression",
        action="store_true",
        default=False,
        help="With --edgebench-baseline: the session fails (exit 1) when a job measured "
        "in it is worse or newly failing.",
    )
    group.addoption(
        "--edgebench-threshold",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="With --edgebench-baseline: a tolerance, as `edgebench compare --threshold` "
        "takes it (repeatable; e.g. p50=25 or 'p50:digits*=10').",
    )


@dataclass(frozen=True)
class Options:
    """The ``--edgebench-*`` options, read once when the session is configured."""

    device: str
    home: Path  # resolved against the directory pytest was started in
    db: str | None
    baseline: str | None
    fail_on_regression: bool
    threshold_args: tuple[str, ...]

    @classmethod
    def of(cls, config: pytest.Config) -> Options:
        started_in = config.invocation_params.dir
        # The CLI's defaults (harness.workspace.Workspace.from_env), read without it:
        # importing the harness is what a session that measures nothing must not do.
        home = config.getoption("edgebench_home") or os.environ.get("EDGEBENCH_HOME")
        return cls(
            device=config.getoption("edgebench_device"),
            home=(started_in / (home or ".edgebench")).resolve(),
            db=config.getoption("edgebench_db") or os.environ.get("EDGEBENCH_DB") or None,
            baseline=config.getoption("edgebench_baseline"),
            fail_on_regression=config.getoption("edgebench_fail_on_regression"),
            threshold_args=tuple(config.getoption("edgebench_threshold") or ()),
        )


_SESSION = pytest.StashKey["EdgebenchSession"]()


def pytest_configure(config: pytest.Config) -> None:
    options = Options.of(config)
    if options.baseline is not None and not options.baseline.strip():
        raise pytest.UsageError("--edgebench-baseline needs a run id (see `edgebench runs list`)")
    if options.baseline is None:
        for given, name in (
            (options.fail_on_regression, "--edgebench-fail-on-regression"),
            (options.threshold_args, "--edgebench-threshold"),
        ):
            if given:
                raise pytest.UsageError(f"{name} needs --edgebench-baseline RUN")
    thresholds: dict[str, float] = {}
    if options.threshold_args:
        # Only when given: a malformed tolerance stops the session before minutes of work.
        from harness.compare import parse_thresholds
        from harness.errors import UsageError

        try:
            thresholds = parse_thresholds(list(options.threshold_args))
        except UsageError as e:
            message = str(e).replace("--threshold", "--edgebench-threshold", 1)
            raise pytest.UsageError(message) from None
    config.stash[_SESSION] = EdgebenchSession(options, thresholds)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Result:
    """One run the fixture made: its id and what each job measured.

    ``jobs`` are the report's typed records (``runners.records.JobResult``): latency in
    ``job.latency_s`` (``p50``, ``p90``, ..., ``n``; seconds), ``peak_rss_bytes``,
    ``accuracy`` (top-1, 0..1), ``energy_per_inference_j``, ``file_size_bytes`` and the
    rest; a figure that was not measured is None. Raw samples are not loaded
    (``samples_s`` is empty): they stay in the store. The properties below are the
    figures of a run with one job (what ``edgebench.measure`` makes); for a suite, pick a
    job with :meth:`job`.

    With a baseline, ``comparison`` holds ``edgebench compare --format json``'s verdicts
    of this run's jobs against it, and ``regressed`` says whether the gate would fail.
    """

    run_id: str
    suite: str
    status: str  # the run's: finished | failed | interrupted
    device: str
    jobs: tuple[JobResult, ...]
    baseline_run: str | None = None
    comparison: dict[str, Any] | None = None

    @property
    def failed(self) -> list[JobResult]:
        """Jobs that did not finish (failed, or left pending by an interruption)."""
        return [j for j in self.jobs if j.status != "done"]

    @property
    def regressed(self) -> bool:
        """A job worse than, or newly failing against, the baseline run (the CLI's gate)."""
        if self.comparison is None:
            return False
        marks = self.comparison["marks"]
        return bool(marks["worse"] or marks["newly failing"])

    def job(
        self,
        variant: str | None = None,
        *,
        model: str | None = None,
        setting: str | None = None,
        runtime: str | None = None,
        threads: int | None = None,
    ) -> JobResult:
        """The one job that matches every filter given (``setting`` is the setting's
        label, e.g. "onnxruntime t=1"); with none, the run's only job."""
        wanted = {
            "variant": variant,
            "model": model,
            "setting": setting,
            "runtime": runtime,
            "threads": threads,
        }
        found = [
            j
            for j in self.jobs
            if all(value is None or getattr(j, key) == value for key, value in wanted.items())
        ]
        if len(found) == 1:
            return found[0]
        asked = ", ".join(f"{k}={v!r}" for k, v in wanted.items() if v is not None) or "no filter"
        labels = "; ".join(_job_label(j) for j in self.jobs) or "none"
        how = "no job matches" if not found else f"{len(found)} jobs match"
        raise _failure(
            f"run {self.run_id}: {how} {asked}; pick one with result.job(variant=..., "
            f"setting=...) (jobs: {labels})"
        )

    # The figures of a one-job run.
    @property
    def p50_s(self) -> float | None:
        latency = self.job().latency_s
        return latency.p50 if latency else None

    @property
    def p90_s(self) -> float | None:
        latency = self.job().latency_s
        return latency.p90 if latency else None

    @property
    def n(self) -> int | None:
        """Timed inferences, every measured window together."""
        latency = self.job().latency_s
        return latency.n if latency else None

    @property
    def peak_rss_bytes(self) -> float | None:
        return self.job().peak_rss_bytes

    @property
    def accuracy(self) -> float | None:
        return self.job().accuracy

    @property
    def energy_per_inference_j(self) -> float | None:
        return self.job().energy_per_inference_j

    @property
    def file_size_bytes(self) -> int | None:
        return self.job().file_size_bytes


def _job_label(j: JobResult) -> str:
    return f"{j.device} {j.model}/{j.variant} [{j.setting}]"


def _failure(message: str) -> BaseException:
    """What fails the running test with one line, to raise (``from None`` in an except
    block, so that neither a traceback of edgebench's internals nor the error it
    replaces is shown)."""
    return pytest.fail.Exception(f"edgebench: {' '.join(message.split())}", pytrace=False)


# --------------------------------------------------------------------------- session
@dataclass
class Measured:
    nodeid: str
    result: Result


@dataclass
class EdgebenchSession:
    """What one pytest session measured, and the workspace it measured in (opened on
    the first measurement)."""

    options: Options
    thresholds: dict[str, float]
    # Runs made before this moment may be a `previous` baseline; this session's may not.
    started_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds")
    )
    measured: list[Measured] = field(default_factory=list)
    # nodeid -> why a run of that test had nothing to be compared with.
    no_baseline: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _workspace: Workspace | None = None
    _store: Store | None = None
    _baseline_id: str | None = None

    # -- workspace --------------------------------------------------------------
    def open(self) -> tuple[Workspace, Store]:
        if self._workspace is None or self._store is None:
            from harness.store import Store
            from harness.workspace import Workspace

            ws = Workspace.from_env(db=self.options.db, home=str(self.options.home)).ensure()
            self._store = Store(ws.db_url)
            self._workspace = ws
        return self._workspace, self._store

    def device_row(self, store: Store, name: str) -> dict[str, Any]:
        """The registered device; ``local`` (this machine) is registered on first use, as
        ``edgebench demo`` does, so that a test suite runs with no setup."""
        row = store.get_device(name)
        if row is None and name == "local":
            store.add_device(
                {"name": "local", "transport": "local", "tags": {"role": "controller"}}
            )
            self.notes.append("registered this machine as device local")
            row = store.get_device(name)
        if row is None:
            from harness.errors import UsageError

            raise UsageError(f"no device {name!r} (see `edgebench device list`)")
        return row

    def baseline_for(self, store: Store, suite_name: str) -> str | None:
        """The run this suite's run is judged against; None without a baseline, or with
        ``previous`` when the suite has no earlier run."""
        ref = self.options.baseline
        if ref is None:
            return None
        if ref == PREVIOUS:
            own = {m.result.run_id for m in self.measured}
            for run in store.list_runs():  # newest first
                if (
                    run["suite_name"] == suite_name
                    and run["id"] not in own
                    and run["created_at"] < self.started_at
                ):
                    return str(run["id"])
            return None
        if self._baseline_id is None:
            # Once, before this session's first run: "latest" must not become one of them.
            self._baseline_id = str(store.resolve_run(ref)["id"])
        return self._baseline_id

    # -- measuring ---------------------------------------------------------------
    def run(
        self,
        nodeid: str,
        suite_path: Path,
        overrides: Mapping[str, Any],
        device: str,
        *,
        check: bool,
    ) -> Result:
        """Build the suite's variants, run every job on ``device``, store the run and
        judge it against the baseline; usage mistakes fail the test in one line."""
        from pydantic import ValidationError

        from harness.errors import USER_FACING

        try:
            result = self._run(suite_path, overrides, device)
        except USER_FACING as e:
            raise _failure(str(e)) from None
        except ValidationError as e:  # an override that the suite schema refuses
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise _failure(f"{suite_path}: overrides: {key}: {err['msg']}") from None
        self.measured.append(Measured(nodeid, result))
        if result.comparison is None and self.options.baseline is not None:
            why = f"no run of suite {result.suite!r} before this session"
            self.no_baseline.append((nodeid, why))
        if check and result.failed:
            first = result.failed[0]
            raise _failure(
                f"run {result.run_id}: {len(result.failed)} of {len(result.jobs)} job(s) did not "
                f"finish; {_job_label(first)}: {first.error or first.status}"
            )
        return result

    def _run(self, suite_path: Path, overrides: Mapping[str, Any], device: str) -> Result:
        from rich.console import Console

        from harness import scheduler
        from harness.artifacts import ArtifactCache, build_variants
        from harness.results import report_data
        from suites.schema import load_suite

        ws, store = self.open()
        suite = load_suite(suite_path)
        if overrides:
            suite = _with_overrides(suite, overrides)
        # What can be refused is refused before minutes of building: device, baseline.
        self.device_row(store, device)
        devices = scheduler.select_devices(store, suite, [device], {})
        baseline = self.baseline_for(store, suite.name)
        # Progress to stderr, which pytest captures and shows with a failing test.
        console = Console(stderr=True, markup=False, highlight=False)

        def on_progress(label: str, cached: bool) -> None:
            console.print(f"  variant {label}: {'cached' if cached else 'built'}")

        built = build_variants(
            suite, suite_path.parent, ArtifactCache(ws, store), on_progress=on_progress
        )
        run_id = scheduler.new_run(ws, store, suite, suite_path.resolve(), built, devices)
        ctx = scheduler.RunContext(
            ws=ws,
            store=store,
            suite=suite,
            run_id=run_id,
            variants={(v.model, v.name): v for v in built},
        )
        status = scheduler.execute(ctx, devices, console)
        data = report_data(store, run_id, samples=False)
        comparison = (
            _compare(store, baseline, data, self.thresholds) if baseline is not None else None
        )
        return Result(
            run_id=run_id,
            suite=suite.name,
            status=status,
            device=device,
            jobs=tuple(data.results),
            baseline_run=baseline,
            comparison=comparison,
        )

    def write_model_suite(
        self,
        suite_name: str,
        model_path: Path,
        *,
        name: str | None,
        runtime: str | None,
        threads: int,
        measure: Mapping[str, Any] | None,
        dataset: str | None,
        device: str,
    ) -> Path:
        """A one-model suite for ``model_path`` as it is (recipe ``identity``), written into
        the workspace so that the run can be resumed and reproduced from the CLI."""
        import yaml

        from harness.errors import UsageError
        from harness.scheduler import serves
        from suites.runtimes import get_runtime, runtimes

        ws, store = self.open()
        if not model_path.is_file():
            raise UsageError(f"model file {model_path}: no such file")
        suffixes = sorted({s for r in runtimes() for s in r.suffixes})
        if model_path.suffix not in suffixes:
            raise UsageError(f"model file {model_path}: must be {' or '.join(suffixes)}")
        if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            # The suite schema's rule for model names, said here: the suite is generated.
            raise UsageError(f"name {name!r}: use letters, digits, '_', '.' and '-' only")
        row = self.device_row(store, device)
        if runtime is None:
            # As `edgebench infer` picks: the first runtime for this suffix whose runner
            # drives this kind of device (LiteRT on a shell host, the firmware on an MCU).
            chosen = next(
                (
                    r
                    for r in runtimes()
                    if model_path.suffix in r.suffixes and serves(r.name, row["transport"])
                ),
                None,
            )
            if chosen is None:
                raise UsageError(
                    f"model file {model_path}: no runtime runs {model_path.suffix} files on "
                    f"device {device!r}"
                )
            runtime = chosen.name
        else:
            try:
                declared = get_runtime(runtime)
            except KeyError as e:
                raise UsageError(str(e.args[0])) from None
            if model_path.suffix not in declared.suffixes:
                raise UsageError(f"runtime {runtime!r} does not load {model_path.suffix} files")
        suite: dict[str, Any] = {
            "name": suite_name,
            "description": f"{model_path.name} as given, measured by a pytest test",
            "models": [{"name": name or _safe_name(model_path.stem), "file": str(model_path)}],
            "variants": [{"name": AS_GIVEN, "recipe": ["identity"]}],
            "settings": [{"runtime": runtime, "threads": [threads]}],
            "measure": dict(measure or {}),
            "devices": {"names": [device]},
        }
        if dataset is not None:
            suite["accuracy"] = {"dataset": dataset, "split": "test"}
        text = yaml.safe_dump(suite, sort_keys=False)
        # Named by content: a later call with other settings never rewrites the file an
        # earlier run was made from.
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        path = ws.home / "pytest" / f"{suite_name}-{digest}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            tmp = path.with_suffix(".part")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        return path

    # -- the gate ----------------------------------------------------------------
    def regressed(self) -> list[Measured]:
        return [m for m in self.measured if m.result.regressed]


def _safe_name(text: str) -> str:
    """A suite or model name (letters, digits, ``_.-``) made from free text."""
    name = _NAME_CHARS.sub("-", text).strip("-.") or "model"
    if len(name) > _SUITE_NAME_MAX:
        name = name[: _SUITE_NAME_MAX - 13] + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return name


def _with_overrides(suite: Suite, overrides: Mapping[str, Any]) -> Suite:
    """The suite with top-level keys replaced; a mapping given for a mapping key
    (``measure``, ``accuracy``, ``devices``) updates it key by key instead."""
    from suites.schema import Suite

    plain = suite.model_dump(mode="json")
    for key, value in overrides.items():
        current = plain.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            plain[key] = {**current, **value}
        else:
            plain[key] = value
    return Suite.model_validate(plain)


def _pair_key(r: JobResult) -> tuple[str, str, str, str]:
    # How harness.compare pairs jobs.
    return (r.device, r.model, r.variant, r.setting)


def _compare(
    store: Store, baseline_id: str, data: RunReport, thresholds: Mapping[str, float]
) -> dict[str, Any]:
    """``compare_runs(store, baseline, run)`` restricted to this run's jobs: a baseline
    run usually holds far more (a whole suite, other tests' models), and those are not
    what this test measured. The raw samples are loaded only for the pairs that finished
    on both sides, the only ones the U test needs."""
    from harness.compare import compare_reports
    from harness.results import report_data

    base = report_data(store, baseline_id, samples=False)
    mine = {_pair_key(r) for r in data.results}
    base_results = [r for r in base.results if _pair_key(r) in mine]
    done = {_pair_key(r) for r in base_results if r.status == "done"} & {
        _pair_key(r) for r in data.results if r.status == "done"
    }

    def with_samples(r: JobResult) -> JobResult:
        if _pair_key(r) not in done:
            return r
        return r.replace(samples_s=[s for w in store.job_samples(r.job_id) for s in w])

    return compare_reports(
        base.replace(results=[with_samples(r) for r in base_results]),
        data.replace(results=[with_samples(r) for r in data.results]),
        thresholds,
    )


# --------------------------------------------------------------------------- fixture
class EdgebenchFixture:
    """What a test gets from the ``edgebench`` fixture: measure on the session's device
    (``--edgebench-device``, default ``local``), or on ``device=`` for one call."""

    def __init__(self, session: EdgebenchSession, nodeid: str) -> None:
        self._session = session
        self._nodeid = nodeid

    @property
    def device(self) -> str:
        return self._session.options.device

    def run_suite(
        self,
        suite: str | os.PathLike[str],
        *,
        device: str | None = None,
        check: bool = True,
        **overrides: Any,
    ) -> Result:
        """Run a suite file (or a bundled suite by name, e.g. ``"digits"``) on the device
        (the suite's own ``devices:`` selection is not used).

        Keyword ``overrides`` replace top-level suite keys, a mapping updating a mapping
        key: ``run_suite("suite.yaml", measure={"repetitions": 3}, retries=0)``. With
        ``check`` (default) a job that did not finish fails the test (after the run is
        stored and judged); without, it is in ``result.failed``."""
        path = _suite_path(suite)
        if not path.is_file():
            raise _failure(f"suite {suite}: no such file (nor a bundled suite of that name)")
        return self._session.run(self._nodeid, path, overrides, device or self.device, check=check)

    def measure(
        self,
        model_path: str | os.PathLike[str],
        runtime: str | None = None,
        threads: int = 1,
        measure: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        dataset: str | None = None,
        device: str | None = None,
        check: bool = True,
    ) -> Result:
        """Measure one model file (.onnx, .tflite) as it is, one job.

        ``runtime`` defaults to the first that loads the file on the device; ``measure``
        holds measurement rules (``warmup_runs``, ``min_runs``, ``min_duration_s``,
        ``repetitions``, ...; the suite defaults otherwise). ``name`` is the model's name
        in the run (default: the file's stem): runs pair with the baseline by device,
        model, variant and setting, so give two files of one model the same name.
        ``dataset`` (e.g. ``"digits"``) also measures top-1 accuracy on its test split."""
        from harness.errors import USER_FACING

        session = self._session
        # Named after the test: `--edgebench-baseline previous` finds this test's last run.
        suite_name = _safe_name(self._nodeid.replace("::", "."))
        target = device or self.device
        try:
            path = session.write_model_suite(
                suite_name,
                Path(model_path).expanduser().resolve(),
                name=name,
                runtime=runtime,
                threads=threads,
                measure=measure,
                dataset=dataset,
                device=target,
            )
        except USER_FACING as e:
            raise _failure(str(e)) from None
        return session.run(self._nodeid, path, {}, target, check=check)


def _suite_path(ref: str | os.PathLike[str]) -> Path:
    """A path, or the name of a bundled suite, as `edgebench run` takes it."""
    from suites.schema import suite_path

    return suite_path(ref)


@pytest.fixture
def edgebench(request: pytest.FixtureRequest) -> EdgebenchFixture:
    """Measure a suite or a model file on an edge device; see ``EdgebenchFixture``."""
    return EdgebenchFixture(request.config.stash[_SESSION], request.node.nodeid)


# --------------------------------------------------------------------------- the end
def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    state = session.config.stash.get(_SESSION, None)
    if state is None or not state.options.fail_on_regression:
        return
    # A session that otherwise passed fails; one that failed already keeps its status.
    if state.regressed() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
    exitstatus: int | pytest.ExitCode,
    config: pytest.Config,
) -> None:
    state = config.stash.get(_SESSION, None)
    if state is None or not (state.measured or state.options.baseline is not None):
        return  # a session that did not use edgebench prints nothing of it
    write = terminalreporter.write_line
    terminalreporter.write_sep("-", "edgebench")
    if not state.measured:
        write(f"nothing was measured; baseline {state.options.baseline} not used")
        return
    from reports.compare import format_text

    estimated = False
    for m in state.measured:
        for job in m.result.jobs:
            line, marked = _job_line(m, job)
            estimated = estimated or marked
            write(line)
    if estimated:
        write("* estimated (no sensor, or emulated)")
    for note in state.notes:
        write(note)
    ws = state._workspace
    where = f"EDGEBENCH_HOME={ws.home}" if ws else ""
    if state.options.db:
        from harness.store import _safe_url

        where += f" EDGEBENCH_DB={_safe_url(state.options.db)}"
    write(f"runs stored in {where.strip()} (see `edgebench runs list`, `edgebench report RUN`)")
    if state.options.baseline is None:
        return
    for m in state.measured:
        if m.result.comparison is not None:
            text = format_text(m.result.comparison)
            for line in text.splitlines():
                write(line, red=m.result.regressed and line.lstrip().startswith(("REG", "NEW")))
    for nodeid, why in state.no_baseline:
        write(f"not compared: {nodeid}: {why}")
    _warn_unused_patterns(state, write)
    regressed = state.regressed()
    if not regressed:
        write("edgebench: no regression against the baseline", green=True)
        return
    total = sum(m.result.comparison["regressions"] for m in regressed if m.result.comparison)
    what = f"{total} regression{'s' if total != 1 else ''} against the baseline in " + ", ".join(
        m.nodeid for m in regressed
    )
    if state.options.fail_on_regression:
        write(f"edgebench: {what}: the session fails (--edgebench-fail-on-regression)", red=True)
    else:
        write(f"edgebench: {what} (not gating: no --edgebench-fail-on-regression)", yellow=True)


def _job_line(m: Measured, job: JobResult) -> tuple[str, bool]:
    """One job as the summary lists it, and whether a figure in it is estimated."""
    from reports.tables import fmt_bytes, fmt_joules, fmt_pct, fmt_seconds

    head = f"{m.nodeid}: {m.result.run_id} {_job_label(job)}"
    if job.status != "done":
        return f"{head}: {job.status.upper()}: {job.error or 'no result'}", False
    if job.not_deployable:
        return f"{head}: NOT DEPLOYABLE: {job.not_deployable}", False

    def star(field_name: str) -> str:
        return "*" if field_name in job.estimated else ""

    latency = job.latency_s
    figures = [
        f"p50 {fmt_seconds(latency.p50 if latency else None)}{star('latency_s')}",
        f"p90 {fmt_seconds(latency.p90 if latency else None)}{star('latency_s')}",
        f"n {latency.n if latency and latency.n is not None else '-'}",
        f"peak memory {fmt_bytes(job.peak_rss_bytes)}{star('peak_rss_bytes')}",
        f"accuracy {fmt_pct(job.accuracy)}",
        f"energy {fmt_joules(job.energy_per_inference_j)}{star('energy_per_inference_j')}",
        f"size {fmt_bytes(job.file_size_bytes)}",
    ]
    if latency and latency.source != "edgebench":
        figures.append(f"({latency.source}'s figures)")
    return f"{head}: {', '.join(figures)}", any(f.endswith("*") for f in figures)


def _warn_unused_patterns(state: EdgebenchSession, write: Any) -> None:
    """A --edgebench-threshold pattern that matched no job of any run is most likely a
    typo, which would otherwise be silence (as `edgebench compare` warns)."""
    used: dict[tuple[str, str], int] = {}
    for m in state.measured:
        for p in (m.result.comparison or {}).get("threshold_patterns", []):
            key = (p["metric"], p["pattern"])
            used[key] = used.get(key, 0) + p["jobs"]
    for (metric, pattern), jobs in used.items():
        if not jobs:
            write(f"warning: --edgebench-threshold pattern {pattern!r} ({metric}) matches no job")
