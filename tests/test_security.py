"""Security by default, tested as an attacker would try it: model file names that are
shell syntax (spaces, quotes, `;`, `$()`, a newline) benchmarked on the local device
and over a real SSH server, and a grep of everything edgebench wrote (store, logs,
reports, exports) for the SSH private key it logged in with."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.sshd import SSHDUnavailable, SSHLab

pytestmark = pytest.mark.slow

# Every shell metacharacter that matters, and a newline: a command built by string
# pasting would run `touch PWNED-...` or split the argument.
HOSTILE = "we ird 'q' \"d\" $(touch PWNED-sub) `touch PWNED-tick`; touch PWNED-semi\nx.onnx"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLab]:
    try:
        the_lab = SSHLab(tmp_path_factory.mktemp("security"))
    except SSHDUnavailable as e:
        pytest.skip(str(e))
    yield the_lab
    the_lab.close()


def _pwned(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("PWNED*")]


def test_hostile_file_names_run_as_names_locally_and_over_ssh(
    eb: Runner, lab: SSHLab, tmp_path: Path
) -> None:
    # A model of its own (an artifact with these bytes exists under no other name).
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "hostile", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    hostile = tmp_path / "models" / HOSTILE
    hostile.parent.mkdir()
    onnx.save(model, str(hostile))
    board = lab.server("sec")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(board.known_hosts_line())
    remote_dir = tmp_path / "board"
    eb(
        "device", "add", "board", "--transport", "ssh", "--host", board.address,
        "--identity", str(lab.client_key), "--python", sys.executable,
        "--option", f"known_hosts={known_hosts}", "--option", f"workdir={remote_dir}",
    )  # fmt: skip
    eb("device", "add", "here", "--transport", "local", "--option", f"workdir={tmp_path / 'here'}")
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: hostile\n"
        f"models: [{{name: m, file: {json.dumps('models/' + HOSTILE)}}}]\n"
        "variants: [{name: v, recipe: [identity]}]\n"
        "settings: [{runtime: onnxruntime}]\n"
        "measure: {warmup_runs: 1, warmup_min_s: 0, min_runs: 5, min_duration_s: 0, "
        "repetitions: 1}\n"
    )
    eb("run", str(suite), "--device", "board", "--device", "here", "--no-report")
    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM jobs")]
    assert statuses == ["done", "done"]
    # The file arrived under its own name, and no part of it ran anywhere.
    for workdir in (remote_dir, tmp_path / "here"):
        (pushed,) = [p for p in workdir.rglob("*") if p.name == HOSTILE]
        assert pushed.read_bytes() == hostile.read_bytes()
    home = Path(eb.env["EDGEBENCH_HOME"])  # type: ignore[attr-defined]
    assert _pwned(tmp_path, home, Path.cwd(), Path("/tmp")) == []


def test_no_private_key_material_in_the_store_logs_reports_or_exports(
    eb: Runner, lab: SSHLab, tmp_path: Path
) -> None:
    board = lab.server("sec2")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(board.known_hosts_line())
    eb(
        "device", "add", "board", "--transport", "ssh", "--host", board.address,
        "--identity", str(lab.client_key), "--python", sys.executable,
        "--option", f"known_hosts={known_hosts}", "--option", f"workdir={tmp_path / 'b'}",
    )  # fmt: skip
    eb("device", "check", "board")
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: secret\n"
        "models: [{name: digits_cnn, builder: digits_cnn, params: {seed: 0, epochs: 15}}]\n"
        "variants: [{name: fp32-onnx, recipe: [export_onnx]}]\n"
        "settings: [{runtime: onnxruntime}]\n"
        "measure: {warmup_runs: 1, warmup_min_s: 0, min_runs: 5, min_duration_s: 0, "
        "repetitions: 1}\n"
    )
    eb("run", str(suite), "--device", "board", "--no-report")
    run_id = json.loads(eb("runs", "list", "--json").stdout)[0]["id"]
    eb("report", run_id, "-o", str(tmp_path / "report"))
    eb("export", run_id, "--format", "csv", "-o", str(tmp_path / "jobs.csv"))
    eb("lab", "export", str(tmp_path / "lab.yaml"))
    eb("publish", "-o", str(tmp_path / "site"))
    key_lines = [
        line.strip()
        for line in Path(lab.client_key).read_text().splitlines()
        if len(line.strip()) >= 20 and not line.startswith("-----")
    ]
    assert key_lines
    written = [
        Path(eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")),  # type: ignore[attr-defined]
        *[p for p in Path(eb.env["EDGEBENCH_HOME"]).rglob("*") if p.is_file()],  # type: ignore[attr-defined]
        *[
            p
            for p in tmp_path.rglob("*")
            if p.is_file() and p.suffix in (".html", ".csv", ".json", ".yaml")
        ],
    ]
    for path in written:
        data = path.read_bytes()
        for line in key_lines:
            assert line.encode() not in data, f"private key material in {path}"
