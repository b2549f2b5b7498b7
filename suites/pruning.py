"""Recipe steps: pruning and fine-tuning (see suites/recipes.py for the step registry).

- ``prune_unstructured``: magnitude pruning of Conv/Linear weights (zeros in place;
  the tensor shapes, file size and dense MACs do not change, the zstd size does).
- ``prune_structured``: L1-norm pruning of Conv2d output channels that really removes
  them (a smaller module: fewer parameters and MACs).
- ``finetune``: train the current module on the dataset's train split, keeping
  zero weights at zero.

Every step works on a copy of the module (the base model is shared by all the
variants of a suite), records what it did in ``Stage.meta`` under its own key
(``pruning``, ``finetune``; ``pruning_2`` and so on when a chain repeats a step)
and appends a short label to ``meta["techniques"]``.

The training helpers here (:func:`train`, :func:`accuracy`, :func:`record`) are
also used by the low-rank and distillation steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import Field

from suites.datasets import Dataset
from suites.errors import BuildError
from suites.recipes import MAX_LR, BuildContext, SeededParams, Stage, step


# --------------------------------------------------------------------------- shared helpers
def torch_module(stage: Stage, step_name: str) -> Any:
    """A deep copy of the stage's torch module (never modify the caller's model)."""
    from torch import nn

    if stage.format != "torch" or not isinstance(stage.module, nn.Module):
        raise BuildError(f"step {step_name!r} needs a torch module, got a {stage.format} model")
    return copy.deepcopy(stage.module)


def prunable_layers(model: Any) -> list[tuple[str, Any]]:
    """(name, module) of the Conv1d/2d/3d and Linear layers, whose weights get pruned."""
    from torch import nn

    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
    ]


def sparsity_masks(model: Any) -> dict[str, Any]:
    """Masks (True = keep) of the prunable weights that hold exact zeros.

    A trained dense float weight has no exact zeros, so this finds the layers a
    pruning step sparsified.
    """
    masks = {}
    for name, m in prunable_layers(model):
        mask = m.weight.detach() != 0
        if not bool(mask.all()):
            masks[name] = mask
    return masks


def apply_masks(model: Any, masks: dict[str, Any]) -> None:
    import torch

    layers = dict(prunable_layers(model))
    with torch.no_grad():
        for name, mask in masks.items():
            layers[name].weight.mul_(mask)


def accuracy(model: Any, data: Dataset, split: str = "test") -> float:
    """Top-1 accuracy of a torch module on a dataset split (eval mode, no grad)."""
    import torch

    x, y = data.split(split)
    was_training = model.training
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), 512):
            preds.append(model(torch.from_numpy(x[i : i + 512])).argmax(1).numpy())
    model.train(was_training)
    return float((np.concatenate(preds) == y).mean())


def train(
    model: Any,
    data: Dataset,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 64,
    masks: dict[str, Any] | None = None,
    loss_fn: Callable[[Any, Any, Any], Any] | None = None,
) -> None:
    """Train ``model`` in place with Adam on the train split (seeded shuffling).

    ``masks`` (layer name -> bool tensor) are re-applied after every optimizer
    step so that pruned weights stay zero. ``loss_fn(logits, labels, idx)``
    replaces cross-entropy (``idx`` are the batch's indices into the train
    split, e.g. to look up teacher logits). The model is left in eval mode.
    """
    import torch
    from torch import nn

    if epochs <= 0:
        model.eval()
        return
    torch.manual_seed(seed)
    x = torch.from_numpy(data.train_x)
    y = torch.from_numpy(data.train_y)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if masks:
        apply_masks(model, masks)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            logits = model(x[idx])
            if loss_fn is None:
                loss = nn.functional.cross_entropy(logits, y[idx])
            else:
                loss = loss_fn(logits, y[idx], idx)
            loss.backward()
            opt.step()
            if masks:
                apply_masks(model, masks)
    model.eval()


def record(
    stage: Stage,
    module: Any,
    key: str,
    info: dict[str, Any],
    label: str,
    data: Dataset | None = None,
) -> Stage:
    """The next stage: ``module`` with ``info`` merged into the meta under ``key``.

    Earlier entries are kept: a repeated key becomes ``key_2``, ``key_3``...;
    ``label`` is appended to ``meta["techniques"]``; ``params`` and (when the
    model has a dataset) ``host_accuracy`` are updated to describe this module.
    """
    from suites.analysis import torch_stats

    meta = dict(stage.meta)
    name, n = key, 1
    while name in meta:
        n += 1
        name = f"{key}_{n}"
    stats = torch_stats(module, stage.example_input)
    meta[name] = info
    meta["techniques"] = [*meta.get("techniques", []), label]
    meta["params"] = stats["params"]
    meta["nonzero_params"] = stats["nonzero_params"]
    meta["macs"] = stats["macs"]
    if data is not None:
        meta["host_accuracy"] = accuracy(module, data)
    return replace(stage, format="torch", module=module, path=None, meta=meta)


def _dataset(stage: Stage, ctx: BuildContext, needed: bool) -> Dataset | None:
    if needed:
        return ctx.dataset(stage)  # BuildError when the model has no dataset
    return ctx.dataset(stage) if stage.dataset else None


# --------------------------------------------------------------------------- finetune
class FinetuneParams(SeededParams):
    epochs: int = Field(5, ge=0)
    lr: float = Field(1e-3, gt=0, le=MAX_LR)
    batch_size: int = Field(64, ge=1)
    keep_sparsity: bool = True


@step("finetune", accepts=("torch",), produces="torch", params=FinetuneParams)
def finetune(stage: Stage, params: FinetuneParams, ctx: BuildContext) -> Stage:
    """Fine-tune the model on the dataset's train split (Adam, cross-entropy).

    Params: ``epochs`` (5), ``lr`` (1e-3), ``batch_size`` (64), ``seed`` (0),
    ``keep_sparsity`` (true: the weights of Conv/Linear layers that hold exact
    zeros keep them, the mask is re-applied after every optimizer step).
    Meta ``finetune``: epochs, lr, masked layers, accuracy before/after.
    """
    epochs, lr, batch_size, seed = params.epochs, params.lr, params.batch_size, params.seed_for(ctx)
    model = torch_module(stage, "finetune")
    data = ctx.dataset(stage)
    masks = sparsity_masks(model) if params.keep_sparsity else {}
    before = accuracy(model, data)
    train(model, data, epochs=epochs, lr=lr, seed=seed, batch_size=batch_size, masks=masks)
    info = {
        "epochs": epochs,
        "lr": lr,
        "masked_layers": sorted(masks),
        "accuracy_before": before,
        "accuracy_after": accuracy(model, data),
    }
    label = f"finetune {epochs} epochs" + (" (sparsity kept)" if masks else "")
    return record(stage, model, "finetune", info, label, data)


# --------------------------------------------------------------------------- unstructured
def _magnitude_masks(layers: list[tuple[str, Any]], sparsity: float, scope: str) -> dict[str, Any]:
    """Masks zeroing the ``sparsity`` fraction of smallest-|w| weights (ties: lowest index)."""
    import torch

    def smallest(flat: Any, k: int) -> Any:
        keep = torch.ones(flat.numel(), dtype=torch.bool)
        if k > 0:
            keep[torch.argsort(flat, stable=True)[:k]] = False
        return keep

    if scope == "layer":
        masks = {}
        for name, m in layers:
            w = m.weight.detach()
            k = round(sparsity * w.numel())
            masks[name] = smallest(w.abs().flatten(), k).reshape(w.shape)
        return masks
    flat = torch.cat([m.weight.detach().abs().flatten() for _, m in layers])
    keep = smallest(flat, round(sparsity * flat.numel()))
    masks, start = {}, 0
    for name, m in layers:
        n = m.weight.numel()
        masks[name] = keep[start : start + n].reshape(m.weight.shape)
        start += n
    return masks


class PruneUnstructuredParams(SeededParams):
    sparsity: float = Field(0.5, gt=0, lt=1)
    scope: Literal["global", "layer"] = "global"
    iterations: int = Field(1, ge=1)
    finetune_epochs: int = Field(0, ge=0)
    lr: float = Field(1e-3, gt=0, le=MAX_LR)


@step("prune_unstructured", accepts=("torch",), produces="torch", params=PruneUnstructuredParams)
def prune_unstructured(stage: Stage, params: PruneUnstructuredParams, ctx: BuildContext) -> Stage:
    """Magnitude pruning of the Conv/Linear weights to a target sparsity.

    Params: ``sparsity`` (0.5: fraction of those weights set to zero, in (0, 1)),
    ``scope`` ("global": one magnitude threshold over all the weights, so layers
    end up with different sparsities; "layer": every layer pruned to
    ``sparsity``), ``iterations`` (1: reach the target in N equal steps),
    ``finetune_epochs`` (0: epochs of fine-tuning after every pruning step,
    with the mask fixed), ``lr`` (1e-3), ``seed`` (0).
    Biases are not pruned. The result is a plain module: the zeros are in the
    weight tensors (no masks, hooks or parametrizations), so it exports as is.
    Meta ``pruning``: target and achieved sparsity (over the prunable
    weights), per-layer sparsity, accuracy before/after.
    """
    sparsity, scope, iterations = params.sparsity, params.scope, params.iterations
    ft_epochs, lr, seed = params.finetune_epochs, params.lr, params.seed_for(ctx)

    model = torch_module(stage, "prune_unstructured")
    layers = prunable_layers(model)
    if not layers:
        raise BuildError("prune_unstructured: the model has no Conv or Linear layer")
    data = _dataset(stage, ctx, needed=ft_epochs > 0)
    before = accuracy(model, data) if data else None
    for it in range(1, iterations + 1):
        masks = _magnitude_masks(layers, sparsity * it / iterations, scope)
        apply_masks(model, masks)
        if ft_epochs and data is not None:
            train(model, data, epochs=ft_epochs, lr=lr, seed=seed + it, masks=masks)

    total = sum(m.weight.numel() for _, m in layers)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    info = {
        "method": "unstructured magnitude",
        "scope": scope,
        "target_sparsity": sparsity,
        "sparsity": zeros / total,
        "prunable_weights": total,
        "iterations": iterations,
        "finetune_epochs": ft_epochs,
        "layers": {name: round(float((m.weight == 0).float().mean()), 4) for name, m in layers},
        "accuracy_before": before,
        "accuracy_after": accuracy(model, data) if data else None,
    }
    label = f"prune {sparsity:.0%} ({scope}, unstructured)"
    if iterations > 1:
        label += f" in {iterations} steps"
    if ft_epochs:
        label += f", {ft_epochs} finetune epochs/step"
    return record(stage, model, "pruning", info, label, data)


# --------------------------------------------------------------------------- structured
def _channel_preserving() -> tuple[type, ...]:
    """Modules that neither mix nor count channels: a pruned channel set passes through."""
    from torch import nn

    return (
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
        nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
        nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout,
        nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
    )  # fmt: skip


def _flatten_sequential(model: Any) -> list[Any]:
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise BuildError(
            "prune_structured can only rewire an nn.Sequential model (a straight chain of "
            f"layers); got {type(model).__name__}"
        )
    out = []
    for child in model.children():
        out.extend(_flatten_sequential(child) if isinstance(child, nn.Sequential) else [child])
    return out


def _is_depthwise(m: Any) -> bool:
    from torch import nn

    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def _consumers(mods: list[Any], i: int) -> tuple[list[int], tuple[str, int] | None]:
    """What reads conv ``i``'s output channels.

    Returns (indices of channel-wise followers to slice: BatchNorm2d, depthwise
    Conv2d; the consumer whose inputs shrink: ("conv", j) or ("linear", j), or
    None when the channels reach the model output and cannot be removed).
    """
    from torch import nn

    follow: list[int] = []
    passthrough = _channel_preserving()
    j = i + 1
    while j < len(mods):
        m = mods[j]
        if isinstance(m, nn.BatchNorm2d) or _is_depthwise(m):
            follow.append(j)
        elif isinstance(m, nn.PReLU) and m.num_parameters > 1:
            raise BuildError(f"prune_structured: cannot rewire a per-channel PReLU (layer {j})")
        elif isinstance(m, passthrough) or isinstance(m, nn.PReLU):
            pass
        elif isinstance(m, nn.Conv2d) and m.groups == 1:
            return follow, ("conv", j)
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise BuildError(f"prune_structured: Flatten at layer {j} must flatten dims 1..-1")
            k = j + 1
            while (
                k < len(mods)
                and isinstance(mods[k], passthrough)
                and not isinstance(
                    mods[k],
                    nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d,
                )
            ):
                k += 1
            if k < len(mods) and isinstance(mods[k], nn.Linear):
                return follow, ("linear", k)
            raise BuildError(
                f"prune_structured: Flatten at layer {j} is not followed by a Linear layer"
            )
        else:
            raise BuildError(
                f"prune_structured: cannot rewire channels through {type(m).__name__} "
                f"(layer {j}); supported: Conv2d, depthwise Conv2d, BatchNorm2d, activations, "
                "pooling, dropout, Flatten + Linear"
            )
        j += 1
    return follow, None


def _conv_like(old: Any, in_ch: int, out_ch: int, groups: int) -> Any:
    from torch import nn

    return nn.Conv2d(
        in_ch,
        out_ch,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        groups=groups,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )


def _remove_channels(mods: list[Any], i: int, n_keep: int) -> tuple[int, int]:
    """Keep the ``n_keep`` output channels of conv ``i`` with the largest L1 norm and
    rewire its followers and consumer in ``mods``. Returns (channels before, after)."""
    import torch
    from torch import nn

    conv = mods[i]
    c = conv.out_channels
    follow, consumer = _consumers(mods, i)
    if consumer is None or n_keep >= c:
        return c, c
    norms = conv.weight.detach().abs().sum(dim=(1, 2, 3))
    keep = torch.sort(torch.argsort(norms, descending=True, stable=True)[:n_keep]).values
    with torch.no_grad():
        new = _conv_like(conv, conv.in_channels, n_keep, 1)
        new.weight.copy_(conv.weight[keep])
        if conv.bias is not None:
            new.bias.copy_(conv.bias[keep])
        mods[i] = new
        for j in follow:
            old = mods[j]
            if isinstance(old, nn.BatchNorm2d):
                bn = nn.BatchNorm2d(
                    n_keep, eps=old.eps, momentum=old.momentum, affine=old.affine,
                    track_running_stats=old.track_running_stats,
                )  # fmt: skip
                if old.affine:
                    bn.weight.copy_(old.weight[keep])
                    bn.bias.copy_(old.bias[keep])
                if old.track_running_stats:
                    bn.running_mean.copy_(old.running_mean[keep])
                    bn.running_var.copy_(old.running_var[keep])
                    bn.num_batches_tracked.copy_(old.num_batches_tracked)
                mods[j] = bn
            else:  # depthwise conv: its channels follow
                dw = _conv_like(old, n_keep, n_keep, n_keep)
                dw.weight.copy_(old.weight[keep])
                if old.bias is not None:
                    dw.bias.copy_(old.bias[keep])
                mods[j] = dw
        kind, j = consumer
        old = mods[j]
        if kind == "conv":
            nxt = _conv_like(old, n_keep, old.out_channels, 1)
            nxt.weight.copy_(old.weight[:, keep])
            if old.bias is not None:
                nxt.bias.copy_(old.bias)
        else:  # Linear after Flatten: channel ch owns features [ch*hw, (ch+1)*hw)
            if old.in_features % c:
                raise BuildError(
                    f"prune_structured: Linear layer {j} has {old.in_features} inputs, "
                    f"not a multiple of the {c} channels of conv layer {i}"
                )
            hw = old.in_features // c
            feats = (keep[:, None] * hw + torch.arange(hw)[None, :]).reshape(-1)
            nxt = nn.Linear(
                len(feats), old.out_features, bias=old.bias is not None,
                device=old.weight.device, dtype=old.weight.dtype,
            )  # fmt: skip
            nxt.weight.copy_(old.weight[:, feats])
            if old.bias is not None:
                nxt.bias.copy_(old.bias)
        mods[j] = nxt
    return c, n_keep


class PruneStructuredParams(SeededParams):
    ratio: float = Field(0.5, gt=0, lt=1)
    iterations: int = Field(1, ge=1)
    finetune_epochs: int = Field(0, ge=0)
    lr: float = Field(1e-3, gt=0, le=MAX_LR)


@step("prune_structured", accepts=("torch",), produces="torch", params=PruneStructuredParams)
def prune_structured(stage: Stage, params: PruneStructuredParams, ctx: BuildContext) -> Stage:
    """L1-norm channel pruning of Conv2d output channels that really removes them.

    Params: ``ratio`` (0.5, in (0, 1): fraction of each conv's output channels
    removed, the ones with the smallest L1 weight norm; at least one channel is kept),
    ``iterations`` (1: reach the ratio in N equal steps), ``finetune_epochs``
    (0: epochs of fine-tuning after every step), ``lr`` (1e-3), ``seed`` (0).

    Works on nn.Sequential models (nested Sequentials are flattened into one):
    a pruned conv's channel set is carried through activations, pooling,
    dropout, BatchNorm2d and depthwise convs to the consumer, whose inputs are
    cut: the next Conv2d, or the first Linear after Flatten. Grouped
    (non-depthwise) convs and convs whose output is the model's output are left
    alone. Anything else on the path raises BuildError. Meta ``pruning``:
    channels before/after per conv (by index in the flattened sequence),
    params and MACs before/after, accuracy before/after.
    """
    from torch import nn

    from suites.analysis import torch_stats

    ratio, iterations = params.ratio, params.iterations
    ft_epochs, lr, seed = params.finetune_epochs, params.lr, params.seed_for(ctx)

    original = torch_module(stage, "prune_structured")
    mods = _flatten_sequential(original)
    targets = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d) and m.groups == 1]
    if not targets:
        raise BuildError("prune_structured: the model has no (non-grouped) Conv2d layer")
    for i in targets:
        _consumers(mods, i)  # fail before any work on an architecture we cannot rewire
    data = _dataset(stage, ctx, needed=ft_epochs > 0)
    before_stats = torch_stats(original, stage.example_input)
    before_acc = accuracy(original, data) if data else None
    c0 = {i: mods[i].out_channels for i in targets}
    channels: dict[str, list[int]] = {}
    model = nn.Sequential(*mods)
    for it in range(1, iterations + 1):
        for i in targets:
            n_keep = max(1, c0[i] - round(ratio * c0[i] * it / iterations))
            _, after = _remove_channels(mods, i, n_keep)
            channels[str(i)] = [c0[i], after]
        model = nn.Sequential(*mods)
        if ft_epochs and data is not None:
            train(model, data, epochs=ft_epochs, lr=lr, seed=seed + it)
    model.eval()
    after_stats = torch_stats(model, stage.example_input)
    info = {
        "method": "structured L1 channel",
        "ratio": ratio,
        "iterations": iterations,
        "finetune_epochs": ft_epochs,
        "channels": channels,
        "unpruned": [str(i) for i in targets if channels[str(i)][0] == channels[str(i)][1]],
        "params_before": before_stats["params"],
        "params_after": after_stats["params"],
        "macs_before": before_stats["macs"],
        "macs_after": after_stats["macs"],
        "accuracy_before": before_acc,
        "accuracy_after": accuracy(model, data) if data else None,
    }
    label = f"prune {ratio:.0%} of conv channels (structured, L1)"
    if iterations > 1:
        label += f" in {iterations} steps"
    if ft_epochs:
        label += f", {ft_epochs} finetune epochs/step"
    return record(stage, model, "pruning", info, label, data)
