"""Mistaken and hostile input refused in one line, before any work, with exit code 2:
device names (one rule for `device add`, lab files and `import --device`), YAML that
would hang or silently lose a key, suite mistakes that used to surface mid-run, an
in-memory database that would lose every result, an empty `--resume`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Runner, make_runner


@pytest.fixture
def eb(tmp_path: Path) -> Runner:
    return make_runner(tmp_path / "home", tmp_path)


def _refused(proc, *names: str) -> str:  # noqa: ANN001 - a CompletedProcess
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgebench: error: "), proc.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


BAD_NAMES = ["", "a\nb", "x" * 201, "../../../tmp/x", "/abs/path", "a[/]b", "[red]x", ".hidden",
             "a b", "a;rm -rf x", "$(id)"]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_one_name_rule_everywhere_a_device_name_enters(
    eb: Runner, tmp_path: Path, name: str
) -> None:
    _refused(eb("device", "add", name, check=False), "is not allowed")
    lab = tmp_path / "lab.yaml"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    lab.write_text(f'version: 1\ndevices:\n  - name: "{quoted}"\n    transport: local\n')
    line = _refused(eb("lab", "import", str(lab), check=False), "lab.yaml")
    assert "devices.0.name" in line
    _refused(
        eb("import", "--tool", "trtexec", "--device", name, str(lab), check=False),
        "is not allowed",
    )
    assert "device" not in eb("device", "list", "--json").stdout.replace("[]", "")


def test_what_lab_export_writes_lab_import_takes(eb: Runner, tmp_path: Path) -> None:
    for name in ("pi-5.lab_2", "m4"):
        eb("device", "add", name, "--transport", "qemu" if name == "m4" else "local",
           *(["--board", "mps2-an386"] if name == "m4" else []))  # fmt: skip
    eb("lab", "export", str(tmp_path / "lab.yaml"))
    eb("device", "remove", "pi-5.lab_2")
    out = eb("lab", "import", str(tmp_path / "lab.yaml")).stdout
    assert "pi-5.lab_2" in out


def test_a_duplicate_yaml_key_names_both_lines(eb: Runner, tmp_path: Path) -> None:
    suite = tmp_path / "dup.yaml"
    suite.write_text("name: a\nmodels: [{name: m, builder: digits_cnn}]\nname: b\n")
    _refused(eb("variants", str(suite), check=False), "dup.yaml:3", "duplicate key 'name'",
             "first on line 1")  # fmt: skip


def test_billion_laughs_is_refused_quickly(eb: Runner, tmp_path: Path) -> None:
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    suite = tmp_path / "laughs.yaml"
    suite.write_text("\n".join(rows) + "\n")
    start = time.monotonic()
    _refused(eb("variants", str(suite), check=False, timeout=60), "laughs.yaml", "aliases")
    assert time.monotonic() - start < 30


def test_an_unknown_accuracy_dataset_is_found_when_the_suite_loads(
    eb: Runner, tmp_path: Path
) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nmodels: [{name: m, builder: digits_cnn}]\n"
        "variants: [{name: v, recipe: [export_onnx]}]\nsettings: [{runtime: onnxruntime}]\n"
        "accuracy: {dataset: digitz}\n"
    )
    _refused(eb("variants", str(suite), check=False), "s.yaml:5", "unknown dataset 'digitz'")


def test_unregistered_device_is_refused_before_building(eb: Runner) -> None:
    proc = eb("run", "digits", "--device", "nosuch", check=False)
    _refused(proc, "nosuch")
    assert "variant" not in proc.stderr  # nothing was built


def test_empty_resume_and_in_memory_database_are_refused(eb: Runner) -> None:
    _refused(eb("run", "digits", "--resume", "", check=False), "--resume needs a run id")
    for url in ("sqlite://", "sqlite:///"):
        _refused(eb("--db", url, "runs", "list", check=False), "in-memory database")


def test_hints_are_shell_quoted_and_names_print_as_written(eb: Runner) -> None:
    out = eb("device", "add", "lab.pi-5").stdout
    assert "`edgebench device check lab.pi-5`" in out


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (("--db", "mysql://u@h/db", "runs", "list"), "mysql is not supported"),
        (("--db", "::bad", "runs", "list"), "is not a database URL"),
        (("--db", "postgresql://u@localhost:99999/db", "runs", "list"), "invalid port"),
        (("lab", "export", "/nonexistent-dir/lab.yaml"), "folder /nonexistent-dir does not exist"),
        (("export", "latest", "--format", "csv", "-o", "/nonexistent-dir/a.csv"), "does not exist"),
        (
            (
                "infer",
                "m.tflite",
                "--device",
                "d",
                "--input",
                "x.npy",
                "-o",
                "/nonexistent-dir/y.npy",
            ),
            "m.tflite",
        ),
        (("compare", "a", "b", "--threshold", "p50=nan"), "finite number"),
        (("compare", "a", "b", "--threshold", "p50=inf"), "finite number"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_bad_paths_urls_and_thresholds(eb: Runner, argv: tuple[str, ...], names: str) -> None:
    _refused(eb(*argv, check=False), names)


def test_workspace_that_is_a_file_or_unusable(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    for home, names in ((afile, "is a file"), (Path("/proc/edgebench"), "cannot use it")):
        _refused(make_runner(home, tmp_path)("runs", "list", check=False), "EDGEBENCH_HOME", names)


def test_the_workspace_is_private_to_its_user(eb: Runner, tmp_path: Path) -> None:
    eb("device", "list")
    assert (tmp_path / "home").stat().st_mode & 0o077 == 0
