"""The results store: schema versioning and the one-transaction-per-job rule."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import store as store_mod
from harness.errors import StoreError
from harness.store import Metric, Store
from runners.records import FORMAT_VERSION, JobMeasurement, Provenance

SCHEMA1_DB = Path(__file__).parent / "data" / "store" / "schema1.db"


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(db_url)


def _planned(keys: list[str]) -> list[dict]:
    return [
        {
            "key": k,
            "device": "d",
            "model": "m",
            "variant": k,
            "runtime": "onnxruntime",
            "setting": {"runtime": "onnxruntime", "threads": 1},
            "artifact_sha256": "0" * 64,
        }
        for k in keys
    ]


def _run(store: Store, keys: list[str]) -> str:
    return store.create_run(
        suite_name="s",
        suite_path="/s.yaml",
        suite={"name": "s"},
        version="0",
        commit=None,
        host="h",
        planned_jobs=_planned(keys),
    )


def test_new_database_is_at_current_schema_version(store: Store) -> None:
    s = store
    assert s.version() == store_mod.SCHEMA_VERSION
    Store(s.url)  # opening again migrates nothing and does not fail
    assert s.version() == store_mod.SCHEMA_VERSION


def test_newer_schema_is_refused_with_a_clear_error(store: Store) -> None:
    s = store
    with s.engine.begin() as conn:
        conn.execute(store_mod.schema_version.update().values(version=99))
    with pytest.raises(StoreError, match="schema version 99, newer"):
        Store(s.url)


def test_unopenable_database_names_the_url_without_password(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open results database") as info:
        Store(f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'r.db'}")
    assert "Traceback" not in str(info.value)


def test_finished_job_keeps_every_raw_sample_and_metric(store: Store) -> None:
    s = store
    run_id = _run(s, ["a"])
    (job,) = s.jobs_for_run(run_id)
    windows = [[0.001, 0.002, 0.003], [0.004, 0.005]]
    measured = JobMeasurement(
        runner="t", provenance=Provenance(runner="t", extra={"p": 2}), windows=windows
    )
    s.finish_job(
        job["id"],
        measurement=measured,
        summary={"x": 1},
        job_metrics=[Metric("latency_p50", 0.002, "s"), Metric("peak", 5.0, "bytes")],
    )
    assert s.job_samples(job["id"]) == windows
    assert s.job_metrics(job["id"])["latency_p50"].value == 0.002
    (done,) = s.jobs_for_run(run_id)
    assert done["status"] == "done" and done["summary"] == {"x": 1}
    assert done["provenance"]["p"] == 2  # flat, for queries
    assert done["result"]["format_version"] == FORMAT_VERSION
    assert s.job_measurement(done) == replace(measured, windows=[])  # raw samples apart


def test_failed_commit_leaves_no_partial_job(store: Store) -> None:
    s = store
    run_id = _run(s, ["a"])
    (job,) = s.jobs_for_run(run_id)
    # A duplicate metric name violates a constraint halfway through the transaction.
    with pytest.raises(sa.exc.IntegrityError):
        s.finish_job(
            job["id"],
            measurement=JobMeasurement(
                runner="t", provenance=Provenance(runner="t"), windows=[[0.1, 0.2]]
            ),
            summary=None,
            job_metrics=[Metric("m", 1.0, "s"), Metric("m", 2.0, "s")],
        )
    assert s.job_samples(job["id"]) == []
    assert s.jobs_for_run(run_id)[0]["status"] == "pending"


def test_job_keys_are_unique_within_a_run(store: Store) -> None:
    s = store
    run_id = _run(s, ["a", "b"])
    assert [j["key"] for j in s.jobs_for_run(run_id)] == ["a", "b"]
    with pytest.raises(sa.exc.IntegrityError):
        with s.engine.begin() as conn:
            s._insert_pending(conn, run_id, _planned(["a"]))


def test_retry_semantics_and_resume_reset(store: Store) -> None:
    s = store
    run_id = _run(s, ["a"])
    (job,) = s.jobs_for_run(run_id)
    s.fail_job(job["id"], {"message": "boom"}, final=False)
    assert s.jobs_for_run(run_id)[0]["status"] == "pending"
    s.fail_job(job["id"], {"message": "boom"}, final=True)
    assert s.jobs_for_run(run_id, status="failed")
    assert s.reset_failed_jobs(run_id) == 1
    assert s.jobs_for_run(run_id)[0]["status"] == "pending"


def test_runs_resolve_by_prefix_latest_and_list_counts(store: Store) -> None:
    s = store
    first = _run(s, ["a", "b"])
    second = _run(s, ["a"])
    assert s.resolve_run(first)["id"] == first
    assert s.resolve_run("latest")["id"] == second
    with pytest.raises(StoreError, match="no run"):
        s.resolve_run("nope")
    listed = {r["id"]: r for r in s.list_runs()}
    assert listed[first]["jobs"] == 2 and listed[first]["done"] == 0


def test_devices_add_refuses_duplicates_unless_replaced(store: Store) -> None:
    s = store
    s.add_device({"name": "pi", "transport": "local", "tags": {"site": "a"}})
    with pytest.raises(StoreError, match="already exists"):
        s.add_device({"name": "pi", "transport": "local"})
    s.add_device({"name": "pi", "transport": "local", "tags": {"site": "b"}}, replace=True)
    assert s.get_device("pi")["tags"] == {"site": "b"}
    s.set_device_facts("pi", {"arch": "aarch64"})
    assert s.get_device("pi")["facts"]["arch"] == "aarch64"
    assert s.remove_device("pi") and not s.remove_device("pi")


def test_unreachable_postgres_is_one_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open results database") as info:
        Store("postgresql://lab:secret@127.0.0.1:1/results")
    assert "secret" not in str(info.value)  # the password never reaches a message


def test_a_database_of_the_schema_1_release_is_migrated_to_typed_records(tmp_path: Path) -> None:
    """tests/data/store/schema1.db was written by the release before typed records
    (see make_schema1_fixture.py): agent jobs with power and accuracy, trtexec jobs,
    failed jobs, and imported trtexec / benchmark_model / onnxruntime_perf_test logs."""
    db = tmp_path / "old.db"
    shutil.copyfile(SCHEMA1_DB, db)
    before = {}
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_version")).scalar() == 1
        for job_id, name, value in conn.execute(sa.text("SELECT job_id, name, value FROM metrics")):
            before[(job_id, name)] = value
    s = Store(f"sqlite:///{db}")
    assert s.version() == store_mod.SCHEMA_VERSION
    jobs = [j for r in s.list_runs() for j in s.jobs_for_run(r["id"])]
    records = {j["id"]: s.job_measurement(j) for j in jobs if j["status"] == "done"}
    assert len(records) == 10 and all(r is not None for r in records.values())
    by_runner: dict[str, list] = {}
    for job_id, record in records.items():
        by_runner.setdefault(record.runner, []).append((job_id, record))
    assert sorted((k, len(v)) for k, v in by_runner.items()) == [
        ("agent", 3), ("import", 5), ("trtexec", 2)
    ]
    for job_id, rec in by_runner["agent"]:
        # Power came from a (replayed) tegrastats, accuracy from the agent, figures as stored.
        assert rec.power.rail == "VDD_IN" and rec.power.readings
        assert rec.power.energy_per_inference_j == before[(job_id, "energy_per_inference")]
        assert rec.accuracy.top1 == before[(job_id, "accuracy_top1")]
        assert rec.memory.peak_rss_bytes == before[(job_id, "peak_rss")]
        assert rec.init_s == before[(job_id, "init")] and rec.provenance.runtime_version
        job = next(j for j in jobs if j["id"] == job_id)
        assert len(job["summary"]["windows"]) == len(s.job_samples(job_id)) == 2
    for job_id, rec in by_runner["trtexec"]:
        assert rec.note.startswith("accuracy not measured") and rec.accuracy is None
        assert rec.provenance.extra["engine"].endswith(".engine")
        assert rec.power.energy_per_inference_j == before[(job_id, "energy_per_inference")]
    tools = {}
    for job_id, rec in by_runner["import"]:
        tools[rec.details["tool"]] = tools.get(rec.details["tool"], 0) + 1
        if rec.tool_stats is not None:  # summary only: the tool's own figures
            assert rec.tool_stats.mean_s == before[(job_id, "latency_mean")]
            assert s.job_samples(job_id) == []
        else:  # trtexec with its --exportTimes JSON: raw samples, edgebench's statistics
            assert len(s.job_samples(job_id)[0]) == int(before[(job_id, "latency_n")])
    assert tools == {"trtexec": 2, "benchmark_model": 2, "onnxruntime_perf_test": 1}
    failed = [j for j in jobs if j["status"] == "failed"]
    assert len(failed) == 5 and all(j["result"] is None for j in failed)
    # Metrics are untouched, so reports and comparisons of old runs read the same figures.
    with s.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT job_id, name, value FROM metrics"))
        after = {(j, n): v for j, n, v in rows}
    assert after == before
    Store(s.url)  # migrating again is a no-op


def test_a_damaged_record_is_one_clear_error(store: Store) -> None:
    run_id = _run(store, ["a"])
    (job,) = store.jobs_for_run(run_id)
    with pytest.raises(StoreError, match="damaged record.*format version"):
        store.job_measurement({**job, "result": {"format_version": 99}})
    with pytest.raises(StoreError, match="unknown field"):
        store.job_measurement(
            {**job, "result": {"format_version": FORMAT_VERSION, "runner": "x", "bogus": 1}}
        )
