"""Progressive compression to a target: the stages a suite's ``progressive:`` section
expands to, and whether a stage's measured figures meet the target.

Stage 0 is the model as it is (exported); stage i applies the first i steps. The
``export`` steps are put in where a step needs an exported model after torch steps,
and appended to a stage whose chain still ends in a torch model, so every stage is
a file a device can run. ``harness/progressive.py`` builds and measures the stages
one at a time and stops at the first that meets the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from suites.schema import RecipeStep, TargetSpec, VariantSpec

if TYPE_CHECKING:
    from suites.schema import Suite


def _format_after(fmt: str, step: RecipeStep) -> str:
    from suites.recipes import SAME_FORMAT, STEPS

    produces = STEPS[step.name].produces
    return fmt if produces == SAME_FORMAT else produces


def _accepts(step: RecipeStep, fmt: str) -> bool:
    from suites.recipes import STEPS

    return fmt in STEPS[step.name].accepts


def progressive_model(suite: Suite) -> str:
    assert suite.progressive is not None
    return suite.progressive.model or suite.models[0].name


def stages(suite: Suite) -> list[VariantSpec]:
    """The stage variants, in order (names ``stage0-original``, ``stage1-<step>``, ...)."""
    spec = suite.progressive
    if spec is None:
        return []
    model = next(m for m in suite.models if m.name == progressive_model(suite))
    fmt = "torch" if model.builder else {"onnx": "onnx", "tflite": "tflite"}.get(
        str(model.file).rsplit(".", 1)[-1], "unknown"
    )
    out = []
    chain: list[RecipeStep] = []
    for i in range(len(spec.steps) + 1):
        if i:
            step = spec.steps[i - 1]
            if fmt == "torch" and not _accepts(step, fmt):
                # A step for an exported model after torch steps: export first.
                for export in spec.export:
                    chain.append(export)
                    fmt = _format_after(fmt, export)
            chain.append(step)
            fmt = _format_after(fmt, step)
        measured = list(chain)
        if fmt == "torch":
            measured += spec.export
        if not measured:  # a model file and no step yet: measured as it is
            measured = [RecipeStep(name="identity")]
        label = "original" if i == 0 else spec.steps[i - 1].name
        out.append(
            VariantSpec(
                name=f"stage{i}-{label}",
                recipe=measured,
                description=f"progressive stage {i}: " + " -> ".join(s.name for s in measured),
            )
        )
    return out


@dataclass(frozen=True)
class StageFigures:
    """What one stage measured on one device (None: not measured)."""

    device: str
    size_bytes: float | None
    latency_s: float | None
    peak_ram_bytes: float | None
    accuracy: float | None


def _fmt(name: str, value: float) -> str:
    if name.endswith("bytes"):
        return f"{value / 1024:.1f} KiB"
    if name.endswith("_s"):
        return f"{value * 1e3:.3f} ms"
    return f"{value:.2%}"


def gaps(target: TargetSpec, figures: list[StageFigures]) -> list[str]:
    """Each constraint a stage misses, with by how much ("size 157.3 KiB, needs <= 60.0
    KiB: 97.3 KiB over"); empty when the stage meets the target on every device."""
    checks = (
        ("size", "size_bytes", target.max_size_bytes, False),
        ("latency", "latency_s", target.max_latency_s, False),
        ("peak RAM", "peak_ram_bytes", target.max_peak_ram_bytes, False),
        ("accuracy", "accuracy", target.min_accuracy, True),
    )
    out = []
    for f in figures:
        for label, field_name, bound, at_least in checks:
            if bound is None:
                continue
            value = getattr(f, field_name)
            unit = field_name if field_name != "accuracy" else "fraction"
            if value is None:
                out.append(f"{label} on {f.device}: not measured")
            elif (value < bound) if at_least else (value > bound):
                miss = abs(value - bound)
                sign = ">=" if at_least else "<="
                out.append(
                    f"{label} on {f.device} {_fmt(unit, value)}, needs {sign} "
                    f"{_fmt(unit, bound)}: {_fmt(unit, miss)} {'short' if at_least else 'over'}"
                )
    return out
