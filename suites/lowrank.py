"""Recipe steps: low-rank factorization (see suites/recipes.py for the step registry).

``low_rank`` replaces a weight matrix W (out x in) by its truncated SVD
``W ~ (U_r sqrt(S_r)) (sqrt(S_r) V_r^T)``: one layer becomes two thinner ones,
which cuts parameters and MACs when ``r * (in + out) < in * out``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from suites.recipes import MAX_LR, BuildContext, SeededParams, Stage, step

DEFAULT_RANK_RATIO = 0.25


def _choose_rank(s: Any, rank_ratio: float | None, energy: float | None) -> int:
    """Rank from the singular values ``s`` (descending)."""
    import torch

    n = s.numel()
    if energy is not None:
        e = torch.cumsum(s.double() ** 2, 0) / (s.double() ** 2).sum().clamp_min(1e-300)
        r = int(torch.searchsorted(e, torch.tensor([energy], dtype=e.dtype) - 1e-12)[0]) + 1
    else:
        assert rank_ratio is not None
        r = math.ceil(rank_ratio * n - 1e-9)
    return max(1, min(n, r))


def _factorize(layer: Any, rank_ratio: float | None, energy: float | None) -> tuple[Any, dict]:
    """(nn.Sequential of two layers, info) for an nn.Linear or a 1x1 nn.Conv2d."""
    import torch
    from torch import nn

    w = layer.weight.detach()
    out_f, in_f = w.shape[0], w.shape[1]
    u, s, vh = torch.linalg.svd(w.reshape(out_f, in_f).double(), full_matrices=False)
    r = _choose_rank(s, rank_ratio, energy)
    energy_kept = float((s[:r] ** 2).sum() / (s**2).sum().clamp_min(1e-300))
    root = s[:r].sqrt()
    first_w = (root[:, None] * vh[:r]).to(w.dtype)  # r x in
    second_w = (u[:, :r] * root[None, :]).to(w.dtype)  # out x r
    bias = layer.bias is not None
    kw = {"device": w.device, "dtype": w.dtype}
    if isinstance(layer, nn.Linear):
        first = nn.Linear(in_f, r, bias=False, **kw)
        second = nn.Linear(r, out_f, bias=bias, **kw)
        first_w_shaped, second_w_shaped = first_w, second_w
    else:  # 1x1 conv: stride/padding on the first conv (zero padding stays zero without bias)
        first = nn.Conv2d(
            in_f, r, 1, stride=layer.stride, padding=layer.padding, bias=False,
            padding_mode=layer.padding_mode, **kw,
        )  # fmt: skip
        second = nn.Conv2d(r, out_f, 1, bias=bias, **kw)
        first_w_shaped = first_w[:, :, None, None]
        second_w_shaped = second_w[:, :, None, None]
    with torch.no_grad():
        first.weight.copy_(first_w_shaped)
        second.weight.copy_(second_w_shaped)
        if bias:
            second.bias.copy_(layer.bias)
    info = {
        "in": in_f,
        "out": out_f,
        "rank": r,
        "energy_kept": round(energy_kept, 6),
        "params_before": in_f * out_f + (out_f if bias else 0),
        "params_after": r * (in_f + out_f) + (out_f if bias else 0),
    }
    return nn.Sequential(first, second), info


class LowRankParams(SeededParams):
    rank_ratio: float | None = Field(None, gt=0, le=1)  # DEFAULT_RANK_RATIO if neither given
    energy: float | None = Field(None, gt=0, le=1)
    min_features: int = Field(16, ge=0)
    finetune_epochs: int = Field(0, ge=0)
    lr: float = Field(1e-3, gt=0, le=MAX_LR)

    @model_validator(mode="after")
    def _one_rank_rule(self) -> LowRankParams:
        if self.rank_ratio is not None and self.energy is not None:
            raise PydanticCustomError("rank_rule", "give either 'rank_ratio' or 'energy', not both")
        return self


@step("low_rank", accepts=("torch",), produces="torch", params=LowRankParams)
def low_rank(stage: Stage, params: LowRankParams, ctx: BuildContext) -> Stage:
    """Truncated-SVD factorization of nn.Linear and 1x1 nn.Conv2d layers.

    Each eligible layer becomes ``Sequential(Linear(in, r, bias=False),
    Linear(r, out))`` (for a 1x1 conv: two 1x1 convs, stride/padding on the
    first), keeping the original bias on the second. The rank is chosen by
    exactly one of ``rank_ratio`` (r = ceil(ratio * min(in, out)); the default,
    0.25) or ``energy`` (the smallest r whose singular values keep that fraction
    of the sum of squared singular values). Other params: ``min_features``
    (16: skip layers with min(in, out) below it), ``finetune_epochs`` (0),
    ``lr`` (1e-3), ``seed`` (0). A layer is only factorized when that reduces
    its parameters (r * (in + out) < in * out); grouped or non-1x1 convs are
    not touched. Meta ``low_rank``: per factorized layer in/out/rank/energy
    kept/params, skipped layers with the reason, params before/after.
    """
    from torch import nn

    from suites.analysis import torch_stats
    from suites.pruning import accuracy, record, torch_module, train

    energy = params.energy
    rank_ratio = None if energy is not None else params.rank_ratio or DEFAULT_RANK_RATIO
    min_features, ft_epochs = params.min_features, params.finetune_epochs
    lr, seed = params.lr, params.seed_for(ctx)

    model = torch_module(stage, "low_rank")
    data = ctx.dataset(stage) if (stage.dataset or ft_epochs) else None
    before_params = torch_stats(model, stage.example_input)["params"]
    before_acc = accuracy(model, data) if data else None
    layers: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.Linear):
            pass
        elif isinstance(m, nn.Conv2d):
            if tuple(m.kernel_size) != (1, 1) or m.groups != 1 or tuple(m.dilation) != (1, 1):
                continue  # only 1x1 convs are matrices
        else:
            continue
        out_f, in_f = m.weight.shape[0], m.weight.shape[1]
        label = name or "<root>"
        if min(in_f, out_f) < min_features:
            skipped[label] = f"min(in, out) = {min(in_f, out_f)} < min_features {min_features}"
            continue
        new, info = _factorize(m, rank_ratio, energy)
        if info["params_after"] >= info["params_before"]:
            skipped[label] = (
                f"rank {info['rank']} would not reduce params "
                f"({info['params_after']} >= {info['params_before']})"
            )
            continue
        layers[label] = info
        if not name:
            model = new
        else:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, new)
    if ft_epochs and data is not None:
        train(model, data, epochs=ft_epochs, lr=lr, seed=seed)
    model.eval()
    after_params = torch_stats(model, stage.example_input)["params"]
    info = {
        "rank_ratio": rank_ratio,
        "energy": energy,
        "min_features": min_features,
        "finetune_epochs": ft_epochs,
        "layers": layers,
        "skipped": skipped,
        "params_before": before_params,
        "params_after": after_params,
        "accuracy_before": before_acc,
        "accuracy_after": accuracy(model, data) if data else None,
    }
    how = f"energy {energy:g}" if energy is not None else f"rank ratio {rank_ratio:g}"
    if 0 < len(layers) <= 4:
        done = ", ".join(f"{k}: r={v['rank']}" for k, v in layers.items())
    else:
        ranks = [v["rank"] for v in layers.values()]
        done = f"{len(layers)} layers" + (f", r={min(ranks)}..{max(ranks)}" if ranks else "")
    label = f"low-rank SVD ({how}; {done})"
    if ft_epochs:
        label += f", {ft_epochs} finetune epochs"
    return record(stage, model, "low_rank", info, label, data)
