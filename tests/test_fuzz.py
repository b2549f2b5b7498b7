"""Fuzzing what devices and vendor tools send back (issue 11, "bad input, systematically").

Every reader of bytes that come from outside edgebench is fed random, truncated and
corrupted versions of what it reads in real life, and must

* never hang (each call runs under a SIGALRM time limit),
* never raise anything but its documented error (a traceback for a user is a bug),
* never hand back a result without the figures it promises: a vendor log that parses
  has a latency, a power reading is a finite number of watts, an `edgebench import`
  never stores a "done" job without a latency.

Readers: the agent's request handler (`handle`, the device side) and the host's reply
parsing (`AgentClient`), the MCU frame decoder (`FramedClient`) and the EEMBC text
client, and the parsers of benchmark_model, trtexec (log and --exportTimes JSON),
onnxruntime_perf_test, tegrastats, vcgencmd and the INA3221 sysfs files, plus
`edgebench import` in process and, for a sample, through the console script.

The generators are derandomized (hypothesis ``derandomize=True``, no example database)
so that CI runs the same inputs every time. ``TALLY`` counts what was tried;
``test_zz_fuzz_tally`` (last in this file) prints the counts and asserts that none of
them was a traceback or a lost result.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import struct
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from devices.errors import AgentError, TransportError, TransportTimeout
from devices.power import ina3221, rpi, tegrastats
from devices.power.errors import ParseError
from devices.transport import ByteStream
from harness.errors import UsageError
from harness.importer import import_logs
from harness.store import Store
from runners.agent.edgebench_agent import Agent
from runners.agent_client import AgentClient, encode_array
from runners.benchmark_model import BenchmarkModelParseError, parse_benchmark_model
from runners.mcu import eembc as mcu_eembc
from runners.mcu import protocol as mcu_protocol
from runners.mcu.eembc import EembcClient, EembcProfile
from runners.mcu.protocol import (
    ERROR,
    HELLO,
    INFER,
    INPUT,
    LAYERS,
    MAX_PAYLOAD,
    OUTPUT,
    REPLY,
    STACK,
    SYNC,
    FramedClient,
    Hello,
    ProtocolError,
)
from runners.ort_perf_test import OrtPerfTestParseError, parse_ort_perf_test
from runners.tool_stats import benchmark_model_statistics, ort_perf_test_statistics
from runners.trtexec import TrtexecParseError, parse_export_times, parse_trtexec_log
from tests.conftest import make_runner

DATA = Path(__file__).parent / "data"
T = TypeVar("T")

# Reproducible in CI: the same examples every run, no database of past failures.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No shrinking: a failing input is shown as generated, at once (shrinking a
    # mutated log can take minutes, longer than the whole file's budget in CI).
    phases=(Phase.explicit, Phase.generate),
)


def fuzz(examples: int, **more: Any) -> settings:
    """FUZZ with this many examples (sized so that this file runs in well under a
    minute on a two-core CI machine)."""
    return settings(FUZZ, max_examples=examples, **more)


# How long one call may take before it counts as a hang. Generous for a loaded CI
# machine: every reader here answers a few KiB in milliseconds.
HANG_S = 10.0


# --------------------------------------------------------------------------- the tally


@dataclass
class Tally:
    """What the fuzz tests tried, by family, and what went wrong."""

    tried: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # the documented error
    tracebacks: Counter[str] = field(default_factory=Counter)  # any other exception
    lost: Counter[str] = field(default_factory=Counter)  # a result without its figures
    hangs: Counter[str] = field(default_factory=Counter)
    # Well-formed agent replies of kind runtime_error to a malformed request: the agent
    # raised inside (an unhashable runtime did, before it was fixed); counted.
    agent_runtime_errors: int = 0


TALLY = Tally()


class Hung(Exception):
    """A call ran past HANG_S."""


@contextmanager
def time_limit(seconds: float = HANG_S) -> Iterator[None]:
    """Raise Hung in the test's (main) thread once ``seconds`` have passed: a reader
    stuck in a loop fails the test instead of stalling CI."""

    def on_alarm(signum: int, frame: object) -> None:
        raise Hung(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(
    family: str, call: Callable[[], T], documented: tuple[type[BaseException], ...]
) -> T | None:
    """``call()`` under the time limit; None when it raised a ``documented`` error.
    Any other exception is tallied as a traceback (or a hang) and fails the test."""
    TALLY.tried[family] += 1
    try:
        with time_limit():
            return call()
    except documented:
        TALLY.refused[family] += 1
        return None
    except Hung:
        TALLY.hangs[family] += 1
        raise
    except Exception:
        TALLY.tracebacks[family] += 1
        raise


def promise(family: str, kept: bool, what: str) -> None:
    """A result came back: it must carry what its reader promises."""
    if not kept:
        TALLY.lost[family] += 1
    assert kept, f"{family}: {what}"


# --------------------------------------------------------------------------- mutations

# Values that break naive readers: not-numbers, huge and negative numbers, digits int()
# refuses, NUL and other control characters, separators the formats use.
ODD_TOKENS = [
    "",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "-1",
    "-0.5",
    "0",
    "1e999",
    "1e-999",
    "9" * 25,
    "9" * 5000,
    "1.2.3",
    "²",
    "٣",
    "\x00",
    "\ufffd",
    "\u202e",
    "\r",
    "\n",
    "\t",
    "=",
    ",",
    ":",
    "%",
    "[",
    "]",
    "(",
    ")",
    "/",
    "'",
    '"',
    "ms",
    "us",
    "MB",
    "count=",
    "@",
    "x" * 300,
]
odd_payload = st.one_of(
    st.sampled_from(ODD_TOKENS),
    st.text(max_size=12),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
MUTATIONS = (
    "truncate",
    "drop_line",
    "drop_field",
    "number",
    "insert",
    "dup_line",
    "swap_lines",
    "replace_line",
)
mutation = st.tuples(
    st.sampled_from(MUTATIONS),
    st.floats(0, 1, exclude_max=True),
    st.floats(0, 1, exclude_max=True),
    odd_payload,
)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FIELD_SEPARATORS = re.compile(r"(, | +|;|=)")


def _pick(items: list[T], where: float) -> int:
    return min(int(where * len(items)), len(items) - 1)


def mutate(text: str, ops: list[tuple[str, float, float, str]]) -> str:
    """``text`` with each op applied: a cut, a line dropped/duplicated/swapped/replaced,
    one field of a line dropped, one number replaced, a payload inserted."""
    for kind, where, other, payload in ops:
        lines = text.splitlines(keepends=True)
        if kind == "truncate":
            text = text[: int(where * len(text))]
        elif kind == "insert":
            at = int(where * len(text))
            text = text[:at] + payload + text[at:]
        elif kind == "number":
            numbers = list(_NUMBER.finditer(text))
            if numbers:
                m = numbers[_pick(numbers, where)]
                text = text[: m.start()] + payload + text[m.end() :]
        elif lines:
            i, j = _pick(lines, where), _pick(lines, other)
            if kind == "drop_line":
                del lines[i]
            elif kind == "dup_line":
                lines.insert(i, lines[i])
            elif kind == "swap_lines":
                lines[i], lines[j] = lines[j], lines[i]
            elif kind == "replace_line":
                lines[i] = payload + "\n"
            elif kind == "drop_field":
                parts = _FIELD_SEPARATORS.split(lines[i])
                fields = list(range(0, len(parts), 2))
                k = fields[_pick(fields, other)]
                del parts[k : k + 2]
                lines[i] = "".join(parts)
            text = "".join(lines)
    return text


def recorded(folder: str, *patterns: str) -> list[str]:
    paths = sorted(p for pattern in patterns for p in (DATA / folder).glob(pattern))
    assert paths, f"no recorded outputs in tests/data/{folder}"
    return [p.read_text(errors="replace") for p in paths]


def fuzzed(texts: list[str], *, max_ops: int = 4) -> st.SearchStrategy[str]:
    """Recorded outputs, mutated (mildly: a field or number changed, a line dropped;
    or heavily: cut short, several changes) and now and then text nothing like them."""
    mild = st.builds(
        mutate,
        st.sampled_from(texts),
        st.lists(mutation.filter(lambda m: m[0] != "truncate"), min_size=1, max_size=2),
    )
    heavy = st.builds(
        mutate, st.sampled_from(texts), st.lists(mutation, min_size=1, max_size=max_ops)
    )
    return st.one_of(mild, heavy, st.text(max_size=400))


def _time(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


# --------------------------------------------------------------------------- vendor logs

BENCHMARK_MODEL_LOGS = recorded("benchmark_model", "*.txt")
TRTEXEC_LOGS = recorded("trtexec", "*.log")
TRTEXEC_TIMES = recorded("trtexec", "*.json")
TRTEXEC_WITH_TIMES = ("trt10.3.0_orin_nano_load_engine.log", "trt7.1.3_jetson_nano_legacy.log")
ORT_LOGS = recorded("ort_perf_test", "*.txt")


def _benchmark_model_promise(text: str) -> None:
    result = attempt(
        "benchmark_model parser", lambda: parse_benchmark_model(text), (BenchmarkModelParseError,)
    )
    if result is None:
        return
    stats = benchmark_model_statistics(result)
    promise(
        "benchmark_model parser",
        _time(stats.mean_s) or _time(stats.median_s),
        f"parsed without a latency: {stats}",
    )
    if result.timed is not None:
        promise("benchmark_model parser", result.timed.count > 0, "a timed phase of no runs")


@fuzz(400)
@given(fuzzed(BENCHMARK_MODEL_LOGS))
# Regressions: a timed "count=" line cut right after the count gave a result without
# any latency; a summary of nan, too; "Num threads: [²]" and a 5000-digit count raised
# plain ValueErrors; a negative mean became a latency.
@example(
    "Running benchmark for at least 1 iterations\ncount=5 first=1 curr=1 min=1 max=1 avg=1 std=0\n"
    "Running benchmark for at least 50 iterations\ncount=50 \n"
)
@example(
    "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): nan"
)
@example("Num threads: [²]\ncount=5 curr=3\n")
@example("count=" + "9" * 5000 + " curr=3\n")
@example("count=5 first=1 curr=1 min=1 max=1 avg=-5 std=0\n")
def test_benchmark_model_parser(text: str) -> None:
    _benchmark_model_promise(text)


def _ort_promise(text: str) -> None:
    result = attempt(
        "ort_perf_test parser", lambda: parse_ort_perf_test(text), (OrtPerfTestParseError,)
    )
    if result is None:
        return
    stats = ort_perf_test_statistics(result)
    promise("ort_perf_test parser", _time(stats.mean_s), f"mean is no latency: {stats.mean_s}")
    promise("ort_perf_test parser", (stats.count or 0) > 0, "no timed request")
    for value in (*stats.percentiles_s.values(), stats.throughput_per_s, stats.min_s):
        promise("ort_perf_test parser", value is None or _time(value), f"figure {value!r}")


@fuzz(400)
@given(fuzzed(ORT_LOGS))
# Regressions: a mean of 1e999 ms (inf) or -1 ms was a latency; a 5000-digit request
# count raised a plain ValueError.
@example("Total inference requests: 5\nAverage inference time cost: 1e999 ms\n")
@example("Total inference requests: 5\nAverage inference time cost: -1 ms\n")
@example("Total inference requests: " + "9" * 5000 + "\nAverage inference time cost: 1 ms\n")
def test_ort_perf_test_parser(text: str) -> None:
    _ort_promise(text)


def _trtexec_promise(text: str) -> None:
    result = attempt("trtexec log parser", lambda: parse_trtexec_log(text), (TrtexecParseError,))
    if result is None:
        return
    for name in ("latency", "end_to_end", "gpu_compute_time", "enqueue_time"):
        stats = getattr(result, name)
        if stats is not None:
            promise(
                "trtexec log parser",
                all(_time(v) for v in (stats.min_s, stats.max_s, stats.median_s)),
                f"{name} holds no times: {stats}",
            )
    throughput = result.throughput_qps
    promise("trtexec log parser", throughput is None or _time(throughput), f"{throughput!r} qps")


_SUMMARY = "[04/14/2023-01:36:52] [I] === Performance summary ===\n"


@fuzz(300)
@given(fuzzed(TRTEXEC_LOGS))
# Regressions: an unbalanced quote on the RUNNING line (shlex), a 5000-digit version,
# "Throughput: nan qps" and a negative Latency.
@example(
    "&&&& RUNNING TensorRT.trtexec [TensorRT v8602] # trtexec --onnx='m.onnx\n"
    + _SUMMARY
    + "[04/14/2023-01:36:52] [I] Throughput: 100 qps\n"
)
@example("&&&& RUNNING TensorRT.trtexec [TensorRT v" + "8" * 5000 + "] # trtexec\n")
@example(_SUMMARY + "[04/14/2023-01:36:52] [I] Throughput: nan qps\n")
@example(
    _SUMMARY + "[04/14/2023-01:36:52] [I] Latency: min = -1 ms, max = 2 ms, mean = 1.5 ms, "
    "median = 1.4 ms\n"
)
def test_trtexec_log_parser(text: str) -> None:
    _trtexec_promise(text)


@fuzz(250)
@given(
    st.one_of(
        fuzzed(TRTEXEC_TIMES, max_ops=3),
        st.integers(1, 20_000).map(lambda n: "[" * n),
        st.lists(
            st.dictionaries(
                st.sampled_from(["latencyMs", "computeMs", "inMs", "count", "x"]),
                st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none()),
                max_size=4,
            ),
            max_size=5,
        ).map(json.dumps),
    )
)
# Regressions: NaN and -Infinity samples were returned as latencies; "[[[[..." raised a
# RecursionError.
@example('[{"latencyMs": NaN}, {"latencyMs": -Infinity}]')
@example("[" * 100_000)
def test_trtexec_export_times_parser(text: str) -> None:
    samples = attempt(
        "trtexec times parser", lambda: parse_export_times(text), (TrtexecParseError,)
    )
    if samples is not None:
        promise("trtexec times parser", all(_time(s) for s in samples), f"samples {samples[:5]}")


# --------------------------------------------------------------------------- edgebench import


@pytest.fixture(scope="module")
def import_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    folder = tmp_path_factory.mktemp("fuzz-import")
    store = Store(f"sqlite:///{folder / 'results.db'}")
    yield store, folder
    store.engine.dispose()


LATENCY_METRICS = ("latency_p50", "latency_mean")


def _lost_jobs(store: Store, run_id: str) -> list[str]:
    """Jobs of ``run_id`` that are done but have no finite latency."""
    lost = []
    for job in store.jobs_for_run(run_id):
        metrics = store.job_metrics(job["id"])
        has_latency = any(
            name in metrics and _time(metrics[name].value) for name in LATENCY_METRICS
        )
        if job["status"] == "done" and not has_latency:
            lost.append(f"{job['key']}: {sorted(metrics)}")
    return lost


def _import(store: Store, folder: Path, tool: str, texts: list[tuple[str, str]]) -> None:
    family = f"import {tool} (in process)"
    files = []
    for name, text in texts:
        path = folder / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        files.append(path)
    run_id = attempt(family, lambda: import_logs(store, tool, files, "fuzz"), (UsageError,))
    if run_id is not None:
        lost = _lost_jobs(store, run_id)
        promise(family, not lost, f"done jobs without a latency: {lost}")


@fuzz(60, suppress_health_check=list(HealthCheck))
@given(
    tool_and_text=st.one_of(
        st.tuples(st.just("benchmark_model"), fuzzed(BENCHMARK_MODEL_LOGS)),
        st.tuples(st.just("ort-perf-test"), fuzzed(ORT_LOGS)),
        st.tuples(st.just("trtexec"), fuzzed(TRTEXEC_LOGS)),
    )
)
# Regression: a trtexec excerpt with only the Throughput line (or a Latency line cut
# off mid-value) was stored as a "done" job without any latency.
@example(tool_and_text=("trtexec", _SUMMARY + "[04/14/2023-01:36:52] [I] Throughput: 100 qps\n"))
@example(
    tool_and_text=(
        "trtexec",
        (DATA / "trtexec" / "trt10.3.0_orin_nano_truncated_summary.log").read_text(),
    )
)
def test_import_never_stores_a_done_job_without_a_latency(
    import_store: tuple[Store, Path], tool_and_text: tuple[str, str]
) -> None:
    store, folder = import_store
    tool, text = tool_and_text
    _import(store, folder, tool, [("fuzzed.log", text)])


@fuzz(25, suppress_health_check=list(HealthCheck))
@given(
    log=st.sampled_from([(DATA / "trtexec" / name).read_text() for name in TRTEXEC_WITH_TIMES]),
    times=st.one_of(st.sampled_from(TRTEXEC_TIMES), fuzzed(TRTEXEC_TIMES, max_ops=2)),
)
def test_import_trtexec_with_times(import_store: tuple[Store, Path], log: str, times: str) -> None:
    store, folder = import_store
    _import(store, folder, "trtexec", [("fuzzed.log", log), ("fuzzed.json", times)])


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-import-cli")


@fuzz(4, suppress_health_check=list(HealthCheck))
@given(
    tool_and_text=st.one_of(
        st.tuples(st.just("benchmark_model"), fuzzed(BENCHMARK_MODEL_LOGS, max_ops=2)),
        st.tuples(st.just("ort-perf-test"), fuzzed(ORT_LOGS, max_ops=2)),
        st.tuples(st.just("trtexec"), fuzzed(TRTEXEC_LOGS, max_ops=2)),
    )
)
@example(tool_and_text=("trtexec", _SUMMARY + "[04/14/2023-01:36:52] [I] Throughput: 100 qps\n"))
def test_import_through_the_console_script(
    cli_folder: Path, tool_and_text: tuple[str, str]
) -> None:
    """A sample through `edgebench import` itself: exit 0 with every job done and
    timed, or exit 2 with one line; never a traceback."""
    family = f"import {tool_and_text[0]} (console script)"
    TALLY.tried[family] += 1
    tool, text = tool_and_text
    workdir = Path(tempfile.mkdtemp(dir=cli_folder))
    log = workdir / "fuzzed.log"
    log.write_text(text, encoding="utf-8", errors="surrogatepass")
    run = make_runner(workdir / "home", workdir)
    proc = run("import", "--tool", tool, str(log), check=False, timeout=120)
    if "Traceback" in proc.stderr or proc.returncode not in (0, 2):
        TALLY.tracebacks[family] += 1
        raise AssertionError(f"exit {proc.returncode}:\n{proc.stderr}")
    if proc.returncode == 2:
        TALLY.refused[family] += 1
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("edgebench: error: "), proc.stderr
        return
    with sqlite3.connect(workdir / "results.db") as db:
        done = db.execute("SELECT id FROM jobs WHERE status = 'done'").fetchall()
        timed = db.execute(
            "SELECT DISTINCT job_id FROM metrics WHERE name IN (?, ?) AND value >= 0",
            LATENCY_METRICS,
        ).fetchall()
    promise(family, {j for (j,) in done} <= {j for (j,) in timed}, f"done {done}, timed {timed}")
    shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- power

TEGRASTATS_LINES = [
    line for text in recorded("power/tegrastats", "*.log") for line in text.splitlines() if line
]
PMIC_OUTPUTS = recorded("power/rpi", "pi*_pmic_read_adc*.txt")
THROTTLED = recorded("power/rpi", "get_throttled*.txt") + recorded("power/rpi", "measure_temp.txt")


def _finite_reading(family: str, reading: Any) -> None:
    promise(
        family,
        bool(reading.rail) and math.isfinite(reading.watts),
        f"reading {reading!r} is no power",
    )


@fuzz(300)
@given(fuzzed(TEGRASTATS_LINES, max_ops=3))
@example("RAM " + "1" * 5000 + "/2MB VDD_IN 1/1")  # was a plain ValueError
def test_tegrastats_line(line: str) -> None:
    source = tegrastats.TegrastatsSource()
    sample = attempt("tegrastats line", lambda: tegrastats.parse_line(line), (ParseError,))
    if sample is not None:
        promise("tegrastats line", sample.ram_total_mb >= 0, f"{sample}")
    reading = attempt("tegrastats reading", lambda: source.reading(line), (ParseError,))
    if reading is not None:
        _finite_reading("tegrastats reading", reading)
    # The lenient whole-log parser never raises: a bad line is skipped with its reason.
    parsed = attempt("tegrastats log", lambda: tegrastats.parse_log(line + "\n" + line), ())
    assert parsed is not None
    attempt("tegrastats telemetry", lambda: source.telemetry([line]), ())


@fuzz(300)
@given(fuzzed(PMIC_OUTPUTS, max_ops=3))
@example("A_A current(1)=1e999A\nA_V volt(2)=1V\n")  # an inf reading
@example("A_A current(1)=1e300A\nA_V volt(2)=1e300V\n")  # finite values, inf product
@example("A_A current(" + "1" * 5000 + ")=1A\n")  # was a plain ValueError
def test_pmic_read_adc(text: str) -> None:
    reading = attempt("pmic_read_adc", lambda: rpi.PmicSource().reading(text), (ParseError,))
    if reading is not None:
        _finite_reading("pmic_read_adc", reading)


@fuzz(200)
@given(fuzzed(THROTTLED, max_ops=2))
@example("throttled=" + "1" * 5000)  # was a plain ValueError
@example("temp=" + "9" * 400 + "'C")  # was inf degrees
def test_get_throttled_and_measure_temp(text: str) -> None:
    flags = attempt("get_throttled", lambda: rpi.parse_get_throttled(text), (ParseError,))
    if flags is not None:
        promise("get_throttled", flags.raw >= 0, f"{flags}")
    celsius = attempt("measure_temp", lambda: rpi.parse_measure_temp(text), (ParseError,))
    if celsius is not None:
        promise("measure_temp", math.isfinite(celsius), f"{celsius} degrees")


def _ina3221_readings() -> list[str]:
    """Each recorded tree as the agent's poll_files reading (``label|mV=..;label|mA=..``)."""
    texts = []
    for tree in sorted((DATA / "power" / "ina3221").iterdir()):
        parts = []
        for rail in ina3221.discover(tree):
            files = {"mV": rail.voltage_file, "mA": rail.current_file, "mW": rail.power_file}
            for unit, path in files.items():
                if path is not None and path.is_file():
                    parts.append(f"{rail.name}|{unit}={path.read_text().strip()}")
        if parts:
            texts.append(";".join(parts))
    assert texts
    return texts


INA3221_READINGS = _ina3221_readings()


@fuzz(300)
@given(fuzzed(INA3221_READINGS, max_ops=3))
@example("VDD_IN|mV=nan;VDD_IN|mA=1")  # was a NaN reading
@example("VDD_IN|mV=1e999;VDD_IN|mA=1")  # was an inf reading
@example("VDD_IN|mV=1e300;VDD_IN|mA=1e300")  # finite values, inf product
def test_ina3221_reading(text: str) -> None:
    source = ina3221.Ina3221Source()
    reading = attempt("ina3221 reading", lambda: source.reading(text), (ParseError,))
    if reading is not None:
        _finite_reading("ina3221 reading", reading)


@pytest.fixture(scope="module")
def ina3221_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ina3221") / "tree"
    shutil.copytree(DATA / "power" / "ina3221" / "jp6_orin_nano", root)
    return root


@fuzz(40, suppress_health_check=list(HealthCheck))
@given(contents=st.lists(odd_payload, min_size=1, max_size=3), which=st.integers(0, 100))
@example(contents=["9" * 300], which=0)  # 300 digits: mV x mA did not fit a float
def test_ina3221_sysfs_files(ina3221_tree: Path, contents: list[str], which: int) -> None:
    rails = ina3221.discover(ina3221_tree)
    files = [f for r in rails for f in (r.voltage_file, r.current_file)]
    originals = {f: f.read_bytes() for f in files}
    try:
        for i, text in enumerate(contents):
            files[(which + i) % len(files)].write_text(
                text, encoding="utf-8", errors="surrogatepass"
            )
        readings = attempt("ina3221 sysfs", lambda: ina3221.read(rails), (ParseError, OSError))
        if readings is not None:
            promise(
                "ina3221 sysfs",
                all(math.isfinite(v) for v in readings.values()),
                f"readings {readings}",
            )
    finally:
        for f, raw in originals.items():
            f.write_bytes(raw)


# --------------------------------------------------------------------------- the agent

AGENT_KINDS = {
    "bad_request",
    "unknown_op",
    "not_loaded",
    "missing_file",
    "hash_mismatch",
    "missing_runtime",
    "load_failed",
    "out_of_memory",
    "runtime_error",
}
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
ARRAY = {"dtype": "float32", "shape": [1, 2], "data_b64": base64.b64encode(b"\0" * 8).decode()}
# Each op's fields, given any JSON value or a plausible one: drawn as a few at a time
# (a dictionary of them), which keeps the generator quick.
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "path": st.sampled_from(["", "missing.onnx", ".", "/"]),
    "sha256": st.just("0" * 64),
    "runtime": st.sampled_from(["onnxruntime", "litert", "torch", "tensorrt", "tvm"]),
    "device": st.sampled_from(["cpu", "cuda", "tpu"]),
    "threads": st.integers(-2, 4),
    "inputs": st.just(ARRAY),
    "input_shapes": st.just([[1, None]]),
    "input_dtypes": st.just(["float32"]),
}
FIELD_NAMES = [
    *FIELD_VALUES,
    "providers",
    "xnnpack",
    "cpus",
    "warmup_runs",
    "min_runs",
    "target_rel_ci",
    "power",
    "labels",
    "reset",
    "return_outputs",
]
field_pair = st.sampled_from(FIELD_NAMES).flatmap(
    lambda name: st.tuples(
        st.just(name), st.one_of(FIELD_VALUES.get(name, json_scalar), json_value)
    )
)
request_fields = st.builds(
    lambda head, fields: {**fields, **head},
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.integers(0, 2**31), json_scalar),
            "op": st.one_of(
                st.sampled_from(["hello", "load", "bench", "eval", "nope", "", "__init__"]),
                json_scalar,
            ),
        }
    ),
    st.lists(field_pair, max_size=3).map(dict),
)
agent_line = st.one_of(
    request_fields.map(json.dumps),
    st.builds(
        mutate,
        request_fields.map(json.dumps),
        st.lists(mutation.filter(lambda m: m[0] in ("truncate", "insert")), max_size=2),
    ),
    json_value.map(json.dumps),
    st.text(max_size=80),
)


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    """One agent for all examples, run where no request can reach a real file."""
    here = os.getcwd()
    folder = tempfile.mkdtemp(prefix="fuzz-agent-")
    os.chdir(folder)
    try:
        yield Agent()
    finally:
        os.chdir(here)
        shutil.rmtree(folder, ignore_errors=True)


def _well_formed(line: str, reply: Any) -> None:
    family = "agent handle"
    promise(family, isinstance(reply, dict) and isinstance(reply.get("ok"), bool), f"{reply!r}")
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        request = None
    expected_id = request.get("id") if isinstance(request, dict) else None
    # Compared as JSON: NaN, which JSON lines may carry, is not equal to itself.
    promise(family, json.dumps(reply["id"]) == json.dumps(expected_id), "id not echoed")
    if reply["ok"]:
        promise(family, set(reply) == {"id", "ok", "result"}, f"{sorted(reply)}")
        promise(family, isinstance(reply["result"], dict), "result is no object")
    else:
        error = reply.get("error")
        promise(family, set(reply) == {"id", "ok", "error"}, f"{sorted(reply)}")
        promise(
            family,
            isinstance(error, dict)
            and error.get("kind") in AGENT_KINDS
            and isinstance(error.get("message"), str),
            f"error {error!r}",
        )
        if error["kind"] == "runtime_error":
            # Well formed, but an exception inside the agent (its log has a traceback)
            # for what is a malformed request.
            TALLY.agent_runtime_errors += 1
    json.dumps(reply)  # what main() writes; an unencodable reply would be lost


@fuzz(300)
@given(agent_line)
@example('{"id": 1, "op": "load", "path": "x", "sha256": "y", "runtime": []}')
@example('{"id": NaN, "op": "x"}')
@example('{"id": "\\ud800", "op": "\\ud800"}')
def test_agent_handle_always_answers_one_well_formed_reply(agent: Agent, line: str) -> None:
    reply = attempt("agent handle", lambda: agent.handle(line), ())
    _well_formed(line, reply)


def test_agent_answers_deeply_nested_json_with_bad_request(agent: Agent) -> None:
    reply = agent.handle("[" * 100_000)
    assert reply["ok"] is False and reply["error"]["kind"] == "bad_request"


@pytest.mark.parametrize("runtime", [[], {}], ids=["list", "object"])
def test_agent_answers_an_unhashable_runtime_with_bad_request(agent: Agent, runtime: Any) -> None:
    request = {"id": 1, "op": "load", "path": "x", "sha256": "y", "runtime": runtime}
    reply = agent.handle(json.dumps(request))
    assert reply["error"]["kind"] == "bad_request", reply


class ScriptedAgent:
    """The host's end of an agent process: each line written is answered with the next
    scripted line (None: the agent exited); ``{id}`` in a line becomes the request's id."""

    def __init__(self, replies: list[str | None]) -> None:
        self.replies = list(replies)
        self.pending: list[str | None] = []
        self.terminated = False

    def write_line(self, line: str) -> None:
        rid = json.loads(line)["id"]
        if self.replies:
            reply = self.replies.pop(0)
            self.pending.append(reply if reply is None else reply.replace("{id}", str(rid)))

    def read_line(self, timeout: float) -> str | None:
        if not self.pending:
            raise TransportTimeout(f"no reply within {timeout:g} s")
        return self.pending.pop(0)

    def wait(self, timeout: float) -> int | None:
        return 0

    def stderr_tail(self) -> str:
        return ""

    def terminate(self) -> None:
        self.terminated = True


def _client(replies: list[str | None]) -> AgentClient:
    transport: Any = SimpleNamespace(device=SimpleNamespace(name="fuzz"))
    return AgentClient(transport, ScriptedAgent(replies), timeout=0.5)  # type: ignore[arg-type]


def _reply_outcome(line: str | None) -> str:
    """What PROTOCOL.md makes of one reply line to request id 1: "ok", "agent" (a
    structured error) or "transport" (a broken agent)."""
    if line is None:
        return "transport"
    try:
        reply = json.loads(line)
    except (ValueError, RecursionError):
        return "transport"
    if not isinstance(reply, dict) or type(reply.get("id")) is not int or reply["id"] != 1:
        return "transport"
    if reply.get("ok") is True:
        return "ok" if isinstance(reply.get("result"), dict) else "transport"
    return "agent" if isinstance(reply.get("error"), dict) else "transport"


reply_object = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.just(1), st.just(True), st.just(1.0), st.just(2), json_value),
        "ok": st.one_of(st.booleans(), json_value),
        "result": st.one_of(st.dictionaries(st.text(max_size=5), json_value), json_value),
        "error": st.one_of(
            st.fixed_dictionaries({"kind": json_value, "message": json_value}), json_value
        ),
    },
)
# Replies as an agent sends them, to be mutated: a success and a structured error.
proper_reply = st.one_of(
    st.fixed_dictionaries(
        {
            "id": st.just(1),
            "ok": st.just(True),
            "result": st.dictionaries(st.text(max_size=5), json_value, max_size=4),
        }
    ),
    st.fixed_dictionaries(
        {
            "id": st.just(1),
            "ok": st.just(False),
            "error": st.fixed_dictionaries(
                {"kind": st.sampled_from(sorted(AGENT_KINDS)), "message": st.text(max_size=20)}
            ),
        }
    ),
)
reply_line = st.one_of(
    proper_reply.map(json.dumps),
    st.builds(
        mutate,
        proper_reply.map(json.dumps),
        st.lists(mutation.filter(lambda m: m[0] in ("truncate", "insert")), min_size=1, max_size=2),
    ),
    reply_object.map(json.dumps),
    st.builds(
        mutate,
        reply_object.map(json.dumps),
        st.lists(mutation.filter(lambda m: m[0] in ("truncate", "insert")), min_size=1, max_size=2),
    ),
    st.text(max_size=80),
    st.integers(1, 20_000).map(lambda n: "[" * n),
    st.none(),
)


@fuzz(250)
@given(reply_line)
@example('{"id": 1, "ok": true}')  # was taken as an empty result
@example('{"id": 1, "ok": true, "result": [1]}')
@example('{"id": true, "ok": true, "result": {}}')  # JSON true passed for id 1
@example("[" * 100_000)  # RecursionError out of json.loads
def test_agent_client_reply_parsing(line: str | None) -> None:
    client = _client([line])
    outcome = _reply_outcome(line)
    result = attempt(
        "agent client reply", lambda: client.request("hello"), (AgentError, TransportError)
    )
    if outcome == "ok":
        promise("agent client reply", result == json.loads(line or "{}")["result"], "result")
    else:
        promise("agent client reply", result is None, f"{line!r} taken as {result!r}")


def _array_object(rng: np.random.Generator, kind: str) -> Any:
    good = encode_array(rng.standard_normal((1, 3)).astype("float32"))
    broken = {
        "good": good,
        "no_dtype": {k: v for k, v in good.items() if k != "dtype"},
        "no_data": {k: v for k, v in good.items() if k != "data_b64"},
        "bad_dtype": {**good, "dtype": "float33"},
        "object_dtype": {**good, "dtype": "object"},
        "void_dtype": {**good, "dtype": "V0"},
        "bad_base64": {**good, "data_b64": "***"},
        "short_data": {**good, "data_b64": good["data_b64"][:4]},
        "wrong_shape": {**good, "shape": [2, 3]},
        "bool_shape": {**good, "shape": [True, 3]},
        "negative_shape": {**good, "shape": [-1, 3]},
        "shape_not_list": {**good, "shape": "1x3"},
        "other_width": encode_array(rng.standard_normal((1, 5)).astype("float32")),
        "not_object": [1, 2, 3],
        "missing": None,
    }
    return broken[kind]


ARRAY_KINDS = [
    "good",
    "no_dtype",
    "no_data",
    "bad_dtype",
    "object_dtype",
    "void_dtype",
    "bad_base64",
    "short_data",
    "wrong_shape",
    "bool_shape",
    "negative_shape",
    "shape_not_list",
    "other_width",
    "not_object",
    "missing",
]


@fuzz(150)
@given(kinds=st.lists(st.sampled_from(ARRAY_KINDS), min_size=1, max_size=3))
@example(kinds=["good", "other_width"])  # np.concatenate raised a plain ValueError
@example(kinds=["bad_dtype"])  # np.dtype raised TypeError
@example(kinds=["missing"])  # KeyError
def test_agent_client_eval_outputs(kinds: list[str]) -> None:
    rng = np.random.default_rng(0)
    replies = []
    for kind in kinds:
        result: dict[str, Any] = {"count": 1, "correct": 0, "top1": None, "outputs_sha256": ""}
        array = _array_object(rng, kind)
        if kind != "missing":
            result["outputs"] = array
        replies.append(
            json.dumps({"id": 0, "ok": True, "result": result}).replace('"id": 0', '"id": {id}')
        )
    client = _client(replies)
    inputs = np.zeros((len(kinds), 3), dtype="float32")
    out = attempt(
        "agent client eval",
        lambda: client.evaluate(inputs, batch_size=1, return_outputs=True),
        (AgentError, TransportError),
    )
    # Readable: every batch a proper array, all of one shape.
    readable = set(kinds) in ({"good"}, {"other_width"})
    if out is not None:
        promise("agent client eval", isinstance(out["outputs"], np.ndarray), f"{out!r}")
        promise("agent client eval", readable, f"{kinds} taken as outputs")
    else:
        promise("agent client eval", not readable, f"{kinds} refused")


# --------------------------------------------------------------------------- MCU frames

REQUESTS = [HELLO, INPUT, INFER, OUTPUT, LAYERS, STACK]


class LineClock:
    """Simulated time for the fake lines below: a read that finds nothing moves the
    clock on by its whole timeout, one that finds bytes takes no time. The clients'
    deadlines then pass at once when nothing more will come, and a reply in 1-byte
    chunks is never late, however slow the machine running the test is."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def idle(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def simulated_time(clock: LineClock) -> Iterator[None]:
    """The MCU clients' ``time`` module replaced by ``clock`` for the duration."""
    modules = (mcu_protocol, mcu_eembc)
    saved = [m.time for m in modules]
    for m in modules:
        m.time = SimpleNamespace(monotonic=clock.monotonic)  # type: ignore[assignment]
    try:
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            m.time = original  # type: ignore[assignment]


def frame(seq: int, kind: int, payload: bytes) -> bytes:
    body = struct.pack("<HBB", len(payload), seq & 0xFF, kind) + payload
    return SYNC + body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class Segment:
    """A piece of what the line delivers after a request: noise, or a frame (with
    this request's seq or another) possibly damaged on the way."""

    kind: str  # "noise" or "frame"
    data: bytes = b""
    same_seq: bool = True
    reply_type: int = 0
    damage: str = "none"  # none, crc, truncate, flip, huge_length, short_length
    where: float = 0.0

    def render(self, seq: int) -> bytes:
        if self.kind == "noise":
            return self.data
        raw = bytearray(frame(seq if self.same_seq else seq + 1, self.reply_type, self.data))
        at = 6 + int(self.where * max(len(self.data), 1))
        if self.damage == "crc":
            raw[-1] ^= 0xFF
        elif self.damage == "truncate":
            raw = raw[: int(self.where * len(raw))]
        elif self.damage == "flip":
            raw[min(at, len(raw) - 1)] ^= 0x01
        elif self.damage == "huge_length":
            raw[2:4] = struct.pack("<H", MAX_PAYLOAD + 1 + int(self.where * 60000))
        elif self.damage == "short_length" and self.data:
            raw[2:4] = struct.pack("<H", len(self.data) - 1)
        return bytes(raw)

    @property
    def intact_reply(self) -> bool:
        """A frame the client must take as the reply (undamaged, this request's seq).
        Every damage breaks the CRC check (a flipped bit anywhere in it, too), except a
        shortened length of an empty payload, which is not applied."""
        damaged = self.damage != "none" and not (self.damage == "short_length" and not self.data)
        return self.kind == "frame" and self.same_seq and not damaged


segment = st.one_of(
    st.builds(
        Segment,
        kind=st.just("noise"),
        data=st.one_of(
            st.binary(max_size=64), st.just(SYNC), st.just(SYNC + b"\xff\xff"), st.just(b"\xa5")
        ),
    ),
    st.builds(
        Segment,
        kind=st.just("frame"),
        data=st.one_of(st.binary(max_size=48), st.binary(min_size=1000, max_size=MAX_PAYLOAD)),
        same_seq=st.booleans(),
        reply_type=st.sampled_from([t | REPLY for t in REQUESTS] + [ERROR, 0x00, 0x42]),
        damage=st.sampled_from(
            ["none", "none", "crc", "truncate", "flip", "huge_length", "short_length"]
        ),
        where=st.floats(0, 1, exclude_max=True),
    ),
)


class ScriptedLine(ByteStream):
    """A serial line that answers the first frame written with ``script(seq)``, handed
    out in chunks of the given sizes; later writes (the client's retries) get nothing."""

    def __init__(self, script: Callable[[int], bytes], chunks: list[int], clock: LineClock) -> None:
        self.script = script
        self.chunks = chunks or [4096]
        self.clock = clock
        self.pending = b""
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.writes == 1:
            self.pending += self.script(data[4])  # byte 4 of a frame is its seq

    def read(self, size: int, timeout: float) -> bytes:
        if not self.pending:
            self.clock.idle(timeout)
            return b""
        n = min(size, self.chunks[self.writes % len(self.chunks)])
        got, self.pending = self.pending[:n], self.pending[n:]
        return got

    def discard_input(self) -> None:
        self.pending = b""

    def close(self) -> None:
        pass


@fuzz(300)
@given(
    request=st.sampled_from(REQUESTS),
    segments=st.lists(segment, max_size=6),
    reply=st.one_of(st.none(), st.binary(max_size=MAX_PAYLOAD)),
    at=st.floats(0, 1),
    chunks=st.lists(st.integers(1, 700), max_size=4),
)
def test_frame_decoder_finds_the_reply_or_times_out(
    request: int,
    segments: list[Segment],
    reply: bytes | None,
    at: float,
    chunks: list[int],
) -> None:
    if reply is not None:  # the right reply, somewhere among the noise and damage
        segments = list(segments)
        segments.insert(int(at * len(segments)), Segment("frame", reply, True, request | REPLY))

    def script(seq: int) -> bytes:
        return b"".join(s.render(seq) for s in segments)

    clock = LineClock()
    client = FramedClient(ScriptedLine(script, chunks, clock), timeout=1.0, retries=1)
    first = next((s for s in segments if s.intact_reply), None)
    start = time.monotonic()
    with simulated_time(clock):
        body = attempt(
            "MCU frame decoder", lambda: client.request(request), (ProtocolError, TransportTimeout)
        )
    promise("MCU frame decoder", time.monotonic() - start < 2.0, "took too long")
    if first is None:
        promise("MCU frame decoder", body is None, f"a reply out of damaged frames: {body!r}")
    elif first.reply_type == request | REPLY:
        promise("MCU frame decoder", body == first.data, "not the intact reply's payload")
    else:  # an error reply or a reply of another type: ProtocolError
        promise("MCU frame decoder", body is None, "a reply of the wrong type was taken")


GOOD_HELLO = (
    "protocol=1\nengine=edgebench\nengine_version=1\nboard=mps2-an386\nclock_hz=25000000\n"
    "counter=cycles\ncounter_hz=25000000\nmodel=m\nmodel_sha256=" + "0" * 64 + "\n"
    "arena_bytes=4096\nweights_bytes=100\nmacs=1000\nops=3\ninputs=1\noutputs=1\n"
    "input0=64,int8,0.5,-128,1x8x8x1\noutput0=10,int8,0.1,0,1x10\nstack_bytes=2048\n"
    "flash_used=50000\nram_used=9000\n"
)


class RepliesEveryRequest(ByteStream):
    """Firmware that answers every request with an intact frame of its seq: type and
    payload from ``answer(kind, payload)``."""

    def __init__(self, answer: Callable[[int, bytes], tuple[int, bytes]], clock: LineClock) -> None:
        self.answer = answer
        self.clock = clock
        self.pending = b""

    def write(self, data: bytes) -> None:
        kind, payload = data[5], data[6:-4]
        reply_type, body = self.answer(kind, payload)
        self.pending += frame(data[4], reply_type, body[:MAX_PAYLOAD])

    def read(self, size: int, timeout: float) -> bytes:
        if not self.pending:
            self.clock.idle(timeout)
        got, self.pending = self.pending[:size], self.pending[size:]
        return got

    def discard_input(self) -> None:
        self.pending = b""

    def close(self) -> None:
        pass


def well_shaped(kind: int, payload: bytes, hello: str) -> bytes:
    """The reply payload the firmware gives to request ``kind`` with ``payload``."""
    if kind == HELLO:
        return hello.encode("utf-8", "surrogatepass")
    if kind in (INFER, LAYERS):
        n = struct.unpack_from("<H", payload, 0 if kind == INFER else 2)[0]
        return struct.pack("<H", n) + struct.pack(f"<{n}Q", *range(n))
    if kind == OUTPUT:
        return b"\x07" * struct.unpack_from("<H", payload, 5)[0]
    if kind == STACK:
        return struct.pack("<II", 4096, 1024)
    return b""


# How a reply's payload is damaged: bytes cut off or added, the count off by one.
body_damage = st.sampled_from(["none", "none", "cut", "extra", "count", "random"])


@fuzz(300)
@given(
    op=st.sampled_from(["hello", "infer", "output", "layers", "stack", "input"]),
    size=st.integers(1, 130),
    reply_type=st.sampled_from(["right", "right", "right", "error", "other"]),
    damage=body_damage,
    hello=st.one_of(
        st.just(GOOD_HELLO), st.builds(mutate, st.just(GOOD_HELLO), st.lists(mutation, max_size=3))
    ),
    noise=st.binary(max_size=40),
)
@example(op="layers", size=1, reply_type="right", damage="random", hello="", noise=b"")
@example(op="hello", size=1, reply_type="right", damage="none", hello=GOOD_HELLO, noise=b"")
def test_framed_client_requests(
    op: str, size: int, reply_type: str, damage: str, hello: str, noise: bytes
) -> None:
    """Every request method on replies that are right, damaged or random: the right
    figures or ProtocolError. (Regression: a LAYERS reply of under 2 bytes raised
    struct.error.)"""

    def answer(kind: int, payload: bytes) -> tuple[int, bytes]:
        body = well_shaped(kind, payload, hello)
        if damage == "cut":
            body = body[: len(body) // 2]
        elif damage == "extra":
            body += noise or b"\0"
        elif damage == "count" and len(body) >= 2:
            body = struct.pack("<H", (struct.unpack_from("<H", body)[0] + 1) & 0xFFFF) + body[2:]
        elif damage == "random":
            body = noise
        return {"right": kind | REPLY, "error": ERROR, "other": 0x42}[reply_type], body

    clock = LineClock()
    client = FramedClient(RepliesEveryRequest(answer, clock), timeout=1.0, retries=0)
    calls: dict[str, Callable[[], Any]] = {
        "hello": client.hello,
        "infer": lambda: client.infer(size),
        "output": lambda: client.read_output(0, size),
        "layers": lambda: client.layers(size),
        "stack": client.stack,
        "input": lambda: client.write_input(0, b"\0" * size),
    }
    with simulated_time(clock):
        got = attempt(f"MCU {op}", calls[op], (ProtocolError, TransportTimeout))
    if got is None:
        return
    family = f"MCU {op}"
    if op == "hello":
        promise(family, isinstance(got, Hello) and got.protocol == 1 and got.engine is not None, "")
    elif op == "infer" or op == "layers":
        promise(family, len(got) == size and all(isinstance(c, int) for c in got), f"{got!r}")
    elif op == "output":
        promise(family, isinstance(got, bytes) and len(got) == size, f"{got!r}")
    elif op == "stack":
        promise(family, len(got) == 2, f"{got!r}")


EEMBC_LINES = [
    "m-ready",
    "m-name-dut-[edgebench]",
    "m-profile-[ulp-mlperf]",
    "m-model-[m]",
    "m-[Expecting 8 bytes]",
    "m-load-done",
    "m-warmup-start-1",
    "m-warmup-done",
    "m-infer-start-2",
    "m-lap-us-1000",
    "m-lap-us-5000",
    "m-infer-done",
    "m-results-[0.100,0.900]",
    "e-[bad command]",
    "noise",
]
eembc_line = st.one_of(
    st.sampled_from(EEMBC_LINES),
    st.sampled_from(["m-lap-us-", "m-results-", "m-name-", "m-profile-"]).flatmap(
        lambda prefix: odd_payload.map(lambda p: prefix + p)
    ),
    st.text(max_size=30),
)


class EembcDevice(ByteStream):
    """Answers every ``...%`` command with the scripted text."""

    def __init__(self, reply: bytes, clock: LineClock) -> None:
        self.reply = reply
        self.clock = clock
        self.pending = b""

    def write(self, data: bytes) -> None:
        if data.endswith(b"%"):
            self.pending += self.reply

    def read(self, size: int, timeout: float) -> bytes:
        if not self.pending:
            self.clock.idle(timeout)
            return b""
        got, self.pending = self.pending[:size], self.pending[size:]
        return got

    def discard_input(self) -> None:
        self.pending = b""

    def close(self) -> None:
        pass


EEMBC_REPLIES = {
    "name": ["m-name-dut-[edgebench]"],
    "profile": ["m-profile-[ulp-mlperf]", "m-model-[m]"],
    "infer": [
        "m-warmup-start-1",
        "m-warmup-done",
        "m-infer-start-2",
        "m-lap-us-1000",
        "m-lap-us-5000",
        "m-infer-done",
        "m-results-[0.100,0.900]",
    ],
    "results": ["m-results-[0.100,0.900]"],
    "load": ["m-[Expecting 8 bytes]", "m-load-done"],
}
line_edit = st.tuples(
    st.sampled_from(["drop", "repeat", "replace", "insert"]), st.floats(0, 1), eembc_line
)


def edit_lines(lines: list[str], edits: list[tuple[str, float, str]]) -> list[str]:
    lines = list(lines)
    for kind, where, other in edits:
        i = min(int(where * len(lines)), max(len(lines) - 1, 0))
        if kind == "insert" or not lines:
            lines.insert(i, other)
        elif kind == "drop":
            del lines[i]
        elif kind == "repeat":
            lines.insert(i, lines[i])
        else:
            lines[i] = other
    return lines


@fuzz(300)
@given(
    op=st.sampled_from(list(EEMBC_REPLIES)),
    edits=st.one_of(st.just([]), st.lists(line_edit, max_size=4)),
    ready=st.sampled_from([True, True, True, False]),
    newline=st.sampled_from(["\r\n", "\r\n", "\n", "\r"]),
)
@example(op="infer", edits=[("replace", 0.4, "m-lap-us-abc")], ready=True, newline="\r\n")
def test_eembc_client(
    op: str, edits: list[tuple[str, float, str]], ready: bool, newline: str
) -> None:
    """Each command on its right reply, edited: the figures, or ProtocolError /
    TransportTimeout. (Regression: ``m-lap-us-abc`` raised a plain ValueError.)"""
    lines = edit_lines(EEMBC_REPLIES[op], edits)
    text = newline.join(lines + (["m-ready"] if ready else [])) + newline
    clock = LineClock()
    device = EembcDevice(text.encode("utf-8", "surrogatepass"), clock)
    with simulated_time(clock):
        client = EembcClient(device, timeout=1.0)
    calls: dict[str, Callable[[], Any]] = {
        "name": client.name,
        "profile": client.profile,
        "infer": lambda: client.infer(2, 1),
        "results": client.results,
        "load": lambda: client.load(b"\1" * 8),
    }
    family = f"EEMBC {op}"
    with simulated_time(clock):
        got = attempt(family, calls[op], (ProtocolError, TransportTimeout))
    if got is None:
        return
    if op == "name":
        promise(family, isinstance(got, str), f"{got!r}")
    elif op == "profile":
        promise(family, isinstance(got, EembcProfile), f"{got!r}")
    elif op == "infer":
        promise(family, len(got) >= 2 and all(isinstance(t, int) for t in got), f"{got!r}")
        promise(family, all(isinstance(v, float) for v in client.last_results), "results")
    elif op == "results":
        promise(family, all(isinstance(v, float) for v in got), f"{got!r}")


# --------------------------------------------------------------------------- the tally


def test_zz_fuzz_tally() -> None:
    """Runs last in this file: what was tried, and that nothing crashed or was lost."""
    if not TALLY.tried:
        pytest.skip("no fuzz test ran in this session")
    width = max(len(name) for name in TALLY.tried)
    print("\nfuzz tally (tried / refused with the documented error / tracebacks / lost):")
    for name in sorted(TALLY.tried):
        print(
            f"  {name:<{width}}  {TALLY.tried[name]:6d} {TALLY.refused[name]:6d} "
            f"{TALLY.tracebacks[name]:3d} {TALLY.lost[name]:3d}"
        )
    print(
        f"  total tried {sum(TALLY.tried.values())}, tracebacks "
        f"{sum(TALLY.tracebacks.values())}, lost results {sum(TALLY.lost.values())}, "
        f"hangs {sum(TALLY.hangs.values())}; agent runtime_error replies to malformed "
        f"requests {TALLY.agent_runtime_errors}"
    )
    assert not TALLY.tracebacks and not TALLY.lost and not TALLY.hangs
    assert TALLY.agent_runtime_errors == 0  # a malformed request is bad_request
