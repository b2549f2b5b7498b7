"""Plan a run's jobs and execute them on the devices.

A job is one (model variant, runtime setting, device). Devices work in
parallel, one worker thread each; the jobs of one device run one after another
because they compete for the same CPU/memory. The runner that measures a job is
the one its runtime names in the runtime table (``suites/runtimes.py``); this
module knows no runtime. Each finished job is committed at once (see
``Store.finish_job``), so an interrupted run loses at most the job in flight,
and ``--resume`` picks up exactly the jobs that are not done.

A device whose connection fails on :data:`QUARANTINE_AFTER` jobs in a row is
quarantined: its remaining jobs are failed at once with the reason instead of
each waiting out its connection timeouts and retries (``--resume`` tries them
again).
"""

from __future__ import annotations

import platform
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from devices.errors import DeviceError, TransportError
from devices.transport import (
    DeviceConfig,
    McuTarget,
    PosixHost,
    Transport,
    make_transport,
    transport_class,
)
from harness import __version__, figures, stats
from harness.artifacts import ArtifactCache, Variant
from harness.errors import RunError, UsageError
from harness.store import Store
from harness.workspace import Workspace, git_commit
from runners.base import (
    EvalSet,
    Job,
    MeasureRules,
    ModelFile,
    Runner,
    runner_class,
    runner_names,
)
from suites.datasets import load_dataset
from suites.runtimes import get_runtime
from suites.schema import Suite

QUARANTINE_AFTER = 3  # consecutive jobs whose device could not be reached

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
    if setting.get("optimize") and setting["optimize"] != "O2":
        label += f" -{setting['optimize']}"
    if setting.get("dsp") is False:
        label += " no-dsp"
    if setting.get("delegate") and setting["delegate"] not in ("none", "xnnpack"):
        label += f" {setting['delegate']}"
    if setting.get("cores") and setting["cores"] != "all":
        label += f" cores={setting['cores']}"
    if setting.get("op_profiling"):
        label += " op-profiling"
    if setting.get("cpus") is not None:
        label += f" cpus={setting['cpus']}"
    return label


def serves(runtime_name: str, transport_name: str) -> bool:
    """Can the runner of this runtime drive a device on this transport?"""
    runner = runner_class(get_runtime(runtime_name).runner)
    return issubclass(transport_class(transport_name), runner.serves)


def plan_jobs(
    suite: Suite, variants: Sequence[Variant], devices: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every compatible variant x setting x device, in a stable order: the runtime
    loads the variant's format and its runner drives the device's transport."""
    planned = []
    for row in devices:
        device = row["name"]
        for v in variants:
            for s in suite.settings:
                if v.format not in get_runtime(s.runtime).formats:
                    continue
                if not serves(s.runtime, row["transport"]):
                    continue
                for setting in s.job_settings():
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
        # A usage mistake (exit 2), whether the command line or the suite named them.
        raise UsageError(
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
    runners: dict[str, Runner] = field(default_factory=dict)  # in flight, by device
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
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}", markup=False),
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
                for runner in ctx.runners.values():
                    runner.kill()  # in-flight requests fail at once; those jobs stay pending
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


def _error_record(e: BaseException, attempt: int) -> dict[str, Any]:
    return {
        "type": type(e).__name__,
        "message": str(e),
        "kind": getattr(e, "kind", None),
        "attempt": attempt,
    }


def _device_worker(
    ctx: RunContext,
    row: dict[str, Any],
    jobs: list[dict[str, Any]],
    progress: Progress,
    task: Any,
    overall: Any,
) -> None:
    name = row["name"]
    runners: dict[str, Runner] = {}
    stored_facts: dict[str, Any] | None = None
    unreachable = 0  # consecutive jobs that failed on the connection
    transport: Transport | None = None
    try:
        transport = make_transport(device_config(row), ctx.ws.home)
    except DeviceError as e:  # the transport could not even be built (bad address, option)
        ctx.store.log_event(ctx.run_id, f"device {name}: {e}", level="error")
        progress.update(task, status=f"failed: {e}")
        for job in jobs:
            ctx.store.fail_job(job["id"], _error_record(e, 0), final=True)
        return
    try:
        for job in jobs:
            if ctx.stop.is_set():
                return
            progress.update(task, status=f"{job['variant']} {setting_label(job['setting'])}")
            if unreachable >= QUARANTINE_AFTER:
                why = RunError(
                    f"device {name} quarantined: {unreachable} jobs in a row could not reach it"
                    " (resume the run once it is back)"
                )
                ctx.store.fail_job(job["id"], _error_record(why, 0), final=True)
                progress.advance(task)
                progress.advance(overall)
                continue
            runner_name = get_runtime(job["runtime"]).runner
            for attempt in range(ctx.suite.retries + 1):
                if attempt and ctx.stop.wait(ctx.suite.retry_backoff_s * 2 ** (attempt - 1)):
                    return  # interrupted while backing off: the job stays pending
                if ctx.stop.is_set():
                    return
                # Counted before connecting: a board that cannot be reached is an attempt too.
                ctx.store.mark_job_started(job["id"])
                try:
                    runner = runners.get(runner_name)
                    if runner is None:
                        runner = runners[runner_name] = runner_class(runner_name)(transport)
                    with ctx.lock:
                        ctx.runners[name] = runner
                    _run_job(ctx, runner, job)
                    unreachable = 0
                    break
                except DeviceError as e:
                    if ctx.stop.is_set():
                        return  # interrupted, not failed: the job stays pending
                    final = attempt == ctx.suite.retries
                    if final:
                        unreachable = unreachable + 1 if isinstance(e, TransportError) else 0
                    ctx.store.fail_job(job["id"], _error_record(e, attempt + 1), final=final)
                    ctx.store.log_event(
                        ctx.run_id,
                        f"{job['key']}: attempt {attempt + 1} failed: {e}",
                        level="error" if final else "warning",
                        job_id=job["id"],
                    )
                except Exception as e:  # noqa: BLE001 - a bug or an unforeseen mistake
                    # Not a device problem, so no retry; but the job is failed with the
                    # cause (and the traceback in the run's log), never left pending, and
                    # the device's other jobs go on.
                    ctx.store.fail_job(job["id"], _error_record(e, attempt + 1), final=True)
                    ctx.store.log_event(
                        ctx.run_id,
                        f"{job['key']}: {type(e).__name__}: {e}\n{traceback.format_exc()}",
                        level="error",
                        job_id=job["id"],
                    )
                    break
                finally:
                    facts = runners[runner_name].facts if runner_name in runners else None
                    if facts and facts != stored_facts:
                        ctx.store.set_device_facts(name, facts)
                        stored_facts = facts
            progress.advance(task)
            progress.advance(overall)
        progress.update(task, status="done")
    finally:
        with ctx.lock:
            ctx.runners.pop(name, None)
        for runner in runners.values():
            runner.close()
        transport.close()


def probe_runner(transport: Transport) -> Runner:
    """The runner that asks a device what it is (``device check``)."""
    if isinstance(transport, PosixHost):
        return runner_class("agent")(transport)
    if isinstance(transport, McuTarget):
        return runner_class("mcu")(transport)
    # Any other transport: the first registered runner that drives it (a phone: android).
    for name in runner_names():
        cls = runner_class(name)
        if cls.serves is not PosixHost and isinstance(transport, cls.serves):
            return cls(transport)
    raise RunError(
        f"device {transport.device.name}: no runner can probe a {transport.name!r} device"
    )


def make_job(ctx: RunContext, job: dict[str, Any]) -> Job:
    """What a runner needs for one stored job."""
    variant = ctx.variants[(job["model"], job["variant"])]
    artifact = variant.artifact
    return Job(
        id=job["id"],
        key=job["key"],
        model=ModelFile(
            path=artifact.path,
            sha256=artifact.sha256,
            format=artifact.format,
            size_bytes=artifact.size_bytes,
            meta=variant.meta,
        ),
        setting=job["setting"],
        measure=MeasureRules(**ctx.suite.measure.model_dump()),
        evaluation=_evaluation(ctx, variant),
        provenance={
            "edgebench_version": __version__,
            "commit": git_commit(),
            "controller": platform.node(),
            "recipe": variant.recipe,
            "percentiles": stats.PERCENTILE_METHOD,
            "std_ddof": stats.STD_DDOF,
        },
    )


def _evaluation(ctx: RunContext, variant: Variant) -> Callable[[], EvalSet] | None:
    """The suite's accuracy split (or the model's own dataset), loaded on demand."""
    spec = ctx.suite.accuracy
    dataset_name = spec.dataset if spec else variant.dataset
    if not dataset_name:
        return None

    def load() -> EvalSet:
        x, y = load_dataset(dataset_name).split(spec.split if spec else "test")
        if spec and spec.limit:
            x, y = x[: spec.limit], (y[: spec.limit] if y is not None else None)
        return EvalSet(x, y)

    return load


def _run_job(ctx: RunContext, runner: Runner, job: dict[str, Any]) -> None:
    spec = make_job(ctx, job)
    measurement = runner.measure(spec)
    summary = figures.summarize(measurement)
    ctx.store.finish_job(
        job["id"],
        measurement=measurement,
        summary=summary.to_dict() if summary else None,
        job_metrics=figures.job_metrics(measurement, summary, spec.model.size_bytes),
    )


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
    planned = plan_jobs(suite, variants, devices)
    if not planned:
        raise RunError(
            "the suite plans no jobs: no setting's runtime matches any variant's format"
            " on these devices' transports"
        )
    return store.create_run(
        suite_name=suite.name,
        suite_path=str(suite_path),
        suite=suite.model_dump(mode="json"),
        version=__version__,
        commit=git_commit(),
        host=platform.node(),
        planned_jobs=planned,
    )
