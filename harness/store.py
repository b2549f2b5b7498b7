"""The results store: SQLAlchemy Core over SQLite (default) or PostgreSQL.

Every raw latency sample is kept. A finished job is written in ONE transaction
(samples + metrics + status), so killing the controller at any moment leaves
either the whole job or none of it; ``--resume`` then redoes only what is
missing. The schema carries a version number and is brought up to date by the
ordered migrations below, asv-style.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from harness.errors import StoreError
from runners.records import JobMeasurement, to_plain

SCHEMA_VERSION = 2

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("transport", sa.String(50), nullable=False),
    sa.Column("address", sa.String(500), nullable=False, default=""),
    sa.Column("device_type", sa.String(200)),
    sa.Column("options", sa.JSON, nullable=False, default=dict),
    sa.Column("tags", sa.JSON, nullable=False, default=dict),
    sa.Column("facts", sa.JSON),
    sa.Column("checked_at", sa.String(40)),
    sa.Column("created_at", sa.String(40), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("suite_name", sa.String(200), nullable=False),
    sa.Column("suite_path", sa.String(1000), nullable=False),
    sa.Column("suite", sa.JSON, nullable=False),  # the validated suite, as run
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("edgebench_version", sa.String(40), nullable=False),
    sa.Column("commit", sa.String(64)),
    sa.Column("host", sa.String(200)),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", sa.String(500), nullable=False),
    sa.Column("device", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("variant", sa.String(200), nullable=False),
    sa.Column("runtime", sa.String(50), nullable=False),
    sa.Column("setting", sa.JSON, nullable=False),
    sa.Column("artifact_sha256", sa.String(64)),
    sa.Column("status", sa.String(20), nullable=False),  # pending | done | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.JSON),
    # The job's typed measurement (runners.records.JobMeasurement.to_json), raw samples
    # apart; its provenance again, flat, for queries; edgebench's statistics of it.
    sa.Column("result", sa.JSON),
    sa.Column("provenance", sa.JSON),
    sa.Column("summary", sa.JSON),
    sa.Column("started_at", sa.String(40)),
    sa.Column("finished_at", sa.String(40)),
    sa.UniqueConstraint("run_id", "key", name="uq_jobs_run_key"),
)

# Raw latency samples, one row per measured window: float64 little-endian packed in
# a blob. A fast model yields ~100k samples per window; a row per sample made the
# commit of one job take seconds (benchmarks/RESULTS.md).
samples = sa.Table(
    "samples",
    metadata,
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False, index=True),
    sa.Column("repetition", sa.Integer, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("latency_s", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("job_id", "repetition", name="uq_samples_job_rep"),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False, index=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("unit", sa.String(20), nullable=False),
    sa.Column("estimated", sa.Boolean, nullable=False, default=False),
    sa.UniqueConstraint("job_id", "name", name="uq_metrics_job_name"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("format", sa.String(20), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("meta", sa.JSON),
    sa.Column("created_at", sa.String(40), nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), index=True),
    sa.Column("job_id", sa.Integer),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("level", sa.String(10), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)


def _migrate_to_1(conn: Connection) -> None:
    metadata.create_all(conn)


def _migrate_to_2(conn: Connection) -> None:
    """Typed job records: each finished job's result becomes a versioned
    JobMeasurement record and its statistics move to their own column."""
    from harness.migrations import job_record_from_v0

    if "summary" not in {c["name"] for c in sa.inspect(conn).get_columns("jobs")}:
        conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN summary JSON"))
    rows = conn.execute(
        sa.select(jobs.c.id, jobs.c.result, jobs.c.provenance).where(jobs.c.result.is_not(None))
    ).all()
    for job_id, result, provenance in rows:
        if not isinstance(result, dict) or "format_version" in result:
            continue
        found = conn.execute(
            sa.select(metrics.c.name, metrics.c.value).where(metrics.c.job_id == job_id)
        ).all()
        record, summary = job_record_from_v0(result, provenance or {}, dict(found))
        conn.execute(
            jobs.update().where(jobs.c.id == job_id).values(result=record, summary=summary)
        )


# Ordered (target version, step). A new schema change appends a step; steps never change.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migrate_to_1),
    (2, _migrate_to_2),
]


def now() -> str:
    # Microseconds: runs are ordered by creation time, and tests create several a second.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def display_time(iso: str | None) -> str:
    """A stored timestamp as people read it: '2026-11-29 21:30:00 UTC'."""
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


@dataclass(frozen=True)
class Metric:
    name: str
    value: float | None
    unit: str
    estimated: bool = False


class Store:
    """All reads and writes of results go through here."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:") and url.split("?", 1)[0] in ("sqlite://", "sqlite:///"):
            # SQLAlchemy takes these as an in-memory database: every result would be lost
            # when the command exits.
            raise StoreError(
                f"results database {url!r} names no file (that is an in-memory database whose"
                " results are lost on exit); use sqlite:///path/to/edgebench.db"
            )
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise StoreError(
                f"results database {url!r} is not a database URL"
                " (sqlite:///path/to/edgebench.db or postgresql://user@host/db)"
            ) from None
        if parsed.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
            raise StoreError(
                f"results database {_safe_url(url)}: {parsed.get_backend_name()} is not"
                " supported (use sqlite:///FILE or postgresql://...)"
            )
        try:
            self.engine: Engine = sa.create_engine(_driver_url(url), future=True)
            if self.engine.dialect.name == "sqlite":
                # Foreign keys and a wait for a concurrent writer instead of "database is locked".
                @sa.event.listens_for(self.engine, "connect")
                def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA foreign_keys=ON")
                    cur.execute("PRAGMA busy_timeout=30000")
                    cur.close()

            self.migrate()
        except sa.exc.SQLAlchemyError as e:
            cause = getattr(e, "orig", None) or e
            raise StoreError(f"cannot open results database {_safe_url(url)}: {cause}") from e

    # -- schema -------------------------------------------------------------
    def version(self) -> int:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("schema_version"):
                return 0
            return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0

    def migrate(self) -> None:
        current = self.version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"results database {_safe_url(self.url)} has schema version {current}, newer than"
                f" this edgebench understands ({SCHEMA_VERSION}); upgrade edgebench"
            )
        for target, step in MIGRATIONS:
            if target > current:
                with self.engine.begin() as conn:
                    step(conn)
                    conn.execute(schema_version.delete())
                    conn.execute(schema_version.insert().values(version=target))

    # -- devices ------------------------------------------------------------
    def add_device(self, row: dict[str, Any], *, replace: bool = False) -> None:
        row = {"options": {}, "tags": {}, "address": "", **row, "created_at": now()}
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(devices.c.name).where(devices.c.name == row["name"])
            ).first()
            if exists and not replace:
                raise StoreError(f"device {row['name']!r} already exists (remove it first)")
            if exists:
                conn.execute(devices.delete().where(devices.c.name == row["name"]))
            conn.execute(devices.insert().values(**row))

    def get_device(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(devices).where(devices.c.name == name)).mappings().first()
            return dict(row) if row else None

    def list_devices(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(devices).order_by(devices.c.name)).mappings()
            return [dict(r) for r in rows]

    def remove_device(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(devices.delete().where(devices.c.name == name)).rowcount > 0

    def set_device_facts(self, name: str, facts: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                devices.update().where(devices.c.name == name).values(facts=facts, checked_at=now())
            )

    # -- artifacts ----------------------------------------------------------
    def record_artifact(
        self, sha256: str, name: str, fmt: str, size: int, meta: dict[str, Any]
    ) -> None:
        with self.engine.begin() as conn:
            if conn.execute(
                sa.select(artifacts.c.sha256).where(artifacts.c.sha256 == sha256)
            ).first():
                return
            conn.execute(
                artifacts.insert().values(
                    sha256=sha256,
                    name=name,
                    format=fmt,
                    size_bytes=size,
                    meta=meta,
                    created_at=now(),
                )
            )

    def get_artifact(self, sha256: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(artifacts).where(artifacts.c.sha256 == sha256))
                .mappings()
                .first()
            )
            return dict(row) if row else None

    # -- runs and jobs ------------------------------------------------------
    def create_run(
        self,
        *,
        suite_name: str,
        suite_path: str,
        suite: dict[str, Any],
        version: str,
        commit: str | None,
        host: str,
        planned_jobs: Sequence[dict[str, Any]],
    ) -> str:
        run_id = new_run_id()
        with self.engine.begin() as conn:
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    suite_name=suite_name,
                    suite_path=suite_path,
                    suite=suite,
                    status="running",
                    created_at=now(),
                    edgebench_version=version,
                    commit=commit,
                    host=host,
                )
            )
            self._insert_pending(conn, run_id, planned_jobs)
        return run_id

    def add_jobs(self, run_id: str, planned_jobs: Sequence[dict[str, Any]]) -> None:
        """More pending jobs for a run (the next stage of a progressive run)."""
        with self.engine.begin() as conn:
            self._insert_pending(conn, run_id, planned_jobs)

    @staticmethod
    def _insert_pending(conn: Connection, run_id: str, planned: Iterable[dict[str, Any]]) -> None:
        rows = [{**j, "run_id": run_id, "status": "pending", "attempts": 0} for j in planned]
        if rows:
            conn.execute(jobs.insert(), rows)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
            return dict(row) if row else None

    def resolve_run(self, ref: str) -> dict[str, Any]:
        """A run by id, unique id prefix, or 'latest'."""
        with self.engine.connect() as conn:
            if ref == "latest":
                q = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(1)
            else:
                q = sa.select(runs).where(runs.c.id.startswith(ref, autoescape=True))
            found = [dict(r) for r in conn.execute(q).mappings()]
        if not found:
            raise StoreError(f"no run {ref!r} (see `edgebench runs list`)")
        if len(found) > 1:
            raise StoreError(f"run {ref!r} is ambiguous: {', '.join(r['id'] for r in found)}")
        return found[0]

    def list_runs(self) -> list[dict[str, Any]]:
        counts = (
            sa.select(
                jobs.c.run_id,
                sa.func.count().label("jobs"),
                sa.func.sum(sa.case((jobs.c.status == "done", 1), else_=0)).label("done"),
                sa.func.sum(sa.case((jobs.c.status == "failed", 1), else_=0)).label("failed"),
            )
            .group_by(jobs.c.run_id)
            .subquery()
        )
        q = (
            sa.select(
                runs.c.id,
                runs.c.suite_name,
                runs.c.status,
                runs.c.created_at,
                runs.c.finished_at,
                counts.c.jobs,
                counts.c.done,
                counts.c.failed,
            )
            .select_from(runs.outerjoin(counts, counts.c.run_id == runs.c.id))
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def set_run_status(self, run_id: str, status: str) -> None:
        finished = now() if status in ("finished", "failed") else None
        with self.engine.begin() as conn:
            conn.execute(
                runs.update().where(runs.c.id == run_id).values(status=status, finished_at=finished)
            )

    def jobs_for_run(self, run_id: str, *, status: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(jobs).where(jobs.c.run_id == run_id).order_by(jobs.c.id)
        if status:
            q = q.where(jobs.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def mark_job_started(self, job_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(started_at=now(), attempts=jobs.c.attempts + 1)
            )

    def finish_job(
        self,
        job_id: int,
        *,
        measurement: JobMeasurement,
        summary: dict[str, Any] | None,
        job_metrics: Sequence[Metric],
    ) -> None:
        """Commit one finished job atomically: raw samples, record, metrics, status."""
        provenance = to_plain(measurement.provenance)
        flat = {**{k: v for k, v in provenance.items() if k != "extra"}, **provenance["extra"]}
        with self.engine.begin() as conn:
            # A job re-run after a crash between attempts must not keep stale rows.
            conn.execute(samples.delete().where(samples.c.job_id == job_id))
            conn.execute(metrics.delete().where(metrics.c.job_id == job_id))
            rows = [
                {
                    "job_id": job_id,
                    "repetition": r,
                    "n": len(window),
                    "latency_s": np.asarray(window, dtype="<f8").tobytes(),
                }
                for r, window in enumerate(measurement.windows)
            ]
            if rows:
                conn.execute(samples.insert(), rows)
            if job_metrics:
                conn.execute(
                    metrics.insert(),
                    [
                        {
                            "job_id": job_id,
                            "name": m.name,
                            "value": m.value,
                            "unit": m.unit,
                            "estimated": m.estimated,
                        }
                        for m in job_metrics
                    ],
                )
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    status="done",
                    result=measurement.to_json(),
                    provenance=flat,
                    summary=summary,
                    error=None,
                    finished_at=now(),
                )
            )

    def job_measurement(self, job: dict[str, Any]) -> JobMeasurement | None:
        """A finished job's record (without its raw windows: see job_samples)."""
        if not job.get("result"):
            return None
        try:
            return JobMeasurement.from_json(job["result"])
        except (ValueError, TypeError) as e:
            raise StoreError(f"job {job['id']} ({job['key']}): damaged record: {e}") from None

    def fail_job(self, job_id: int, error: dict[str, Any], *, final: bool) -> None:
        """Record a failed attempt; a non-final failure leaves the job pending for a retry."""
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(status="failed" if final else "pending", error=error, finished_at=now())
            )

    def reset_failed_jobs(self, run_id: str) -> int:
        """On resume, failed jobs get another chance."""
        with self.engine.begin() as conn:
            return conn.execute(
                jobs.update()
                .where(jobs.c.run_id == run_id, jobs.c.status == "failed")
                .values(status="pending", attempts=0)
            ).rowcount

    def job_samples(self, job_id: int) -> list[list[float]]:
        """Raw samples of a job, one list per repetition, in measurement order."""
        q = (
            sa.select(samples.c.latency_s)
            .where(samples.c.job_id == job_id)
            .order_by(samples.c.repetition)
        )
        with self.engine.connect() as conn:
            return [np.frombuffer(blob, dtype="<f8").tolist() for (blob,) in conn.execute(q)]

    def job_metrics(self, job_id: int) -> dict[str, Metric]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(metrics).where(metrics.c.job_id == job_id)).mappings()
            return {
                r["name"]: Metric(r["name"], r["value"], r["unit"], bool(r["estimated"]))
                for r in rows
            }

    def log_event(
        self, run_id: str | None, message: str, *, level: str = "info", job_id: int | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                events.insert().values(
                    run_id=run_id, job_id=job_id, ts=now(), level=level, message=message
                )
            )


def _driver_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the driver edgebench ships), not SQLAlchemy's
    default psycopg2."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
