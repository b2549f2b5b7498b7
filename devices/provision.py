"""Give a device a Python environment for the agent, from wheels the controller carries.

Lab boards often have no internet, so nothing is installed from an index on the device:

* :func:`download_wheels` runs ``pip download`` on the controller (binary wheels only,
  optionally for another platform / Python version, e.g. ``manylinux2014_aarch64`` and
  ``3.11`` for a 64-bit Arm board);
* :func:`setup_device` pushes every wheel of a directory to the device (content-addressed,
  so a second setup sends nothing new), creates ``<workdir>/venv`` (or ``venv``) with the
  device's own interpreter and installs the requested packages into it with
  ``pip install --no-index --find-links ...``. It returns the venv's python, which the
  caller stores as the device's ``python`` option so that the agent runs there.

Including a ``pip`` wheel among the wheels makes the setup independent of the device's
``ensurepip`` (Debian/Ubuntu without ``python3-venv`` lack it): the venv is then created
``--without-pip`` and pip is bootstrapped by running it from its own wheel.

pip on the device runs with ``PIP_CONFIG_FILE=/dev/null`` (set via ``env`` in argv, as
every command here is an argv list), so a board's own pip.conf (index URLs, constraints)
cannot change what gets installed.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from devices.errors import DeviceError
from devices.transport import CommandResult, PosixHost, sha256_file

PIP_ENV = [
    "env",
    "PIP_CONFIG_FILE=/dev/null",
    "PIP_DISABLE_PIP_VERSION_CHECK=1",
    "PIP_NO_INPUT=1",
]


class ProvisionError(DeviceError):
    """Downloading wheels or setting up the device's environment failed."""


def _tail(text: str, lines: int = 5) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def download_wheels(
    packages: list[str],
    dest: Path,
    *,
    platform: str | None = None,
    python_version: str | None = None,
    timeout: float = 900.0,
) -> list[Path]:
    """Download binary wheels for ``packages`` and their dependencies into ``dest``.

    ``platform`` is a pip platform tag (several may be given comma-separated, e.g.
    ``"manylinux2014_aarch64,linux_aarch64"``); ``python_version`` is like ``"3.11"``.
    Both default to the controller's own. Returns the wheels this call fetched (files
    already in ``dest`` with the same name are replaced).
    """
    if not packages:
        raise ValueError("no packages to download")
    dest.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
    ]
    for tag in (platform or "").split(","):
        if tag.strip():
            argv += ["--platform", tag.strip()]
    if python_version:
        argv += ["--python-version", python_version]
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        argv += ["--dest", tmp, "--", *packages]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"pip download did not finish within {timeout:g} s") from None
        if done.returncode != 0:
            raise ProvisionError(
                f"pip download {' '.join(packages)} failed (exit {done.returncode}): "
                f"{_tail(done.stderr or done.stdout)}"
            )
        fetched = []
        for wheel in sorted(Path(tmp).glob("*.whl")):
            target = dest / wheel.name
            os.replace(wheel, target)
            fetched.append(target)
    if not fetched:
        raise ProvisionError(f"pip download {' '.join(packages)} produced no wheels")
    return fetched


def _check(done: CommandResult, what: str, device: str) -> CommandResult:
    if done.returncode != 0:
        raise ProvisionError(
            f"{what} failed on the device (exit {done.returncode}): "
            f"{_tail(done.stderr or done.stdout)}",
            device=device,
        )
    return done


def setup_device(
    transport: PosixHost,
    packages: list[str],
    wheel_dir: Path,
    *,
    venv: str | None = None,
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """Create (or update) a venv on the device and install ``packages`` from the wheels
    in ``wheel_dir``; nothing is fetched from the network by the device.

    Running it again is cheap: wheels already on the device are not sent again, an
    existing venv with a working pip is reused, and pip skips what is installed.
    The venv is created with ``transport.python`` (the device's ``python`` option,
    default ``python3``). Returns ``{"venv", "python", "installed", "freeze", "wheels"}``:
    ``python`` is the venv's interpreter (set it as the device's ``python`` option),
    ``installed`` maps each distribution in the venv (``pip freeze --all``) to its version,
    ``wheels`` lists the wheels' paths on the device.
    """
    device = transport.device.name
    wheels = sorted(Path(wheel_dir).glob("*.whl"))
    if not wheels:
        raise ProvisionError(f"no wheels (*.whl) in {wheel_dir}", device=device)
    remote_wheels = [transport.push(w, sha256_file(w)) for w in wheels]
    find_links: list[str] = []
    for directory in dict.fromkeys(posixpath.dirname(r) for r in remote_wheels):
        find_links += ["--find-links", directory]

    venv_dir = venv or f"{transport.workdir}/venv"
    python = f"{venv_dir}/bin/python"
    base = transport.python
    pip_wheel = next(
        (r for w, r in zip(wheels, remote_wheels, strict=True) if w.name.startswith("pip-")),
        None,
    )

    ready = transport.run([python, "-m", "pip", "--version"], timeout=120).returncode == 0
    if ready:
        pass  # an earlier setup made it: only install what is missing
    elif pip_wheel is None:
        _check(transport.run([base, "-m", "venv", venv_dir], timeout=timeout), "venv", device)
        if transport.run([python, "-m", "pip", "--version"], timeout=120).returncode != 0:
            raise ProvisionError(
                f"the venv at {venv_dir} has no pip (the device's Python lacks ensurepip; "
                "install python3-venv there, or add a pip wheel to the wheel directory)",
                device=device,
            )
    else:
        _check(
            transport.run([base, "-m", "venv", "--without-pip", venv_dir], timeout=timeout),
            "venv --without-pip",
            device,
        )
        # A wheel is a zip with pip's package at its root: python can run pip from it.
        bootstrap = [*PIP_ENV, python, f"{pip_wheel}/pip", "install", "--no-index"]
        _check(
            transport.run([*bootstrap, *find_links, "pip"], timeout=timeout),
            "bootstrapping pip from its wheel",
            device,
        )

    if packages:
        install = [*PIP_ENV, python, "-m", "pip", "install", "--no-index", *find_links]
        _check(
            transport.run([*install, "--", *packages], timeout=timeout),
            f"pip install {' '.join(packages)}",
            device,
        )
    frozen = _check(
        transport.run([*PIP_ENV, python, "-m", "pip", "freeze", "--all"], timeout=300),
        "pip freeze",
        device,
    )
    freeze = [line.strip() for line in frozen.stdout.splitlines() if line.strip()]
    installed: dict[str, str] = {}
    for line in freeze:
        name, sep, version = line.partition("==")
        if sep:
            installed[name] = version
    return {
        "venv": venv_dir,
        "python": python,
        "installed": installed,
        "freeze": freeze,
        "wheels": remote_wheels,
    }
