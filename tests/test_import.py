"""`edgebench import --tool trtexec`: a lab's existing logs become a run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from runners.trtexec import parse_export_times, parse_trtexec_log
from tests.conftest import Runner

DATA = Path(__file__).parent / "data" / "trtexec"
LOG10 = DATA / "trt10.3.0_orin_nano_load_engine.log"
TIMES10 = DATA / "trt10.3.0_orin_nano_times.json"
LOG8 = DATA / "trt8.2.1_xavier_nx_fp16.log"


def _rows(eb: Runner, sql: str) -> list[tuple]:
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_import_logs_with_and_without_raw_times(eb: Runner) -> None:
    out = eb("import", "--tool", "trtexec", "--device", "orin", str(LOG10), str(TIMES10), str(LOG8))
    assert "imported 2 log(s)" in out.stdout
    runs = json.loads(eb("runs", "list", "--json").stdout)
    assert runs[0]["suite_name"] == "import-trtexec" and runs[0]["done"] == 2

    metrics = {
        (variant, name): value
        for variant, name, value in _rows(
            eb, "SELECT j.variant, m.name, m.value FROM metrics m JOIN jobs j ON j.id = m.job_id"
        )
    }
    # With --exportTimes: every raw sample is stored and the stats are ours (nearest rank).
    raw = parse_export_times(TIMES10.read_text())
    (n_stored,) = _rows(eb, "SELECT SUM(n) FROM samples")[0]
    assert n_stored == len(raw)
    assert metrics[(LOG10.stem, "latency_n")] == len(raw)
    assert metrics[(LOG10.stem, "latency_p50")] == sorted(raw)[(len(raw) + 1) // 2 - 1]
    # Summary only: trtexec's own median is reported as is.
    summary = parse_trtexec_log(LOG8.read_text())
    assert metrics[(LOG8.stem, "latency_p50")] == summary.latency.median_s
    assert metrics[(LOG8.stem, "throughput")] == summary.throughput_qps


def test_import_rejects_bad_input_in_one_line(eb: Runner, tmp_path: Path) -> None:
    broken = tmp_path / "build.log"
    broken.write_text((DATA / "trt8.6.2_build_failed_unsupported_op.log").read_text())
    for args, needle in [
        (["--tool", "trtexec", str(broken)], str(broken)),
        (["--tool", "benchmark_model", str(LOG8)], "not supported yet"),
        (["--tool", "trtexec", str(TIMES10)], "must follow the log"),
        (["--tool", "trtexec", str(tmp_path / "nope.log")], "no such file"),
    ]:
        proc = eb("import", *args, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert needle in proc.stderr.strip().splitlines()[-1]
