"""Recipe step: export_torchscript (see suites/recipes.py for the step registry).

``export_torchscript`` turns the torch module into a TorchScript archive,
``model.pt``, that the runner agent's ``torch`` runtime loads with
``torch.jit.load`` (no Python model code needed on the device). Use it as the
last step of a chain, after any torch-side compression::

    variants:
      - name: fp32-ts
        recipe: [export_torchscript]
      - name: pruned-ts
        recipe: [{prune_unstructured: {sparsity: 0.5}}, export_torchscript]
    settings:
      - runtime: torch
        device: cpu        # or cuda
        threads: [1, 4]

Parameters:

* ``method``: ``trace`` (default) runs the module once on the example input and
  records the ops it calls; ``script`` compiles the Python source and keeps
  data-dependent control flow. Tracing bakes in Python-level branches and the
  device of tensors the forward creates, so use ``script`` for such modules.
* ``freeze`` (default true): ``torch.jit.freeze`` inlines the weights as
  constants and folds what it can (e.g. conv + batch norm), which speeds up
  inference; the module is switched to ``eval()`` first. If freezing fails, the
  unfrozen module is saved and ``meta["torchscript"]["frozen"]`` says so.

The saved archive is loaded back and checked against the original module on
the example input (max absolute difference <= ``tolerance``, default 1e-5,
over a few runs, so that the JIT's optimised re-runs are checked too);
otherwise the step fails. TorchScript archives do not declare input shapes,
so the step records them in ``meta["input_shapes"]`` and
``meta["input_dtypes"]``: the host must send those with a torch ``load``
(runners/agent/PROTOCOL.md).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from suites.errors import BuildError
from suites.recipes import BuildContext, Stage, StepParams, step

log = logging.getLogger(__name__)

# Runs of the reloaded archive to compare: the profiling executor optimises the graph
# after the first run(s), so the later runs take a different code path.
_CHECK_RUNS = 3


def _tensors(value: Any) -> list[Any]:
    """The tensors of a forward() result in order (a tensor, or tuples/lists/dicts)."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    raise BuildError(f"export_torchscript: the model returns a {type(value).__name__}")


def _max_abs_diff(got: Any, want: Any) -> float:
    a, b = _tensors(got), _tensors(want)
    if len(a) != len(b):
        raise BuildError(f"export_torchscript: archive gives {len(a)} outputs, module {len(b)}")
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            raise BuildError(
                f"export_torchscript: archive output shape {list(x.shape)} "
                f"!= module output shape {list(y.shape)}"
            )
        if x.numel():
            worst = max(worst, float((x.double() - y.double()).abs().max()))
    return worst


class ExportTorchscriptParams(StepParams):
    method: Literal["trace", "script"] = "trace"
    freeze: bool = True
    tolerance: float = Field(1e-5, ge=0, le=1)


@step(
    "export_torchscript",
    accepts=("torch",),
    produces="torchscript",
    params=ExportTorchscriptParams,
)
def export_torchscript(stage: Stage, params: ExportTorchscriptParams, ctx: BuildContext) -> Stage:
    """torch -> TorchScript archive (model.pt) by tracing (or scripting) and freezing,
    checked by reloading it."""
    import numpy as np
    import torch

    method, want_freeze, tolerance = params.method, params.freeze, params.tolerance
    if stage.module is None:
        raise BuildError("export_torchscript needs a torch module")
    if stage.example_input is None:
        raise BuildError("export_torchscript needs the model's example input")
    example = np.ascontiguousarray(stage.example_input)
    x = torch.from_numpy(example.copy())

    module = stage.module.eval()
    out = ctx.out_dir / "model.pt"
    with warnings.catch_warnings():
        # torch >= 2.10 marks every torch.jit entry point deprecated; TorchScript is
        # still what a Python-free libtorch runtime loads.
        warnings.simplefilter("ignore", DeprecationWarning)
        with torch.no_grad():
            reference = module(x)
            if method == "trace":
                scripted = torch.jit.trace(module, (x,))
            else:
                scripted = torch.jit.script(module)
        scripted.eval()
        frozen = False
        if want_freeze:
            try:
                scripted = torch.jit.freeze(scripted)
                frozen = True
            except Exception as e:  # noqa: BLE001 - an unfreezable module is saved as is
                log.warning("export_torchscript: freeze failed, saving unfrozen: %s", e)
        torch.jit.save(scripted, str(out))

        loaded = torch.jit.load(str(out), map_location="cpu")
        loaded.eval()
        worst = 0.0
        with torch.inference_mode():
            for _ in range(_CHECK_RUNS):
                worst = max(worst, _max_abs_diff(loaded(x.clone()), reference))
    if not worst <= tolerance:  # also catches NaN
        raise BuildError(
            f"export_torchscript: the saved archive differs from the module by {worst:g} "
            f"(tolerance {tolerance:g}) on the example input"
        )

    techniques = [*(stage.meta.get("techniques") or []), "export TorchScript"]
    meta = {
        **stage.meta,
        "techniques": techniques,
        "torchscript": {
            "method": method,
            "frozen": frozen,
            "max_abs_diff": worst,
            "torch_version": torch.__version__,
        },
        # What the host sends in a torch load request: the archive does not say.
        "input_shapes": [list(example.shape)],
        "input_dtypes": [example.dtype.name],
    }
    return replace(stage, format="torchscript", path=out, module=None, meta=meta)
