"""Plan a run's jobs and execute them on the devices.

A job is one (model variant, runtime setting, device). Devices work in
parallel, one worker thread each; the jobs of one device run one after another
because they compete for the same CPU/memory. Each finished job is committed at
once (see ``Store.finish_job``), so an interrupted run loses at most the job in
flight, and ``--resume`` picks up exactly the jobs that are not done.
"""

from __future__ import annotations

import hashlib
import json
import platform
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from devices.errors import AgentError, DeviceError, TransportError
from devices.power import rpi
from devices.power.energy import window_energy
from devices.power.sources import (
    choose_source,
    parse_readings,
    sampler_request,
    telemetry_summary,
)
from devices.transport import DeviceConfig, make_transport
from harness import __version__, stats
from harness.artifacts import ArtifactCache, Variant
from harness.errors import RunError
from harness.store import Metric, Store
from harness.workspace import Workspace, git_commit
from runners.agent_client import AgentClient
from runners.tensorrt import TrtexecRunner
from suites.datasets import load_dataset
from suites.schema import RUNTIME_FORMATS, Suite


def setting_label(setting: dict[str, Any]) -> str:
    label = setting["runtime"]
    if setting.get("threads") is not None:
        label += f" t={setting['threads']}"
    if setting.get("precision"):
        label += f" {setting['precision']}"
    if setting.get("device") and setting["device"] != "cpu":
        label += f" {setting['device']}"
    if setting.get("providers"):
        label += " " + ",".join(p.removesuffix("ExecutionProvider") for p in setting["providers"])
    if setting.get("xnnpack") is not None:
        label += " xnnpack" if setting["xnnpack"] else " no-xnnpack"
    return label


def plan_jobs(
    suite: Suite, variants: Sequence[Variant], device_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Every compatible variant x setting x device, in a stable order."""
    planned = []
    for device in device_names:
        for v in variants:
            for s in suite.settings:
                if RUNTIME_FORMATS[s.runtime] != v.format:
                    continue
                for threads in s.threads:
                    setting: dict[str, Any] = {
                        "runtime": s.runtime,
                        "threads": threads,
                        "providers": s.providers,
                    }
                    if s.runtime == "tensorrt":
                        setting["precision"] = s.precision
                    if s.runtime == "torch":
                        setting["device"] = s.device
                    if s.xnnpack is not None:
                        setting["xnnpack"] = s.xnnpack
                    key = f"{device}|{v.model}|{v.name}|{setting_label(setting)}"
                    planned.append(
                        {
                            "key": key,
                            "device": device,
                            "model": v.model,
                            "variant": v.name,
                            "runtime": s.runtime,
                            "setting": setting,
                            "artifact_sha256": v.artifact.sha256,
                        }
                    )
    return planned


def select_devices(
    store: Store, suite: Suite, names: Sequence[str], tags: dict[str, str]
) -> list[dict[str, Any]]:
    """Devices named on the command line win over the suite's own selection."""
    wanted_names = list(names) or suite.devices.names
    wanted_tags = tags or suite.devices.tags
    registered = {d["name"]: d for d in store.list_devices()}
    missing = [n for n in wanted_names if n not in registered]
    if missing:
        raise RunError(
            f"device(s) not registered: {', '.join(missing)} (see `edgebench device list`)"
        )
    chosen = [registered[n] for n in wanted_names] if wanted_names else list(registered.values())
    chosen = [d for d in chosen if all(d["tags"].get(k) == v for k, v in wanted_tags.items())]
    if not chosen:
        raise RunError("no registered device matches the selection (names/tags)")
    return chosen


@dataclass
class RunContext:
    ws: Workspace
    store: Store
    suite: Suite
    run_id: str
    variants: dict[tuple[str, str], Variant]  # by (model, variant name)
    stop: threading.Event = field(default_factory=threading.Event)
    agents: dict[str, AgentClient] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def device_config(row: dict[str, Any]) -> DeviceConfig:
    return DeviceConfig(
        name=row["name"],
        transport=row["transport"],
        address=row["address"] or "",
        options=row["options"] or {},
        tags=row["tags"] or {},
        device_type=row["device_type"],
    )


def fingerprint(facts: dict[str, Any]) -> str:
    """Stable id of what a device *is* (not of its current load)."""
    keys = (
        "hostname",
        "arch",
        "cpu_model",
        "cpu_cores",
        "memory_total_bytes",
        "os_release",
        "kernel",
        "python",
        "runtimes",
        "board_model",
    )
    blob = json.dumps({k: facts.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def execute(ctx: RunContext, devices: Sequence[dict[str, Any]], console: Console) -> str:
    """Run every pending job of the run; return the final run status."""
    pending = ctx.store.jobs_for_run(ctx.run_id, status="pending")
    by_device: dict[str, list[dict[str, Any]]] = {}
    for job in pending:
        by_device.setdefault(job["device"], []).append(job)
    rows = {d["name"]: d for d in devices}
    unknown = sorted(set(by_device) - set(rows))
    if unknown:
        raise RunError(f"run has jobs for unregistered device(s): {', '.join(unknown)}")

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        overall = progress.add_task("all devices", total=len(pending), status="")
        workers = []
        for name, jobs in by_device.items():
            task = progress.add_task(f"  {name}", total=len(jobs), status="starting")
            t = threading.Thread(
                target=_device_worker,
                args=(ctx, rows[name], jobs, progress, task, overall),
                name=f"device-{name}",
                daemon=True,
            )
            t.start()
            workers.append(t)
        try:
            while any(t.is_alive() for t in workers):
                for t in workers:
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            ctx.stop.set()
            with ctx.lock:
                for agent in ctx.agents.values():
                    agent.kill()  # in-flight requests fail at once; those jobs stay pending
            for t in workers:
                t.join(timeout=10)
            ctx.store.set_run_status(ctx.run_id, "interrupted")
            ctx.store.log_event(ctx.run_id, "interrupted by user", level="warning")
            raise

    remaining = ctx.store.jobs_for_run(ctx.run_id)
    failed = [j for j in remaining if j["status"] == "failed"]
    status = "failed" if failed and len(failed) == len(remaining) else "finished"
    if any(j["status"] == "pending" for j in remaining):
        status = "interrupted"
    ctx.store.set_run_status(ctx.run_id, status)
    return status


def _device_worker(
    ctx: RunContext,
    row: dict[str, Any],
    jobs: list[dict[str, Any]],
    progress: Progress,
    task: Any,
    overall: Any,
) -> None:
    name = row["name"]
    transport = make_transport(device_config(row), ctx.ws.home)
    agent: AgentClient | None = None
    try:
        for job in jobs:
            if ctx.stop.is_set():
                return
            progress.update(task, status=f"{job['variant']} {setting_label(job['setting'])}")
            for attempt in range(ctx.suite.retries + 1):
                if ctx.stop.is_set():
                    return
                # Counted before connecting: a board that cannot be reached is an attempt too.
                ctx.store.mark_job_started(job["id"])
                try:
                    if agent is None:
                        agent = AgentClient.start(transport)
                        with ctx.lock:
                            ctx.agents[name] = agent
                        ctx.store.set_device_facts(name, agent.facts)
                    if job["setting"]["runtime"] == "tensorrt":
                        _run_trtexec_job(ctx, agent, transport, job)
                    else:
                        _run_job(ctx, agent, transport, job, row["options"] or {})
                    break
                except DeviceError as e:
                    if ctx.stop.is_set():
                        return  # interrupted, not failed: the job stays pending
                    if isinstance(e, TransportError) and agent is not None:
                        agent.kill()  # its state is unknown; start a fresh one
                        agent = None
                    final = attempt == ctx.suite.retries
                    error = {
                        "type": type(e).__name__,
                        "message": str(e),
                        "kind": getattr(e, "kind", None),
                        "attempt": attempt + 1,
                    }
                    ctx.store.fail_job(job["id"], error, final=final)
                    ctx.store.log_event(
                        ctx.run_id,
                        f"{job['key']}: attempt {attempt + 1} failed: {e}",
                        level="error" if final else "warning",
                        job_id=job["id"],
                    )
            # One agent process per job: peak RSS and RSS after load then describe this
            # variant alone, not the runtimes and arenas earlier jobs left in the process.
            if agent is not None:
                agent.close()
                agent = None
            progress.advance(task)
            progress.advance(overall)
        progress.update(task, status="done")
    except DeviceError as e:  # transport could not even be built
        ctx.store.log_event(ctx.run_id, f"device {name}: {e}", level="error")
        progress.update(task, status=f"[red]{e}")
    finally:
        if agent is not None:
            agent.close()
        transport.close()


def _run_job(
    ctx: RunContext,
    agent: AgentClient,
    transport: Any,
    job: dict[str, Any],
    options: dict[str, Any],
) -> None:
    variant = ctx.variants[(job["model"], job["variant"])]
    artifact = variant.artifact
    setting = job["setting"]
    m = ctx.suite.measure
    remote = transport.push(artifact.path, artifact.sha256, artifact.path.name)
    extra: dict[str, Any] = {}
    if setting.get("xnnpack") is not None:
        extra["xnnpack"] = setting["xnnpack"]
    if setting["runtime"] == "torch":
        # TorchScript archives do not declare their inputs; the export step recorded them.
        extra |= {
            "device": setting.get("device", "cpu"),
            "input_shapes": variant.meta.get("input_shapes"),
            "input_dtypes": variant.meta.get("input_dtypes"),
        }
    load = agent.load(
        remote,
        artifact.sha256,
        setting["runtime"],
        setting["threads"],
        setting.get("providers"),
        **extra,
    )
    sensor = choose_source(options, agent.facts)
    power_request = sampler_request(sensor, options) if sensor else None
    bench = agent.bench(
        power=power_request,
        timeout=m.timeout_s,
        warmup_runs=m.warmup_runs,
        warmup_min_s=m.warmup_min_s,
        min_runs=m.min_runs,
        min_duration_s=m.min_duration_s,
        repetitions=m.repetitions,
        max_runs=m.max_runs,
    )
    windows = [w["samples_s"] for w in bench["windows"]]
    summary = stats.summarize_windows(windows)
    head = summary.headline

    accuracy = _evaluate(ctx, variant, agent)

    metrics = latency_metrics(head) + [
        Metric("init", load.get("init_s"), "s"),
        Metric("first_inference", bench.get("first_inference_s"), "s"),
        Metric("timer_floor", bench.get("timer_floor_s"), "s"),
        Metric("warmup_count", bench["warmup"]["count"], "count"),
        Metric("warmup_time", bench["warmup"]["time_s"], "s"),
        Metric("peak_rss", bench.get("peak_rss_bytes"), "bytes"),
        Metric("rss_after_load", load.get("rss_after_load_bytes"), "bytes"),
        Metric("file_size", artifact.size_bytes, "bytes"),
    ]
    metrics += _accuracy_metrics(accuracy)

    throttling = _pi_throttling(transport, agent.facts)
    power = _power(bench, sensor) if sensor else None
    if power is not None:
        metrics += power.pop("metrics")

    provenance = _provenance(
        agent,
        variant,
        load.get("runtime"),
        load.get("runtime_version"),
        runner_version=agent.hello.get("agent_version"),
    )
    result = {
        "load": load,
        "bench": {k: v for k, v in bench.items() if k not in ("windows", "power")},
        "power": power,
        "throttling": throttling,
        "window_durations_s": [w.get("duration_s") for w in bench["windows"]],
        "summary": summary.to_dict(),
        "accuracy": accuracy,
    }
    ctx.store.finish_job(
        job["id"], result=result, provenance=provenance, windows=windows, job_metrics=metrics
    )


def _provenance(
    agent: AgentClient,
    variant: Variant,
    runtime: str | None,
    runtime_version: str | None,
    **extra: Any,
) -> dict[str, Any]:
    """Everything needed to tell later what exactly produced a job's numbers."""
    return {
        "model_sha256": variant.artifact.sha256,
        "runtime": runtime,
        "runtime_version": runtime_version,
        "device_fingerprint": fingerprint(agent.facts),
        "edgebench_version": __version__,
        "commit": git_commit(),
        "controller": platform.node(),
        "recipe": variant.recipe,
        "percentiles": stats.PERCENTILE_METHOD,
        "std_ddof": stats.STD_DDOF,
        **extra,
    }


def latency_metrics(head: stats.LatencySummary) -> list[Metric]:
    return [
        Metric("latency_p50", head.p50, "s"),
        Metric("latency_p90", head.p90, "s"),
        Metric("latency_p95", head.p95, "s"),
        Metric("latency_p99", head.p99, "s"),
        Metric("latency_mean", head.mean, "s"),
        Metric("latency_min", head.min, "s"),
        Metric("latency_max", head.max, "s"),
        Metric("latency_std", head.std, "s"),
        Metric("latency_cv", head.cv, "ratio"),
        Metric("latency_n", head.n, "count"),
        Metric("latency_ci_low", head.ci_low, "s"),
        Metric("latency_ci_high", head.ci_high, "s"),
        Metric("throughput", head.throughput, "1/s"),
    ]


def _run_trtexec_job(
    ctx: RunContext, agent: AgentClient, transport: Any, job: dict[str, Any]
) -> None:
    """TensorRT through trtexec on the device (the agent only supplies the facts)."""
    variant = ctx.variants[(job["model"], job["variant"])]
    artifact = variant.artifact
    m = ctx.suite.measure
    remote = transport.push(artifact.path, artifact.sha256, artifact.path.name)
    runner = TrtexecRunner(transport, agent.facts)
    sensor = choose_source(transport.device.options, agent.facts)
    power_request = sampler_request(sensor, transport.device.options) if sensor else None
    measured = runner.measure(
        remote,
        artifact.sha256,
        fingerprint(agent.facts),
        precision=job["setting"].get("precision", "fp32"),
        repetitions=m.repetitions,
        min_runs=m.min_runs,
        min_duration_s=m.min_duration_s,
        warmup_min_s=m.warmup_min_s,
        job_tag=f"job{job['id']}",
        power=power_request,
    )
    summary = stats.summarize_windows(measured.windows)
    metrics = latency_metrics(summary.headline) + [
        Metric("file_size", artifact.size_bytes, "bytes"),
    ]
    power = None
    if sensor and measured.power and measured.spans:
        as_bench = {
            "power": measured.power,
            "windows": [
                {"t0_s": t0, "t1_s": t1, "samples_s": w}
                for (t0, t1), w in zip(measured.spans, measured.windows, strict=True)
            ],
        }
        power = _power(as_bench, sensor)
        if power is not None:
            metrics += power.pop("metrics")
            power["clock"] = measured.power["clock"]
    elif sensor:
        power = {
            "source": sensor["kind"],
            "note": "only streaming sensors (tegrastats,"
            " nvidia-smi) are sampled during trtexec runs",
        }
    accuracy, accuracy_note = _engine_accuracy(
        ctx, variant, agent, transport, measured.engine, job["setting"].get("precision", "fp32")
    )
    metrics += _accuracy_metrics(accuracy)
    gpu = [s.gpu_compute_time.median_s for s in measured.summaries if s.gpu_compute_time]
    if gpu:
        metrics.append(Metric("gpu_compute_median", sorted(gpu)[(len(gpu) - 1) // 2], "s"))
    provenance = _provenance(
        agent,
        variant,
        "tensorrt",
        measured.trt_version,
        runner="trtexec",
        engine=measured.engine,
    )
    result = {
        "trtexec": {
            "engine": measured.engine,
            "engine_built": measured.engine_built,
            "trt_version": measured.trt_version,
            "build_log_tail": measured.build_log_tail,
            "throughput_qps": [s.throughput_qps for s in measured.summaries],
        },
        "summary": summary.to_dict(),
        "power": power,
        "accuracy": accuracy,
        "note": accuracy_note,
    }
    ctx.store.finish_job(
        job["id"],
        result=result,
        provenance=provenance,
        windows=measured.windows,
        job_metrics=metrics,
    )


def _accuracy_metrics(accuracy: dict[str, Any] | None) -> list[Metric]:
    if accuracy is None or accuracy.get("top1") is None:
        return []  # no labels, or not measured
    return [
        Metric("accuracy_top1", accuracy["top1"], "ratio"),
        Metric("accuracy_n", accuracy["count"], "count"),
    ]


def _evaluate(ctx: RunContext, variant: Variant, agent: AgentClient) -> dict[str, Any] | None:
    """Top-1 accuracy on the suite's split, computed by the agent with the loaded model."""
    acc_spec = ctx.suite.accuracy
    dataset_name = acc_spec.dataset if acc_spec else variant.dataset
    if not dataset_name:
        return None
    x, y = load_dataset(dataset_name).split(acc_spec.split if acc_spec else "test")
    if acc_spec and acc_spec.limit:
        x, y = x[: acc_spec.limit], (y[: acc_spec.limit] if y is not None else None)
    result = agent.evaluate(np.ascontiguousarray(x), y)
    return {k: v for k, v in result.items() if k != "outputs"}


def _engine_accuracy(
    ctx: RunContext,
    variant: Variant,
    agent: AgentClient,
    transport: Any,
    engine: str,
    precision: str,
) -> tuple[dict[str, Any] | None, str | None]:
    """Accuracy of the TensorRT engine itself, through the TensorRT Python API in the
    agent where the board has it (trtexec cannot compute accuracy). Timing stays
    trtexec's: the Python path adds copies and interpreter overhead."""
    if precision == "int8":
        return None, "int8 engine built without a calibration cache: accuracy not measured"
    sha = transport.remote_sha256(engine)
    try:
        load = agent.load(engine, sha, "tensorrt", device="cuda")
    except AgentError as e:
        if e.kind in ("missing_runtime", "load_failed"):
            return None, f"accuracy not measured: {e}"
        raise
    if load.get("io_memory") != "torch_cuda":
        return None, "accuracy not measured: the TensorRT Python API is not backed by CUDA"
    return _evaluate(ctx, variant, agent), None


def _pi_throttling(transport: Any, facts: dict[str, Any]) -> dict[str, Any] | None:
    """Raspberry Pi firmware flags and SoC temperature right after the bench: a
    throttled or under-voltage board measures the firmware, not the model."""
    vcgencmd = ((facts or {}).get("tools") or {}).get("vcgencmd")
    if not vcgencmd:
        return None
    try:
        throttled = rpi.parse_get_throttled(transport.run([vcgencmd, "get_throttled"], 30).stdout)
        temp = rpi.parse_measure_temp(transport.run([vcgencmd, "measure_temp"], 30).stdout)
    except (DeviceError, ValueError) as e:
        return {"error": str(e)}
    return {"flags": throttled.active, "ok": throttled.ok, "temp_c": temp}


def _power(bench: dict[str, Any], sensor: dict[str, Any]) -> dict[str, Any] | None:
    """Energy figures from the readings the agent took during the bench (sensor data,
    never estimated); the raw readings are kept for re-analysis."""
    raw = bench.get("power")
    if not raw:
        return None
    series = parse_readings(sensor["kind"], raw["readings"])
    out: dict[str, Any] = {
        "telemetry": telemetry_summary(sensor["kind"], raw["readings"]),
        "source": sensor["kind"],
        "rail": series.rail,
        "skipped_readings": series.skipped,
        "interval_ms": raw.get("interval_ms"),
        "errors": raw.get("errors"),
        "readings": raw["readings"],
        "metrics": [],
    }
    if len(series.samples) < 2:
        out["note"] = f"{len(series.samples)} usable power reading(s); no energy figures"
        return out
    windows = [(w["t0_s"], w["t1_s"], len(w["samples_s"])) for w in bench["windows"]]
    idle = tuple(raw["idle"]) if raw.get("idle") else None
    energy = window_energy(series.samples, windows, idle, rail=series.rail)
    out.update(
        {
            "note": energy.note,
            "coverage": energy.coverage,
            "sample_rate_hz": energy.sample_rate_hz,
            "sample_count": energy.sample_count,
        }
    )
    out["metrics"] = [
        Metric("mean_power", energy.mean_power_w, "W"),
        Metric("energy_per_inference", energy.energy_per_inference_j, "J"),
        Metric("idle_power", energy.idle_power_w, "W"),
        Metric("energy_per_inference_above_idle", energy.energy_per_inference_above_idle_j, "J"),
        Metric("power_sample_rate", energy.sample_rate_hz, "Hz"),
    ]
    return out


def variants_for_jobs(
    jobs: Sequence[dict[str, Any]], built: Sequence[Variant], cache: ArtifactCache
) -> dict[tuple[str, str], Variant]:
    """Map each job's variant to the exact artifact the run started with.

    On resume the suite is rebuilt (from cache); if a recipe changed since, the
    run still finishes with its original files, or refuses if they are gone.
    """
    by_name = {(v.model, v.name): v for v in built}
    out: dict[tuple[str, str], Variant] = {}
    for job in jobs:
        key = (job["model"], job["variant"])
        if key in out:
            continue
        current = by_name.get(key)
        if current is not None and current.artifact.sha256 == job["artifact_sha256"]:
            out[key] = current
            continue
        original = cache.lookup(job["artifact_sha256"])
        if original is None or current is None:
            raise RunError(
                f"variant {key[0]}/{key[1]} of this run ({job['artifact_sha256'][:12]}) is no"
                " longer in the artifact cache and the suite now builds something else"
            )
        out[key] = replace(current, artifact=original)
    return out


def new_run(
    ws: Workspace,
    store: Store,
    suite: Suite,
    suite_path: Path,
    variants: Sequence[Variant],
    devices: Sequence[dict[str, Any]],
) -> str:
    planned = plan_jobs(suite, variants, [d["name"] for d in devices])
    if not planned:
        raise RunError("the suite plans no jobs: no setting's runtime matches any variant's format")
    return store.create_run(
        suite_name=suite.name,
        suite_path=str(suite_path),
        suite=suite.model_dump(mode="json"),
        version=__version__,
        commit=git_commit(),
        host=platform.node(),
        planned_jobs=planned,
    )
