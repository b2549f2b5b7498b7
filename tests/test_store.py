"""The results store: schema versioning and the one-transaction-per-job rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import store as store_mod
from harness.errors import StoreError
from harness.store import Metric, Store


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
    s.finish_job(
        job["id"],
        result={"x": 1},
        provenance={"p": 2},
        windows=windows,
        job_metrics=[Metric("latency_p50", 0.002, "s"), Metric("peak", 5.0, "bytes")],
    )
    assert s.job_samples(job["id"]) == windows
    assert s.job_metrics(job["id"])["latency_p50"].value == 0.002
    (done,) = s.jobs_for_run(run_id)
    assert done["status"] == "done" and done["result"] == {"x": 1}


def test_failed_commit_leaves_no_partial_job(store: Store) -> None:
    s = store
    run_id = _run(s, ["a"])
    (job,) = s.jobs_for_run(run_id)
    # A duplicate metric name violates a constraint halfway through the transaction.
    with pytest.raises(sa.exc.IntegrityError):
        s.finish_job(
            job["id"],
            result={},
            provenance={},
            windows=[[0.1, 0.2]],
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
