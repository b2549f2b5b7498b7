"""Run one `edgebench` command in this process with timestamps around the controller's
steps of every job, for benchmarks/overhead.py's breakdown of where a job's time goes.

    .venv/bin/python benchmarks/controller_trace.py TRACE.json run SUITE --device N --no-report

It is `harness.cli.main(ARGS)`, the console script's own entry point, with wrappers
installed (from here, at run time: production code is not changed) around: the store's
mark_job_started / finish_job, the statistics (harness.figures), the agent runner's
measure and record building, pushes (hash check, copy), the SSH connect and each remote
command, the agent process start, every agent request (hello, load, bench, bye) and the
agent's stop. Each span records perf_counter start/end, its time exclusive of the spans
nested in it, the worker thread's CPU time, and the job it belongs to (the last job the
thread marked started). TRACE.json gets every span when the command ends. A wrapper
costs about a microsecond, nothing next to the milliseconds it times.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SPANS: list[dict[str, Any]] = []
_SPANS_LOCK = threading.Lock()
_thread = threading.local()  # .stack: open spans; .job: the job this thread works on

Labeller = Callable[[tuple[Any, ...], dict[str, Any]], str]
Annotator = Callable[[Any, tuple[Any, ...], dict[str, Any]], dict[str, Any]]


def _stack() -> list[dict[str, Any]]:
    if not hasattr(_thread, "stack"):
        _thread.stack = []
    return _thread.stack  # type: ignore[no-any-return]


def traced(label: str | Labeller, annotate: Annotator | None = None) -> Callable[..., Any]:
    """Decorator: record a span around each call (see the module doc)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stack = _stack()
            span: dict[str, Any] = {
                "label": label if isinstance(label, str) else label(args, kwargs),
                "thread": threading.current_thread().name,
                "job": getattr(_thread, "job", None),
                "depth": len(stack),
                "children_s": 0.0,
                "cpu_start_s": time.thread_time(),
                "start": time.perf_counter(),
            }
            stack.append(span)
            try:
                result = fn(*args, **kwargs)
                if annotate is not None:
                    span.update(annotate(result, args, kwargs))
                return result
            finally:
                span["end"] = time.perf_counter()
                span["cpu_end_s"] = time.thread_time()
                stack.pop()
                duration = span["end"] - span["start"]
                span["exclusive_s"] = duration - span["children_s"]
                if stack:
                    stack[-1]["children_s"] += duration
                with _SPANS_LOCK:
                    SPANS.append(span)

        return wrapper

    return decorate


def patch(owner: Any, name: str, label: str | Labeller, annotate: Annotator | None = None) -> None:
    """Replace ``owner.name`` (a function, method or classmethod) by its traced form."""
    original = owner.__dict__[name]
    if isinstance(original, classmethod):
        setattr(owner, name, classmethod(traced(label, annotate)(original.__func__)))
    else:
        setattr(owner, name, traced(label, annotate)(original))


def _job_started(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    # From here on, what this worker thread does is this job's.
    job_id = args[1] if len(args) > 1 else kwargs["job_id"]
    _thread.job = job_id
    return {"job": job_id}


def _finished(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"job": args[1] if len(args) > 1 else kwargs["job_id"]}


def _push_label(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    name = args[3] if len(args) > 3 else kwargs.get("name")
    return "push agent file" if name == "edgebench_agent.py" else "push model file"


def _request_label(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return f"agent request {args[1] if len(args) > 1 else kwargs['op']}"


def _request_facts(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What the agent itself timed inside a request: the runtime's init for load, the
    warm-up and the measured windows for bench."""
    op = args[1] if len(args) > 1 else kwargs["op"]
    if op == "load":
        return {"agent_init_s": result.get("init_s")}
    if op == "bench":
        windows = result.get("windows") or []
        return {
            "agent_warmup_s": (result.get("warmup") or {}).get("time_s"),
            "agent_windows_s": sum(w.get("duration_s") or 0.0 for w in windows),
            "agent_first_inference_s": result.get("first_inference_s"),
            "samples": sum(len(w.get("samples_s") or []) for w in windows),
        }
    return {}


def install() -> None:
    from devices.local import LocalTransport
    from devices.ssh import SSHTransport
    from devices.transport import PosixHost
    from harness import figures
    from harness.store import Store
    from runners.agent_client import AgentClient
    from runners.agent_runner import AgentRunner

    patch(Store, "mark_job_started", "job started", _job_started)
    patch(Store, "finish_job", "store: commit the job (finish_job)", _finished)
    patch(figures, "summarize", "statistics of the windows (figures.summarize)")
    patch(figures, "job_metrics", "metrics of the job (figures.job_metrics)")
    patch(AgentRunner, "measure", "runner: measure, own work")
    patch(AgentRunner, "_record", "runner: build the record")
    patch(PosixHost, "push", _push_label)
    patch(LocalTransport, "remote_sha256", "file hash check (sha256 on the device)")
    patch(SSHTransport, "remote_sha256", "file hash check (sha256 on the device)")
    patch(LocalTransport, "_copy_to_device", "copy a file to the device")
    patch(SSHTransport, "_copy_to_device", "copy a file to the device")
    patch(SSHTransport, "_connect", "ssh connect, host key check, login")
    patch(SSHTransport, "_run", "remote command (exec channel, login shell, command)")
    patch(LocalTransport, "open_stream", "start the agent process")
    patch(SSHTransport, "open_stream", "start the agent process")
    patch(AgentClient, "start", "agent start, own work")
    patch(AgentClient, "request", _request_label, _request_facts)
    patch(AgentClient, "close", "stop the agent (bye, wait for exit)")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    trace_path, args = Path(argv[0]), argv[1:]
    install()
    from harness import cli

    code: int | str | None = 0
    try:
        cli.main(args)
    except SystemExit as e:
        code = e.code
    finally:
        with _SPANS_LOCK:
            trace_path.write_text(json.dumps({"argv": args, "spans": SPANS}) + "\n")
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
