"""Turn a stored run into the typed records ``reports`` renders
(``runners.records.RunReport``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from harness.scheduler import setting_label
from harness.store import Store, display_time, events
from runners.records import (
    DeviceInfo,
    JobResult,
    LatencyStats,
    PublishedFigures,
    RunInfo,
    RunReport,
)

_LATENCY_KEYS = ("p50", "p90", "p95", "p99", "mean", "min", "max", "std", "cv", "ci_low", "ci_high")
# A failed job's log excerpt: its last lines in the run's log (a traceback is long; the
# end says where it broke).
LOG_EXCERPT_LINES = 40


def report_data(store: Store, run_id: str, *, samples: bool = True) -> RunReport:
    """The run, its devices and one record per job. ``samples=False`` leaves the raw
    latency samples out (``samples_s`` empty), for callers that need only the figures."""
    run = store.resolve_run(run_id)
    jobs = store.jobs_for_run(run["id"])
    device_names = list(dict.fromkeys(j["device"] for j in jobs))
    devices = []
    for name in device_names:
        row = store.get_device(name) or {"name": name, "transport": "?", "address": "", "tags": {}}
        devices.append(
            DeviceInfo(
                name=name,
                transport=row.get("transport"),
                address=row.get("address") or "",
                tags=row.get("tags") or {},
                facts=row.get("facts") or {},
            )
        )
    suite = run["suite"] or {}
    imported_tool = (
        suite.get("tool") or run["suite_name"].removeprefix("import-")
        if suite.get("imported")
        else None
    )
    # A variant's description is the run's (its suite as it ran), not the artifact's: one
    # file can be built for several variants, by several suites.
    descriptions = {
        v.get("name"): v.get("description")
        for v in suite.get("variants") or []
        if isinstance(v, dict)
    }
    # Published figures the suite compares its variants with (suite `reference:`); a run
    # stored before the key existed has none.
    references = {
        v.get("name"): PublishedFigures(**v["reference"])
        for v in suite.get("variants") or []
        if isinstance(v, dict) and v.get("reference")
    }
    logs = _failed_job_logs(store, run["id"], [j["id"] for j in jobs if j["status"] == "failed"])
    results = []
    for job in jobs:
        artifact = store.get_artifact(job["artifact_sha256"]) if job["artifact_sha256"] else None
        done = job["status"] == "done"
        metrics = store.job_metrics(job["id"]) if done else {}
        record = store.job_measurement(job) if done else None

        def value(name: str, metrics: dict = metrics) -> Any:
            m = metrics.get(name)
            return m.value if m else None

        latency = None
        if "latency_p50" in metrics or "latency_mean" in metrics:
            n = value("latency_n")
            tool = record.tool_stats.tool if record and record.tool_stats else None
            latency = LatencyStats(
                **{k: value(f"latency_{k}") for k in _LATENCY_KEYS},
                n=int(n) if n is not None else None,
                throughput=value("throughput"),
                source=tool or "edgebench",
            )
        windows = store.job_samples(job["id"]) if metrics and samples else []
        raw = [s for w in windows for s in w]
        error = job["error"]
        power = record.power if record else None
        results.append(
            JobResult(
                job_id=job["id"],
                device=job["device"],
                variant=job["variant"],
                model=job["model"],
                format=artifact["format"] if artifact else None,
                runtime=job["runtime"],
                threads=job["setting"].get("threads"),
                setting=setting_label(job["setting"]),
                status=job["status"],
                error=f"{error['type']}: {error['message']}" if error and not done else None,
                file_size_bytes=artifact["size_bytes"] if artifact else None,
                **variant_facts(
                    {
                        **((artifact or {}).get("meta") or {}),
                        "description": descriptions.get(job["variant"]),
                    }
                ),
                accuracy=value("accuracy_top1"),
                accuracy_n=int(value("accuracy_n")) if value("accuracy_n") is not None else None,
                note=record.note if record else None,
                latency_s=latency,
                # Each repetition's own p50: how far a run's windows disagree (compare).
                window_p50_s=[w["p50"] for w in (job.get("summary") or {}).get("windows") or []],
                init_s=value("init"),
                first_inference_s=value("first_inference"),
                timer_floor_s=value("timer_floor"),
                peak_rss_bytes=value("peak_rss"),
                rss_after_load_bytes=value("rss_after_load"),
                samples_s=raw,
                energy_per_inference_j=value("energy_per_inference"),
                mean_power_w=value("mean_power"),
                idle_power_w=value("idle_power"),
                power_rail=power.rail if power else None,
                power_sample_rate_hz=value("power_sample_rate"),
                static_ram_bytes=value("static_ram"),
                flash_bytes=value("flash"),
                executed_instructions=(
                    int(value("executed_instructions"))
                    if value("executed_instructions") is not None
                    else None
                ),
                arena_bytes=value("arena"),
                ram_limit_bytes=value("ram_limit"),
                flash_limit_bytes=value("flash_limit"),
                emulated=bool(record and record.emulated),
                not_deployable=record.not_deployable if record else None,
                timed_region=record.timed_region if record else None,
                runtime_version=(job.get("provenance") or {}).get("runtime_version"),
                health_flags=list(record.health.flags) if record and record.health else [],
                latency_io_p50_s=value("latency_io_p50"),
                io_region=record.io_region if record else None,
                processes=(
                    len(set(record.window_processes))
                    if record and record.window_processes
                    else None
                ),
                estimated=sorted({_field_of(m.name) for m in metrics.values() if m.estimated}),
                window_sample_counts=[len(w) for w in windows],
                warmup_count=record.warmup_count if record else None,
                warmup_time_s=record.warmup_time_s if record else None,
                layers=list(record.layers) if record else [],
                error_kind=error.get("kind") if error and not done else None,
                attempts=job.get("attempts"),
                log_excerpt=logs.get(job["id"], []),
                reference=references.get(job["variant"]),
            )
        )
    baseline = suite.get("baseline") or (suite.get("variants") or [{}])[0].get("name")
    return RunReport(
        run=RunInfo(
            id=run["id"],
            suite=run["suite_name"],
            status=run["status"],
            created_at=display_time(run["created_at"]),
            edgebench_version=run["edgebench_version"],
            commit=run["commit"],
            repetitions=(suite.get("measure") or {}).get("repetitions"),
            baseline_variant=baseline,
            imported_tool=imported_tool,
        ),
        devices=devices,
        results=with_retention(results, baseline),
    )


def _failed_job_logs(store: Store, run_id: str, job_ids: list[int]) -> dict[int, list[str]]:
    """The last LOG_EXCERPT_LINES lines the run's log (the events table) holds for each
    failed job: every attempt's error and, for an unforeseen one, its traceback."""
    if not job_ids:
        return {}
    query = (
        sa.select(events.c.job_id, events.c.ts, events.c.level, events.c.message)
        .where(events.c.run_id == run_id, events.c.job_id.in_(job_ids))
        .order_by(events.c.id)
    )
    lines: dict[int, list[str]] = {}
    with store.engine.connect() as conn:
        for job_id, ts, level, message in conn.execute(query):
            first, *rest = str(message).splitlines() or [""]
            lines.setdefault(job_id, []).extend([f"{display_time(ts)} {level}: {first}", *rest])
    return {job_id: found[-LOG_EXCERPT_LINES:] for job_id, found in lines.items()}


def _field_of(metric: str) -> str:
    """Report field a stored metric feeds (an estimated metric marks that field)."""
    if metric.startswith("latency_") or metric == "throughput":
        return "latency_s"
    return {
        "peak_rss": "peak_rss_bytes",
        "rss_after_load": "rss_after_load_bytes",
        "init": "init_s",
        "first_inference": "first_inference_s",
        "accuracy_top1": "accuracy",
        "energy_per_inference": "energy_per_inference_j",
        "mean_power": "mean_power_w",
        "idle_power": "idle_power_w",
        "power_sample_rate": "power_sample_rate_hz",
    }.get(metric, metric)


def variant_facts(meta: dict[str, Any]) -> dict[str, Any]:
    """What the build recorded about a variant: recipe, size and compute figures."""
    file_stats = meta.get("file_stats") or {}
    torch_stats = meta.get("torch_stats") or {}

    def first(key: str) -> Any:
        # The exported file is what runs; the torch module fills gaps.
        return file_stats.get(key) if file_stats.get(key) is not None else torch_stats.get(key)

    return {
        "recipe": meta.get("recipe"),
        "recipe_params": meta.get("recipe_params"),
        "techniques": meta.get("techniques"),
        "description": meta.get("description") or None,
        "params": first("params"),
        "nonzero_params": first("nonzero_params"),
        # MACs are a property of the graph: counted on the torch module when there was one.
        "macs": torch_stats.get("macs")
        if torch_stats.get("macs") is not None
        else file_stats.get("macs"),
        "zstd_size_bytes": file_stats.get("zstd_size_bytes"),
        "accuracy_meaningful": bool(meta.get("accuracy_meaningful", True)),
    }


def with_retention(results: list[JobResult], baseline: str | None) -> list[JobResult]:
    """accuracy / baseline accuracy on the same device, preferring the baseline run
    with the same runtime setting (so a runtime's own numerics do not count as a cost)."""
    same_setting: dict[tuple[str, str], float] = {}
    any_setting: dict[str, float] = {}
    for r in results:
        if r.variant == baseline and r.accuracy is not None:
            same_setting.setdefault((r.device, r.setting), r.accuracy)
            any_setting.setdefault(r.device, r.accuracy)
    out = []
    for r in results:
        ref = same_setting.get((r.device, r.setting), any_setting.get(r.device))
        out.append(
            r.replace(
                baseline=r.variant == baseline,
                accuracy_retention=r.accuracy / ref if r.accuracy is not None and ref else None,
            )
        )
    return out
