"""Shared fixtures: run `edgebench` as a user would, in an isolated workspace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EDGEBENCH = str(Path(sys.executable).parent / "edgebench")
REPO = Path(__file__).resolve().parent.parent

# A quick version of the bundled digits suite: same model and variants (so the
# build cache is shared with the demo), much shorter measurement windows.
FAST_SUITE = """\
name: digits-fast
models:
  - name: digits_cnn
    builder: digits_cnn
    params: {seed: 0, epochs: 15}
variants:
  - name: fp32-onnx
    recipe: [export_onnx]
  - name: int8-onnx
    recipe: [export_onnx, {onnx_int8_static: {per_channel: true}}]
  - name: fp32-tflite
    recipe: [export_tflite]
  - name: int8dr-tflite
    recipe: [export_tflite, tflite_int8_dynamic]
settings:
  - runtime: onnxruntime
    threads: [1, 2]
  - runtime: litert
    threads: [1]
measure: {warmup_runs: 3, warmup_min_s: 0.0, min_runs: 20, min_duration_s: 0.02, repetitions: 3}
accuracy: {dataset: digits, split: test}
"""


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One EDGEBENCH_HOME per test session so that variants are built once."""
    return tmp_path_factory.mktemp("edgebench-home")


@pytest.fixture
def fast_suite(tmp_path: Path) -> Path:
    path = tmp_path / "digits-fast.yaml"
    path.write_text(FAST_SUITE)
    return path


Runner = Callable[..., subprocess.CompletedProcess]


def make_runner(home: Path, workdir: Path) -> Runner:
    """A function that runs the `edgebench` console script with ``home`` as
    EDGEBENCH_HOME and its own SQLite results database in ``workdir``."""
    env = {
        **os.environ,
        "EDGEBENCH_HOME": str(home),
        "EDGEBENCH_DB": f"sqlite:///{workdir / 'results.db'}",
        "COLUMNS": "200",  # rich tables unwrapped, so tests can read rows
    }

    def run(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [EDGEBENCH, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=workdir,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"edgebench {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    run.env = env  # type: ignore[attr-defined]
    return run


@pytest.fixture
def eb(shared_home: Path, tmp_path: Path) -> Runner:
    """Run the `edgebench` console script; each test gets its own results database."""
    return make_runner(shared_home, tmp_path)


def write_suite(path: Path, *, settings: str, measure: str, variants: str | None = None) -> Path:
    """FAST_SUITE's digits model (and its variants unless ``variants`` is given) with
    other settings and measurement rules: each a YAML block body or flow mapping."""
    head = FAST_SUITE.split("variants:")[0]
    body = (
        variants if variants is not None else FAST_SUITE.split("variants:")[1].split("settings:")[0]
    )
    path.write_text(
        f"{head}variants:{body}settings:\n{settings}measure: {measure}\n"
        "accuracy: {dataset: digits, split: test}\n"
    )
    return path


@pytest.fixture(scope="session")
def postgres_url():  # noqa: ANN201
    """URL of a real PostgreSQL server started for this test session."""
    import tempfile

    from tests.pg import PostgresServer, PostgresUnavailable

    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="edgebench-pg-"))
    os.chmod(root, 0o755)
    try:
        server = PostgresServer(root / "cluster")
    except PostgresUnavailable as e:
        pytest.skip(str(e))
    server.start()
    yield server.url
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def fresh_postgres_database(server_url: str) -> str:
    """A new, empty database on the session's server (one per test: no shared state)."""
    import uuid

    import sqlalchemy as sa

    from harness.store import _driver_url

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(_driver_url(server_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite (the default) and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'r.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres_url"))
