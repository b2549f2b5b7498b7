"""`edgebench export`: CSV / Parquet tables and pytest-benchmark JSON of a real run, read
back with the csv module, pyarrow and pytest-benchmark's own `compare` command."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.stats import pytest_benchmark_stats as benchmark_stats
from reports.export import JOB_COLUMNS, _csv_cell, job_records
from runners.records import JobResult, RunInfo, RunReport
from tests.conftest import EDGEBENCH, Runner, make_runner, write_suite


def job(**overrides: Any) -> JobResult:
    """A finished job's record with only the required fields set, plus ``overrides``."""
    fields: dict[str, Any] = {
        "job_id": 1,
        "device": "local",
        "model": "digits_cnn",
        "variant": "v",
        "runtime": "onnxruntime",
        "setting": "onnxruntime t=1",
        "status": "done",
    }
    return JobResult(**(fields | overrides))


def test_benchmark_stats_known_series() -> None:
    s = benchmark_stats([float(x) for x in range(10, 0, -1)])  # 1..10, unsorted
    assert (s["min"], s["max"], s["rounds"], s["total"]) == (1.0, 10.0, 10, 55.0)
    # Nearest-rank: q1 = 3rd value, median = 5th, q3 = 8th.
    assert (s["q1"], s["median"], s["q3"], s["iqr"]) == (3.0, 5.0, 8.0, 5.0)
    assert s["mean"] == 5.5 and s["stddev"] == pytest.approx(3.0276503540974917)  # ddof=1
    assert s["ops"] == pytest.approx(1 / 5.5)
    assert s["iqr_outliers"] == 0 and s["outliers"] == f"{s['stddev_outliers']};0"
    assert (s["ld15iqr"], s["hd15iqr"]) == (1.0, 10.0)
    spiky = benchmark_stats([1.0] * 9 + [100.0])
    assert spiky["iqr_outliers"] == 1 and spiky["hd15iqr"] == 1.0


def test_csv_cells_cannot_become_formulas() -> None:
    assert _csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert _csv_cell("-2+3") == "'-2+3" and _csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert _csv_cell("int8-onnx") == "int8-onnx" and _csv_cell(-2.5) == -2.5


def test_estimated_figures_are_named_in_the_records() -> None:
    data = RunReport(
        run=RunInfo(id="r", suite="s", status="finished"),
        results=[job(device="qemu", variant="v", estimated=["latency_s"])],
    )
    (rec,) = job_records(data)
    assert rec["estimated"] == "latency_s" and set(rec) == set(JOB_COLUMNS)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, shared_home: Path) -> tuple[Runner, str]:
    """One small real run on the local device, shared by this module's tests."""
    tmp = tmp_path_factory.mktemp("export")
    eb = make_runner(shared_home, tmp)
    suite = write_suite(
        tmp / "suite.yaml",
        settings="  - {runtime: onnxruntime, threads: [1, 2]}\n  - {runtime: litert}\n",
        measure="{warmup_runs: 1, min_runs: 30, min_duration_s: 0.0, repetitions: 2}",
    )
    eb("device", "add", "local")
    eb("run", str(suite), "--no-report")
    return eb, json.loads(eb("runs", "list", "--json").stdout)[0]["id"]


def _export(eb: Runner, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return eb("export", *argv, check=check)


def _db(eb: Runner) -> sqlite3.Connection:
    return sqlite3.connect(eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///"))  # type: ignore[attr-defined]


def test_csv_jobs_match_the_database(finished_run: tuple[Runner, str]) -> None:
    eb, run_id = finished_run
    rows = list(csv.DictReader(io.StringIO(_export(eb, run_id).stdout)))
    # 2 onnx variants x 2 thread counts + 2 tflite variants
    assert len(rows) == 6 and list(rows[0]) == list(JOB_COLUMNS)
    with _db(eb) as conn:
        stored = dict(
            conn.execute(
                "SELECT j.variant || '|' || j.setting, m.value FROM metrics m JOIN jobs j"
                " ON j.id = m.job_id WHERE m.name = 'latency_p50'"
            ).fetchall()
        )
    assert len(stored) == 6
    for row in rows:
        assert row["run_id"] == run_id and row["status"] == "done" and row["estimated"] == ""
        assert float(row["accuracy"]) > 0.9 and int(row["file_size_bytes"]) > 10_000
        p50 = [v for k, v in stored.items() if k.startswith(row["variant"] + "|")]
        assert any(float(row["latency_p50_s"]) == pytest.approx(v, rel=1e-12) for v in p50)


def test_csv_and_parquet_samples(finished_run: tuple[Runner, str], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    eb, run_id = finished_run
    with _db(eb) as conn:
        (total,) = conn.execute("SELECT SUM(n) FROM samples").fetchone()
    out = tmp_path / "samples.csv"
    done = _export(eb, run_id, "--samples", "-o", str(out))
    assert f"wrote {total} samples" in done.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == total and all(float(r["latency_s"]) > 0 for r in rows)
    assert {r["repetition"] for r in rows} == {"0", "1"}

    jobs = pq.read_table(_write_parquet(eb, run_id, tmp_path / "jobs.parquet"))
    assert jobs.num_rows == 6 and jobs.column_names == list(JOB_COLUMNS)
    assert all(v > 0 for v in jobs.column("latency_p50_s").to_pylist())
    samples = pq.read_table(_write_parquet(eb, run_id, tmp_path / "s.parquet", "--samples"))
    assert samples.num_rows == total


def _write_parquet(eb: Runner, run_id: str, path: Path, *extra: str) -> str:
    _export(eb, run_id, "--format", "parquet", "-o", str(path), *extra)
    return str(path)


def test_pytest_benchmark_json_reads_in_pytest_benchmark(
    finished_run: tuple[Runner, str], tmp_path: Path
) -> None:
    eb, run_id = finished_run
    out = tmp_path / "0001_edgebench.json"
    _export(eb, run_id[:-1], "--format", "pytest-benchmark", "-o", str(out))
    doc = json.loads(out.read_text())
    assert len(doc["benchmarks"]) == 6
    with _db(eb) as conn:
        n_by_job = dict(conn.execute("SELECT job_id, SUM(n) FROM samples GROUP BY job_id"))
    assert sorted(b["stats"]["rounds"] for b in doc["benchmarks"]) == sorted(n_by_job.values())
    # pytest-benchmark's own command loads and tabulates the file.
    shown = subprocess.run(
        [
            str(Path(EDGEBENCH).parent / "pytest-benchmark"),
            "compare",
            str(out),
            "--group-by",
            "group",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "int8-onnx[onnxruntime t=2]" in shown.stdout and "local" in shown.stdout
    assert "Failed to load" not in shown.stdout + shown.stderr


def test_export_mistakes_are_one_line(finished_run: tuple[Runner, str], tmp_path: Path) -> None:
    eb, run_id = finished_run
    for argv, words in [
        ([run_id, "--format", "xlsx"], "--format 'xlsx'"),
        ([run_id, "--format", "parquet"], "needs -o FILE"),
        ([run_id, "--format", "pytest-benchmark", "--samples"], "--samples is for csv"),
        (["nope"], "no run 'nope'"),
        ([run_id, "-o", str(tmp_path)], "is a folder"),
    ]:
        proc = _export(eb, *argv, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr
