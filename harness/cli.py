"""The `edgebench` command line.

Commands are thin: they parse arguments, call the harness, and print. Every
user mistake ends as one line on stderr and a non-zero exit (see ``main``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table

from harness import __version__
from harness.errors import USER_FACING, UsageError, exit_code_for
from harness.store import Store, display_time
from harness.workspace import Workspace

app = typer.Typer(
    help="Benchmark compressed ML models on edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
device_app = typer.Typer(help="Register and inspect lab devices.", no_args_is_help=True)
lab_app = typer.Typer(
    help="Import/export the device registry as a YAML lab file.", no_args_is_help=True
)
runs_app = typer.Typer(help="List runs.", no_args_is_help=True)
app.add_typer(device_app, name="device")
app.add_typer(lab_app, name="lab")
app.add_typer(runs_app, name="runs")

# Piped output (CI logs, `| tee`) gets wide lines instead of rich's 80-column default,
# so that result tables stay one row per job.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
# No console markup: what is printed holds user strings (device, file, variant names)
# that must come out as written ("[red]x" is a name, not a colour, and "a[/]b" no crash).
console = Console(width=_PIPED_WIDTH, markup=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False)  # one line, never wrapped


class _State:
    db: str | None = None


state = _State()


# Invoked without a command too, so that `edgebench --version` alone reaches this
# callback instead of failing with "Missing command." before it.
@app.callback(invoke_without_command=True)
def _global(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Results database URL (default: SQLite in $EDGEBENCH_HOME; env EDGEBENCH_DB).",
        ),
    ] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"edgebench {__version__}", highlight=False, markup=False)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:  # e.g. `edgebench --db URL` and nothing else
        ctx.fail("Missing command.")
    state.db = db


def workspace() -> Workspace:
    return Workspace.from_env(db=state.db).ensure()


def open_store(ws: Workspace | None = None) -> Store:
    return Store((ws or workspace()).db_url)


def parse_pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r} is not of the form key=value")
        out[key] = value
    return out


def writable_file(path: Path, option: str) -> Path:
    """An output file the command can write: checked before any work, so that nothing
    computed is lost to a mistyped folder."""
    folder = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: folder {folder} is not writable")
    return path


def writable_folder(path: Path, option: str) -> Path:
    """An output folder: either a writable folder, or one that can be made in a
    writable parent."""
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{option} {path}: exists and is not a folder")
        if not os.access(path, os.W_OK):
            raise UsageError(f"{option} {path}: folder is not writable")
        return path
    parent = next((p for p in path.parents if p.exists()), Path("/"))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: cannot create it in {parent}")
    return path


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


# --------------------------------------------------------------------------- devices
@device_app.command("add")
def device_add(
    name: str,
    transport: Annotated[
        str, typer.Option(help="How to reach it: local, ssh, adb, qemu, serial, renode.")
    ] = "local",
    address: Annotated[
        str,
        typer.Option(
            "--address",
            "--host",
            help="Transport address (ssh: user@host[:port]; serial: /dev/ttyACM0, "
            "socket://host:port, rfc2217://host:port).",
        ),
    ] = "",
    board: Annotated[
        str | None,
        typer.Option(help="Microcontrollers: board profile (e.g. mps2-an386, nucleo-f746zg)."),
    ] = None,
    adb_serial: Annotated[
        str | None,
        typer.Option(help="Android: the phone's serial, through the adb server (adb devices)."),
    ] = None,
    adb_host: Annotated[
        str | None,
        typer.Option(help="Android: adbd over TCP, host:port (adb tcpip 5555), RSA key auth."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="k=v tag (repeatable).")] = None,
    device_type: Annotated[str | None, typer.Option("--type", help="Device type profile.")] = None,
    python: Annotated[str | None, typer.Option(help="Python the agent runs under.")] = None,
    identity: Annotated[Path | None, typer.Option(help="ssh: private key file.")] = None,
    proxy_jump: Annotated[
        str | None, typer.Option(help="ssh: reach the device through user@gateway[:port].")
    ] = None,
    trust_on_first_use: Annotated[
        bool, typer.Option(help="ssh: connect now and record an unknown host key in known_hosts.")
    ] = False,
    option: Annotated[list[str] | None, typer.Option(help="Transport option k=v.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace a device of the same name.")] = False,
) -> None:
    """Register a device."""
    from devices.errors import DeviceError
    from devices.names import name_problem
    from devices.transport import DeviceConfig, make_transport, transport_names

    if (problem := name_problem(name)) is not None:
        raise UsageError(problem)

    if transport not in transport_names():
        raise UsageError(f"unknown transport {transport!r} (known: {', '.join(transport_names())})")
    options: dict[str, Any] = parse_pairs(option, "--option")
    if python:
        options["python"] = python
    if identity:
        if not identity.expanduser().is_file():
            raise UsageError(f"--identity {identity}: no such file")
        options["identity_file"] = str(identity.expanduser().resolve())
    if proxy_jump:
        options["proxy_jump"] = proxy_jump
    if board:
        options["board"] = board
        device_type = device_type or board
    if adb_serial and adb_host:
        raise UsageError("--adb-serial and --adb-host are two routes to a phone: give one")
    if adb_serial or adb_host:
        if transport not in ("local", "adb"):
            raise UsageError(f"--adb-serial/--adb-host are for --transport adb, not {transport}")
        transport = "adb"
        options["serial" if adb_serial else "host"] = adb_serial or adb_host
    if transport == "ssh" and not address:
        raise UsageError("--transport ssh needs --host user@host[:port]")
    config = DeviceConfig(name=name, transport=transport, address=address, options=options)
    try:
        # Validates the address and options (no connection), before the workspace exists.
        checker = make_transport(config, Workspace.from_env(db=state.db).home)
    except DeviceError as e:
        raise UsageError(str(e)) from None  # a typo in the address is a usage mistake
    ws = workspace()
    store = open_store(ws)
    if store.get_device(name) is not None and not replace:
        checker.close()
        raise UsageError(f"device {name!r} already exists (use --replace)")
    if trust_on_first_use:
        # Connect once with TOFU so the key is recorded now, visibly; the option itself is
        # not stored, so a lost known_hosts file later is refused, not silently re-trusted.
        tofu = make_transport(
            DeviceConfig(
                name=name,
                transport=transport,
                address=address,
                options={**options, "trust_on_first_use": True},
            ),
            ws.home,
        )
        try:
            tofu.run(["true"], timeout=30)
        finally:
            tofu.close()
        console.print(
            f"recorded the host key of {address} in known_hosts (trust on first use)",
            highlight=False,
        )
    checker.close()
    store.add_device(
        {
            "name": name,
            "transport": transport,
            "address": address,
            "device_type": device_type,
            "tags": parse_pairs(tag, "--tag"),
            "options": options,
        },
        replace=replace,
    )
    console.print(
        f"added device {name} ({transport}); probe it with "
        f"`edgebench device check {shlex.quote(name)}`",
        highlight=False,
    )


@device_app.command("setup")
def device_setup(
    name: str,
    package: Annotated[
        list[str] | None, typer.Option(help="Package to install (repeatable; default: runtimes).")
    ] = None,
    wheels: Annotated[
        Path | None, typer.Option(help="Folder of wheels to carry over instead of downloading.")
    ] = None,
) -> None:
    """Provision a virtual environment with the runtimes on the device, from wheels the
    controller carries over (the device needs no internet), and use it from now on."""
    from devices.provision import download_wheels, setup_device
    from devices.transport import make_transport
    from harness.scheduler import device_config

    ws = workspace()
    store = open_store(ws)
    row = _get_device(store, name)
    facts = row["facts"] or {}
    if not facts:
        raise UsageError(f"run `edgebench device check {name}` first (setup needs its arch/python)")
    packages = package or ["numpy", "onnxruntime", "ai-edge-litert"]
    arch, py = facts.get("arch"), ".".join(str(facts.get("python", "")).split(".")[:2])
    if wheels is None:
        wheels = ws.home / "wheels" / f"{arch}-py{py}"
        same = arch == os.uname().machine and py == f"{sys.version_info[0]}.{sys.version_info[1]}"
        platform = None if same else f"manylinux2014_{arch},manylinux_2_28_{arch},linux_{arch}"
        with err_console.status(f"downloading wheels for {arch} / Python {py} ..."):
            download_wheels(packages, wheels, platform=platform, python_version=py)
    transport = make_transport(device_config(row), ws.home)
    try:
        with err_console.status(f"installing {', '.join(packages)} on {name} ..."):
            result = setup_device(transport, packages, wheels)
    finally:
        transport.close()
    options = {**(row["options"] or {}), "python": result["python"]}
    store.add_device(
        {
            **{k: row[k] for k in ("name", "transport", "address", "device_type", "tags")},
            "options": options,
        },
        replace=True,
    )
    store.set_device_facts(name, facts)
    console.print(
        f"{name}: venv {result['venv']} ready; agent python is now {result['python']}."
        f" Run `edgebench device check {name}` to see the runtimes.",
        highlight=False,
    )


@device_app.command("list")
def device_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List registered devices."""
    rows = open_store().list_devices()
    if as_json:
        print_json(rows)
        return
    table = Table("name", "transport", "address", "tags", "arch", "cpu", "checked")
    for r in rows:
        facts = r["facts"] or {}
        table.add_row(
            r["name"],
            r["transport"],
            r["address"] or "-",
            " ".join(f"{k}={v}" for k, v in r["tags"].items()) or "-",
            facts.get("arch", "-"),
            str(facts.get("cpu_model", "-")),
            display_time(r["checked_at"]) if r["checked_at"] else "never",
        )
    console.print(table)


def _get_device(store: Store, name: str) -> dict[str, Any]:
    row = store.get_device(name)
    if row is None:
        raise UsageError(f"no device {name!r} (see `edgebench device list`)")
    return row


@device_app.command("show")
def device_show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one device and what `check` found."""
    row = _get_device(open_store(), name)
    if as_json:
        print_json(row)
        return
    _print_device(row)


def _print_device(row: dict[str, Any]) -> None:
    table = Table(show_header=False)
    for key in ("name", "transport", "address", "device_type", "tags", "options", "checked_at"):
        table.add_row(key, json.dumps(row[key]) if isinstance(row[key], dict) else str(row[key]))
    for key, value in sorted((row["facts"] or {}).items()):
        shown = (
            ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
        )
        table.add_row(f"facts.{key}", str(shown))
    console.print(table)


@device_app.command("check")
def device_check(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Probe a device through its transport and store what was found."""
    from devices.transport import make_transport
    from harness.scheduler import device_config, probe_runner

    ws = workspace()
    store = open_store(ws)
    row = _get_device(store, name)
    transport = make_transport(device_config(row), ws.home)
    try:
        runner = probe_runner(transport)
        try:
            with console.status(f"probing {name} ..."):
                facts = runner.probe()
        finally:
            runner.close()
    finally:
        transport.close()
    store.set_device_facts(name, facts)
    row = _get_device(store, name)
    if as_json:
        print_json(row)
    else:
        _print_device(row)


@device_app.command("remove")
def device_remove(name: str) -> None:
    """Forget a device (its past results stay in the runs)."""
    if not open_store().remove_device(name):
        raise UsageError(f"no device {name!r}")
    console.print(f"removed device {name}")


@lab_app.command("import")
def lab_import(file: Path) -> None:
    """Add or update the devices of a lab file."""
    from harness.lab import import_lab

    names = import_lab(open_store(), file)
    console.print(f"imported {len(names)} device(s): {', '.join(names) or '-'}")


@lab_app.command("export")
def lab_export(file: Path) -> None:
    """Write the device registry to a lab file."""
    from harness.lab import export_lab

    count = export_lab(open_store(), writable_file(file, "lab export"))
    console.print(f"wrote {count} device(s) to {file}")


# --------------------------------------------------------------------------- suites and runs
def _build(suite_path: Path, ws: Workspace, store: Store) -> tuple[Any, list[Any]]:
    from harness.artifacts import ArtifactCache, build_variants
    from suites.schema import load_suite

    suite = load_suite(suite_path)
    # Progress goes to stderr, and so does what converters print (litert-torch writes
    # its progress to stdout), so that --json output on stdout stays parseable.
    with _stdout_to_stderr(), err_console.status("building variants ...") as status:

        def on_progress(label: str, cached: bool) -> None:
            status.update(f"building variants ... {label} {'(cached)' if cached else 'built'}")
            err_console.print(
                f"  variant {label}: {'cached' if cached else 'built'}", highlight=False
            )

        variants = build_variants(
            suite, suite_path.parent, ArtifactCache(ws, store), on_progress=on_progress
        )
    return suite, variants


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for a while (native code included)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def resolve_suite_path(ref: str) -> Path:
    """A path, or the name of a bundled suite (``digits``)."""
    from suites.schema import suite_path

    return suite_path(ref)


@app.command("variants")
def variants_cmd(suite: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Build (or take from cache) and list a suite's variants; runs nothing on devices."""
    ws = workspace()
    store = open_store(ws)
    _, variants = _build(resolve_suite_path(suite), ws, store)
    from harness.results import variant_facts
    from reports.tables import fmt_bytes, fmt_count

    rows = []
    for v in variants:
        facts = variant_facts(v.meta)
        rows.append(
            {
                "model": v.model,
                "variant": v.name,
                "recipe": v.recipe,
                "format": v.format,
                "size_bytes": v.artifact.size_bytes,
                "zstd_size_bytes": facts["zstd_size_bytes"],
                "params": facts["params"],
                "nonzero_params": facts["nonzero_params"],
                "macs": facts["macs"],
                "techniques": facts["techniques"],
                "accuracy_meaningful": facts["accuracy_meaningful"],
                "host_accuracy": v.meta.get("host_accuracy"),
                "sha256": v.artifact.sha256,
                "path": str(v.artifact.path),  # the built file, e.g. for `edgebench infer`
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(
        "variant", "recipe", "format", "size", "zstd", "params", "non-zeros", "MACs", "sha256"
    )
    for r in rows:
        table.add_row(
            f"{r['model']}/{r['variant']}",
            " → ".join(r["recipe"]),
            r["format"],
            fmt_bytes(r["size_bytes"]),
            fmt_bytes(r["zstd_size_bytes"]),
            fmt_count(r["params"]),
            fmt_count(r["nonzero_params"]),
            fmt_count(r["macs"]),
            r["sha256"][:12],
        )
    console.print(table)


def do_run(
    suite_ref: str,
    device: list[str] | None,
    tag: list[str] | None,
    resume: str | None,
    ws: Workspace,
    store: Store,
) -> str:
    from harness import scheduler
    from harness.artifacts import ArtifactCache
    from suites.schema import Suite

    suite_path = resolve_suite_path(suite_ref)
    if resume is not None and not resume.strip():
        raise UsageError("--resume needs a run id (see `edgebench runs list`)")
    if resume:
        run = store.resolve_run(resume)
        suite_obj = Suite.model_validate(run["suite"])  # the suite as it was, not as edited since
        from suites.schema import load_suite

        if load_suite(suite_path).name != suite_obj.name:
            raise UsageError(f"run {run['id']} is of suite {suite_obj.name!r}, not {suite_ref!r}")
        if run["status"] == "finished" and not store.jobs_for_run(run["id"], status="failed"):
            console.print(f"run {run['id']} is already complete")
            return run["id"]
        _, built = _build(Path(run["suite_path"]), ws, store)
        jobs = store.jobs_for_run(run["id"])
        variants = scheduler.variants_for_jobs(jobs, built, ArtifactCache(ws, store))
        reset = store.reset_failed_jobs(run["id"])
        devices = scheduler.select_devices(
            store, suite_obj, sorted({j["device"] for j in jobs}), {}
        )
        store.set_run_status(run["id"], "running")
        store.log_event(run["id"], f"resumed ({reset} failed job(s) retried)")
        run_id, suite = run["id"], suite_obj
        pending = len(store.jobs_for_run(run_id, status="pending"))
        console.print(f"resuming run {run_id}: {pending} job(s) left", highlight=False)
    else:
        from suites.schema import load_suite

        # Devices first: a mistyped --device is refused before minutes of building.
        devices = scheduler.select_devices(
            store, load_suite(suite_path), device or [], parse_pairs(tag, "--tag")
        )
        suite = load_suite(suite_path)
        if suite.progressive is not None:
            return _run_progressive(suite, suite_path, devices, ws, store)
        suite, built = _build(suite_path, ws, store)
        variants = {(v.model, v.name): v for v in built}
        run_id = scheduler.new_run(ws, store, suite, suite_path.resolve(), built, devices)
        total = len(store.jobs_for_run(run_id))
        names = ", ".join(d["name"] for d in devices)
        console.print(f"run {run_id}: {total} job(s) on {names}", highlight=False)

    ctx = scheduler.RunContext(ws=ws, store=store, suite=suite, run_id=run_id, variants=variants)
    try:
        status = scheduler.execute(ctx, devices, console)
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted; finished jobs are saved. Resume with: "
            f"edgebench run {shlex.quote(suite_ref)} --resume {shlex.quote(run_id)}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(130) from None
    failed = store.jobs_for_run(run_id, status="failed")
    for job in failed:
        err_console.print(
            f"failed {job['key']}: {job['error']['message']}",
            highlight=False,
        )
    console.print(f"run {run_id} {status}", highlight=False)
    return run_id


def _run_progressive(
    suite: Any, suite_path: Path, devices: list[dict[str, Any]], ws: Workspace, store: Store
) -> str:
    from harness.progressive import path_lines, run_progressive

    def on_progress(label: str, cached: bool) -> None:
        err_console.print(f"  variant {label}: {'cached' if cached else 'built'}", highlight=False)

    with _stdout_to_stderr():
        run_id = run_progressive(suite, suite_path, devices, ws, store, console, on_progress)
    console.print("progressive path (stage, device, size, accuracy, p50):", highlight=False)
    for line in path_lines(store, run_id, suite):
        console.print(line, highlight=False)
    console.print(f"run {run_id} {store.get_run(run_id)['status']}", highlight=False)
    return run_id


@app.command("run")
def run_cmd(
    suite: Annotated[str, typer.Argument(help="Suite file, or the name of a bundled suite.")],
    device: Annotated[list[str] | None, typer.Option(help="Device name (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Select devices by tag k=v.")] = None,
    resume: Annotated[str | None, typer.Option(help="Finish an interrupted run.")] = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report at the end.")] = True,
) -> None:
    """Run a suite on the selected devices."""
    ws = workspace()
    store = open_store(ws)
    run_id = do_run(suite, device, tag, resume, ws, store)
    _summarize(store, run_id, ws, write_html=report)
    # CI reads the exit code: a run with a failed or unfinished job is not a success.
    if store.jobs_for_run(run_id, status="failed") or store.jobs_for_run(
        run_id, status="pending"
    ):
        raise typer.Exit(1)
    from suites.schema import Suite

    ran = Suite.model_validate(store.get_run(run_id)["suite"])
    if ran.progressive is not None:
        from harness.progressive import outcome

        met, missing = outcome(store, run_id, ran)
        if met is None:
            err_console.print(
                "edgebench: progressive target never met; last stage: " + "; ".join(missing),
                highlight=False,
                markup=False,
            )
            raise typer.Exit(1)


def _summarize(
    store: Store,
    run_id: str,
    ws: Workspace,
    *,
    write_html: bool,
    out: Path | None = None,
    baseline: str | None = None,
    thresholds: dict[str, float] | None = None,
) -> Path | None:
    from harness.results import report_data
    from reports.quality import run_warnings
    from reports.tables import rich_summary

    data = report_data(store, run_id)
    for table in rich_summary(data):
        console.print(table)
    for warning in run_warnings(data):
        console.print(f"warning: {warning}", highlight=False)
    if baseline is not None:
        from harness.compare import compare_reports
        from reports.compare import format_text

        # With its raw samples: compare's U test needs both sides'.
        base = report_data(store, baseline)
        comparison = compare_reports(base, data, thresholds)
        data = data.replace(comparison=comparison)
        sys.stdout.write(format_text(comparison))
    if not write_html:
        return None
    from reports.html import write_report

    path = write_report(data, out or ws.reports_dir / data.run.id)
    console.print(f"report: {path}", highlight=False)
    return path


@runs_app.command("list")
def runs_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List runs, newest first."""
    rows = open_store().list_runs()
    if as_json:
        print_json(rows)
        return
    table = Table("run", "suite", "status", "jobs", "done", "failed", "created")
    for r in rows:
        table.add_row(
            r["id"],
            r["suite_name"],
            r["status"],
            str(r["jobs"] or 0),
            str(r["done"] or 0),
            str(r["failed"] or 0),
            display_time(r["created_at"]),
        )
    console.print(table)


@app.command("report")
def report_cmd(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, or 'latest'.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output folder.")] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Another run to judge this one against (as `compare`)."),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="With --baseline: NAME=VALUE, as for `compare`."),
    ] = None,
) -> None:
    """Write a self-contained HTML report of a run."""
    from harness.compare import parse_thresholds

    if output is not None:
        writable_folder(output, "-o")
    ws = workspace()
    store = open_store(ws)
    run_id = store.resolve_run(run)["id"]
    thresholds = parse_thresholds(threshold)
    if baseline is not None:
        baseline = store.resolve_run(baseline)["id"]  # a wrong id fails before any work
    _summarize(
        store, run_id, ws, write_html=True, out=output, baseline=baseline, thresholds=thresholds
    )


@app.command("compare")
def compare_cmd(
    run_a: Annotated[str, typer.Argument(help="The reference run: id, unique prefix or 'latest'.")],
    run_b: Annotated[str, typer.Argument(help="The run judged against it.")],
    fail_on_regression: Annotated[
        bool,
        typer.Option(
            "--fail-on-regression",
            help="Exit 1 when a job is worse or newly failing (CI gate).",
        ),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="text, md or json.")] = "text",
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            help="NAME=VALUE tolerance: percent for p50, p90, memory, size, energy; "
            "percentage points for accuracy (defaults: 5, 10, 5, 0, 0.5 pp, 10). "
            "NAME:PATTERN=VALUE: only for jobs whose MODEL/VARIANT matches the fnmatch "
            "PATTERN (the last matching one wins).",
        ),
    ] = None,
) -> None:
    """Compare two runs job by job and say what improved and what regressed.

    A p50 change counts only when significant: a Mann-Whitney U test on the raw
    samples (p < 0.002), or with fewer than 20 samples a side the 95% confidence
    intervals of the median not overlapping."""
    from harness.compare import compare_runs, parse_thresholds
    from reports.compare import format_markdown, format_text

    if fmt not in ("text", "md", "json"):
        raise UsageError(f"--format {fmt!r}: expected text, md or json")
    thresholds = parse_thresholds(threshold)
    store = open_store()
    result = compare_runs(store, run_a, run_b, thresholds)
    suite_a, suite_b = result["run_a"]["suite"], result["run_b"]["suite"]
    if suite_a != suite_b:
        err_console.print(
            f"edgebench: warning: the runs are of different suites ({suite_a!r} and "
            f"{suite_b!r}); jobs pair by device, model, variant and setting only",
            highlight=False,
        )
    for pattern in result["threshold_patterns"]:
        if not pattern["jobs"]:  # most likely a typo, which would otherwise be silence
            err_console.print(
                f"edgebench: warning: --threshold pattern {pattern['pattern']!r} "
                f"({pattern['metric']}) matches no job",
                highlight=False,
            )
    if fmt == "json":
        print_json(result)
    else:
        text = format_markdown(result) if fmt == "md" else format_text(result)
        sys.stdout.write(text)
    marks = result["marks"]
    if fail_on_regression and (marks["worse"] or marks["newly failing"]):
        n = result["regressions"]
        err_console.print(
            f"edgebench: {n} regression{'s' if n != 1 else ''} against {result['run_a']['id']}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix, or 'latest'.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or pytest-benchmark.")] = "csv",
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="File to write (csv and json: stdout without it)."),
    ] = None,
    samples: Annotated[
        bool,
        typer.Option("--samples", help="csv/parquet: one row per raw latency sample."),
    ] = False,
) -> None:
    """Write a run's figures for other tools: a CSV or Parquet table, or pytest-benchmark JSON."""
    import datetime as dt

    from harness.results import report_data
    from reports.export import (
        JOB_COLUMNS,
        SAMPLE_COLUMNS,
        job_records,
        pytest_benchmark_json,
        sample_records,
        write_csv,
        write_parquet,
    )

    if fmt not in ("csv", "parquet", "pytest-benchmark"):
        raise UsageError(f"--format {fmt!r}: expected csv, parquet or pytest-benchmark")
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs -o FILE (Parquet is binary)")
    if samples and fmt == "pytest-benchmark":
        raise UsageError("--samples is for csv and parquet")
    if output is not None:
        writable_file(output, "-o")
    store = open_store()
    data = report_data(store, run, samples=False)
    windows_of = store.job_samples
    if fmt == "pytest-benchmark":
        from harness.stats import pytest_benchmark_stats

        stats_of = {}
        for r in data.results:
            pooled = [x for w in windows_of(r.job_id) for x in w]
            if r.status == "done" and pooled:
                stats_of[r.job_id] = pytest_benchmark_stats(pooled)
        doc = pytest_benchmark_json(
            data, stats_of, dt.datetime.now(dt.UTC).isoformat(), __version__
        )
        text = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
        count = len(doc["benchmarks"])
    else:
        records = sample_records(data, windows_of) if samples else job_records(data)
        columns = SAMPLE_COLUMNS if samples else JOB_COLUMNS
        if fmt == "parquet":
            assert output is not None
            count = write_parquet(records, columns, output)
        elif output is None:
            count = write_csv(records, columns, sys.stdout)
        else:
            with output.open("w", newline="", encoding="utf-8") as f:
                count = write_csv(records, columns, f)
    if output is not None:
        what = "samples" if samples else ("benchmarks" if fmt == "pytest-benchmark" else "jobs")
        console.print(f"wrote {count} {what} to {output}", highlight=False)


@app.command("publish")
def publish_cmd(
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Site folder (default: $EDGEBENCH_HOME/site)."),
    ] = None,
    penalty: Annotated[
        float | None,
        typer.Option(
            "--penalty",
            help="Change-point penalty of the trend pages: higher finds fewer, larger steps "
            "(default 25; see README, 'Publishing a site of all runs').",
        ),
    ] = None,
) -> None:
    """Write a static site: an index of every run and each run's report, judged against
    the previous run of its suite, a trend page per job over runs with the steps found
    in it, and a page of every step. Run pages that have not changed are not rendered
    again."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from harness.publish import publish_site
    from harness.trends import DEFAULT_PENALTY, penalty_problem

    if penalty is None:
        penalty = DEFAULT_PENALTY
    elif (problem := penalty_problem(penalty)) is not None:
        raise UsageError(f"--penalty: {problem}")
    if output is not None:
        writable_folder(output, "-o")
    ws = workspace()
    store = open_store(ws)
    site = output or ws.home / "site"
    if site.exists() and not site.is_dir():
        raise UsageError(f"{site}: exists and is not a folder")
    total = len(store.list_runs())
    with Progress(
        TextColumn("publishing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}", markup=False),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=total)

        def on_page(run_id: str, rendered: bool) -> None:
            progress.update(task, advance=1, description=run_id if rendered else "")

        result = publish_site(store, site, on_page, penalty=penalty)
    console.print(
        f"{result['rendered']} run page(s) rendered, {result['up_to_date']} up to date; "
        f"{result['series']} series, {result['steps']} step(s) ({result['slower']} slower); "
        f"site: {result['index']}",
        highlight=False,
    )


@app.command("infer")
def infer_cmd(
    model: Annotated[Path, typer.Argument(help=".onnx or .tflite model file.")],
    device: Annotated[str, typer.Option(help="Device to run on.")],
    input: Annotated[Path, typer.Option("--input", help="Inputs as .npy, batch first.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write outputs (.npy).")
    ] = None,
    threads: Annotated[int, typer.Option(help="Runtime threads.")] = 1,
) -> None:
    """Run one model on one device on given inputs and return the outputs."""
    import hashlib

    import numpy as np

    from devices.transport import make_transport, sha256_file
    from harness.scheduler import device_config, serves
    from runners.base import ModelFile, runner_class
    from suites.runtimes import runtimes

    known = " or ".join(sorted({x for r in runtimes() for x in r.suffixes}))
    if model.suffix not in known.split(" or "):
        raise UsageError(f"{model}: model must be {known}")
    if not model.is_file():
        raise UsageError(f"{model}: no such file")
    if output is not None:
        writable_file(output, "-o")  # before the work: computed outputs are never lost
    try:
        x = np.load(input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"{input}: cannot read as .npy: {e}") from None
    ws = workspace()
    row = _get_device(open_store(ws), device)
    # The first runtime for this file suffix whose runner drives this kind of device
    # (LiteRT on a shell host, the MCU firmware on a microcontroller).
    runtime = next(
        (r for r in runtimes() if model.suffix in r.suffixes and serves(r.name, row["transport"])),
        None,
    )
    if runtime is None:
        raise UsageError(f"{model}: no runtime runs {model.suffix} files on device {device!r}")
    transport = make_transport(device_config(row), ws.home)
    setting = runtime.settings(runtime=runtime.name, threads=[threads]).job_settings()[0]
    file = ModelFile(model, sha256_file(model), runtime.formats[0], model.stat().st_size)
    try:
        runner = runner_class(runtime.runner)(transport)
        try:
            y = runner.infer(file, setting, x)
        except NotImplementedError as e:
            raise UsageError(f"device {device!r}: {e}") from None
        finally:
            runner.close()
    finally:
        transport.close()
    if output:
        np.save(output, y)
        console.print(
            f"wrote {output} shape={tuple(y.shape)} dtype={y.dtype} "
            f"sha256(outputs)={hashlib.sha256(y.tobytes()).hexdigest()[:16]}",
            highlight=False,
        )
    else:
        console.print(y)


@app.command("import")
def import_cmd(
    files: Annotated[
        list[Path], typer.Argument(help="Logs; for trtexec a times JSON follows its log.")
    ],
    tool: Annotated[
        str,
        typer.Option(help="Which tool wrote the files: trtexec, benchmark_model, ort-perf-test."),
    ],
    device: Annotated[str, typer.Option(help="Device the logs come from.")] = "imported",
) -> None:
    """Bring existing vendor-tool logs into a new run (one job per log)."""
    from devices.names import name_problem
    from harness.importer import import_logs

    if (problem := name_problem(device)) is not None:
        raise UsageError(f"--device: {problem}")
    ws = workspace()
    store = open_store(ws)
    run_id = import_logs(store, tool, files, device)
    console.print(
        f"imported {len(store.jobs_for_run(run_id))} log(s) as run {run_id}", highlight=False
    )
    _summarize(store, run_id, ws, write_html=False)


class EmulateTarget(StrEnum):
    mcu = "mcu"
    phone = "phone"


@app.command("emulate")
def emulate_cmd(
    target: Annotated[EmulateTarget, typer.Argument(help="What to emulate: mcu.")],
    board: Annotated[str, typer.Option(help="Board profile to emulate.")] = "mps2-an386",
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="TCP port: the MCU's UART (4555) or the phone's adbd (5555)."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Full-integer .tflite to run (default: the mcu suite's baseline)."),
    ] = None,
) -> None:
    """Run an emulated device in the foreground, for driving by hand or by another tool:
    an MCU's UART on socket://127.0.0.1:PORT (MLPerf Tiny's runner), or a phone's adbd
    (`adb connect 127.0.0.1:PORT`); Ctrl-C stops it."""
    if target is EmulateTarget.phone:
        from devices.emulators.adbd import run_foreground as run_phone

        if board != "mps2-an386" or model is not None:
            raise UsageError("--board and --model are for `emulate mcu`")
        run_phone(port or 5555)
        return
    port = port or 4555
    from devices.boards import BoardError, load_board
    from devices.transport import sha256_file
    from runners.base import ModelFile
    from runners.mcu.runner import NotDeployable, build_image

    try:
        spec = load_board(board)
    except BoardError as e:
        raise UsageError(f"--board: {e}") from None
    if not spec.qemu_machine:
        raise UsageError(f"--board {board}: QEMU does not emulate this board")
    if model is not None and not model.is_file():
        raise UsageError(f"--model {model}: no such file")
    ws = workspace()
    if model is None:
        suite, variants = _build(resolve_suite_path("mcu"), ws, open_store(ws))
        chosen = next(v for v in variants if v.name == suite.baseline)
        model = chosen.artifact.path
    file = ModelFile(model, sha256_file(model), "tflite", model.stat().st_size)
    try:
        with console.status(f"building the firmware for {board} ..."):
            firmware = build_image(file, spec, ws.home / "mcu").firmware
    except NotDeployable as e:
        raise UsageError(f"{model}: cannot run on {board}: {e}") from None
    from devices.qemu import run_foreground

    console.print(
        f"{spec.description}: UART on socket://127.0.0.1:{port} "
        f"(firmware {firmware.sha256[:12]}, model {model.name}); Ctrl-C stops it",
        highlight=False,
    )
    run_foreground(spec, firmware.elf, port)


@app.command("demo")
def demo_cmd() -> None:
    """Train a small CNN, make int8 variants, benchmark them here, write a report."""
    start = time.monotonic()
    ws = workspace()
    store = open_store(ws)
    if store.get_device("local") is None:
        store.add_device({"name": "local", "transport": "local", "tags": {"role": "controller"}})
        console.print("registered this machine as device local")
    device_check("local", as_json=False)
    devices = ["local"]
    # An emulated Cortex-M4 beside this machine, when QEMU and the Arm toolchain are
    # here (`make demo` installs them): the int8 variant runs on it as firmware.
    missing = [tool for tool in ("qemu-system-arm", "arm-none-eabi-gcc") if not shutil.which(tool)]
    if missing:
        console.print(
            f"no emulated MCU in this demo: {', '.join(missing)} not found "
            "(apt install qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi)",
            highlight=False,
        )
    else:
        if store.get_device("mcu-m4") is None:
            store.add_device(
                {
                    "name": "mcu-m4",
                    "transport": "qemu",
                    "device_type": "mps2-an386",
                    "tags": {"role": "emulated-mcu"},
                    "options": {"board": "mps2-an386"},
                }
            )
            console.print("registered an emulated Cortex-M4 (QEMU mps2-an386) as mcu-m4")
        device_check("mcu-m4", as_json=False)
        devices.append("mcu-m4")
    run_id = do_run("digits", devices, None, None, ws, store)
    _summarize(store, run_id, ws, write_html=True)
    console.print(f"demo finished in {time.monotonic() - start:.0f} s", highlight=False)


def disk_full(error: BaseException) -> str | None:
    """" (writing PATH)" / "" when ``error`` (or what caused it) is a full disk; else None."""
    import errno

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return f" (writing {seen.filename})" if seen.filename else ""
        # SQLite says so in words (sqlite3.OperationalError, wrapped by SQLAlchemy);
        # PostgreSQL's "could not extend file" names the same condition.
        text = str(seen)
        if "database or disk is full" in text or "No space left on device" in text:
            return " (the results database)"
        seen = seen.__cause__ or seen.__context__
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per user error, exit codes 0/1/2, no tracebacks for mistakes.

    A command-line mistake (unknown option, missing argument, bad value) prints
    ``edgebench: error: <message>``, then (where click knows the command) one line
    saying where its help is, and exits 2.
    """
    # typer 0.29 vendors click as `typer._click` and raises that copy's exceptions, which
    # are not real click's (its ClickException derives from typer.TyperException, its
    # Exit and Abort live in typer.exceptions); older typer raises real click's. Code a
    # command calls may raise either, so both are caught, each by its own classes.
    exits: tuple[type[Exception], ...] = (typer.Exit, click.exceptions.Exit)
    aborts: tuple[type[Exception], ...] = (typer.Abort, click.exceptions.Abort)
    no_args_help: tuple[type[Exception], ...] = ()
    if hasattr(click.exceptions, "NoArgsIsHelpError"):  # click >= 8.2
        no_args_help += (click.exceptions.NoArgsIsHelpError,)
    usage_errors: tuple[type[Exception], ...] = (click.exceptions.UsageError,)
    click_errors: tuple[type[Exception], ...] = (click.exceptions.ClickException,)
    try:
        from typer._click import exceptions as vendored
    except ImportError:  # a typer that raises real click's exceptions
        pass
    else:
        no_args_help += (vendored.NoArgsIsHelpError,)
        usage_errors += (vendored.UsageError,)
        click_errors += (vendored.ClickException,)

    def error_line(message: str) -> None:
        # One line even where click's message has several ("Choose from:\n\tmcu").
        message = " ".join(message.split())
        err_console.print(f"edgebench: error: {message}", highlight=False, markup=False)

    try:
        # Without standalone mode click *returns* the code of a typer.Exit.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except exits as e:
        sys.exit(e.exit_code)
    except aborts:
        err_console.print("aborted")
        sys.exit(130)
    except no_args_help as e:
        # `edgebench` or `edgebench device` alone: the help is the answer, exit 2 as click's.
        # typer's rich help prints itself while the exception is made and leaves the
        # message empty; plain click's help is the message.
        if e.format_message().strip():
            e.show()
        sys.exit(2)
    except usage_errors as e:
        error_line(e.format_message())
        ctx = e.ctx
        if ctx is not None and ctx.command.get_help_option(ctx) is not None:
            hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help."
            err_console.print(hint, highlight=False, markup=False)
        sys.exit(2)
    except click_errors as e:  # e.g. a FileError: one line, with the exception's own code
        error_line(e.format_message())
        sys.exit(e.exit_code)
    except USER_FACING as e:
        error_line(str(e))
        sys.exit(exit_code_for(e))
    except Exception as e:  # noqa: BLE001 - only a full disk is turned into one line
        where = disk_full(e)
        if where is None:
            raise
        # Not a bug and not the user's typo: the machine's. SQLite rolls the open
        # transaction back, so what was committed before stays (a run resumes).
        error_line(f"no space left on device{where}; free some and resume the run")
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
