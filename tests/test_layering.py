"""The layering of shared/DESIGN.md, enforced by reading every module's imports:
``devices``, ``runners``, ``suites`` and ``reports`` never import ``harness``;
``devices`` never imports ``runners``; ``reports`` imports no transport; the records
module imports only the standard library; the agent (copied to boards that have
nothing else) imports only the standard library and the runtimes it loads."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "devices", "runners", "suites", "reports")
AGENT = REPO / "runners" / "agent" / "edgebench_agent.py"
# What the agent may import besides the standard library: the runtimes it loads.
AGENT_RUNTIMES = {
    "numpy",
    "onnxruntime",
    "ai_edge_litert",
    "tflite_runtime",
    "tensorflow",
    "torch",
    "tensorrt",
}


def imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (at any depth in the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


FORBIDDEN = {
    "devices": ("harness", "runners", "suites", "reports"),
    "runners": ("harness", "suites", "reports"),
    "suites": ("harness", "runners", "reports", "devices"),
    "reports": ("harness", "devices", "suites"),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_upward(package: str) -> None:
    bad = []
    for path in modules(package):
        if path == AGENT:
            continue  # checked on its own below
        for name in imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    # reports renders the typed records and nothing else of runners.
    if package == "reports":
        for path in modules(package):
            bad += [
                f"{path.relative_to(REPO)} imports {n}"
                for n in imports(path)
                if n.startswith("runners") and n != "runners.records"
            ]
    assert not bad, "\n".join(bad)


def test_the_records_module_is_a_standard_library_leaf() -> None:
    names = {n.split(".")[0] for n in imports(REPO / "runners" / "records.py")}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names


def test_the_agent_imports_only_the_standard_library_and_its_runtimes() -> None:
    names = {n.split(".")[0] for n in imports(AGENT)}
    others = names - set(sys.stdlib_module_names) - {"__future__"} - AGENT_RUNTIMES
    assert not others, f"the agent imports {sorted(others)}"


def test_the_checker_sees_a_violation() -> None:
    """The rule is only as good as its parser: an upward import is found."""
    probe = REPO / "tests" / "data" / "layering_probe.py.txt"
    assert "harness.store" in imports(probe)
