"""Recipe step: quantization-aware training (see suites/recipes.py for the step registry).

``qat`` fine-tunes the torch model with int8 fake quantization in the forward pass,
so the weights learn to live with the rounding that int8 inference applies, and
leaves a plain float module whose weights lie exactly on the int8 grid. It is
followed by an export and the usual int8 quantizer, which then reproduces the
trained grid::

    variants:
      - name: qat-int8-tflite
        recipe: [{qat: {epochs: 3}}, export_tflite, tflite_int8_full]
      - name: qat-int8-onnx
        recipe: [{qat: {epochs: 3}}, export_onnx, onnx_int8_static]

Why this route (torch 2.13, torchao 0.18, litert-torch 0.10, ai-edge-quantizer
0.10, onnxruntime 1.32):

* litert-torch's own QAT path (``PT2EQuantizer`` with ``is_qat=True``, then
  ``prepare_qat_pt2e`` / ``convert_pt2e`` and ``litert_torch.convert(...,
  quant_config=...)``) fails already while annotating the graph with these
  versions (its conv + batch-norm pattern is handed to ``torch.export.export``
  as a function, which torch 2.13 refuses).
* An eager ``torch.ao.quantization`` QAT model (``prepare_qat`` / ``convert``)
  becomes ``quantized::`` torch ops with packed weights: the TorchScript ONNX
  exporter writes it as a QDQ graph in torch's own scheme (qnnpack: uint8
  activations, not the int8 the PTQ variants use), but litert-torch cannot convert
  it (``torch.export`` fails on the packed conv parameters), so there is no LiteRT
  variant to compare.
* Fake quantization with torch's public ops (``torch.fake_quantize_per_channel_affine``
  for weights, ``torch.ao.quantization.FakeQuantize`` observers for activations)
  exports as a plain module, and the two quantizers this project already trusts
  (ai-edge-quantizer's ``static_wi8_ai8``, onnxruntime's ``quantize_static``)
  turn it into full-int8 LiteRT and int8 QDQ ONNX. The weight fake quantizer uses
  exactly their weight scheme (symmetric, per output channel, scale =
  max|w| / 127, range [-127, 127]), and the trained weights are left *snapped*
  to that grid: the quantizers compute the same scales from them and store the
  very integers QAT trained with. Activations use their scheme too (per-tensor
  asymmetric int8, the range including 0). Their ranges are *re-estimated*, not
  transferred: the downstream quantizer calibrates the QAT'd model on the
  calibration split with its own estimator (ai-edge-quantizer: a moving average
  of per-sample min/max; onnxruntime: min/max over the samples), exactly as it
  does for the PTQ variant. Transferring the ranges QAT learned (moving averages
  of per-batch min/max, recorded in ``meta["qat"]["activation_ranges"]``) would
  need a map from torch modules to the tensors of the converted graphs, which
  neither exporter gives (litert-torch fuses and renames ops; names are a
  convention, not an API). ``meta["qat"]["fake_quant_accuracy"]`` is what the
  fake-quantized model reached; the tests check that the int8 files reach it.

So a QAT variant and a PTQ variant of the same model differ only in the QAT
fine-tuning, and their accuracies can be put side by side.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from suites.datasets import Dataset
from suites.errors import BuildError
from suites.pruning import accuracy, record, torch_module, train
from suites.recipes import MAX_LR, BuildContext, SeededParams, Stage, step

# int8 ranges of the quantizers downstream: symmetric weights use [-127, 127] (LiteRT
# kernels and onnxruntime's symmetric QInt8 both leave -128 out), activations the full
# asymmetric [-128, 127].
WEIGHT_QMIN, WEIGHT_QMAX = -127, 127
ACTIVATION_QMIN, ACTIVATION_QMAX = -128, 127


def _weight_fake_quant(per_channel: bool) -> Any:
    """A parametrization that fake-quantizes a Conv/Linear weight as the int8 quantizers
    downstream will (symmetric, scale = max|w| / 127, per output channel or per tensor).

    The scale is taken from the current weight on every forward pass (no moving average)
    so that the final weights, snapped to the grid, give the quantizers the same scale."""
    import torch
    from torch import nn

    class WeightFakeQuant(nn.Module):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            w = weight.detach()
            if per_channel:
                bound = w.abs().amax(dim=tuple(range(1, w.dim())))
            else:
                bound = w.abs().amax().reshape(1)
            scale = (bound / WEIGHT_QMAX).clamp_min(1e-9).float()
            zero_point = torch.zeros(scale.shape, dtype=torch.int32)
            if per_channel:
                return torch.fake_quantize_per_channel_affine(
                    weight, scale, zero_point, 0, WEIGHT_QMIN, WEIGHT_QMAX
                )
            return torch.fake_quantize_per_tensor_affine(
                weight, scale, zero_point, WEIGHT_QMIN, WEIGHT_QMAX
            )

    return WeightFakeQuant()


def _activation_fake_quant() -> Any:
    """Per-tensor asymmetric int8 fake quantization with a moving-average min/max
    observer (torch's standard QAT activation observer)."""
    import torch
    from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

    return FakeQuantize(
        observer=MovingAverageMinMaxObserver,
        quant_min=ACTIVATION_QMIN,
        quant_max=ACTIVATION_QMAX,
        dtype=torch.qint8,
        qscheme=torch.per_tensor_affine,
    )


def _quantized_points(model: Any) -> list[tuple[str, Any]]:
    """(name, module) of the leaf modules whose output an int8 graph requantizes.

    Left out, to mirror what the int8 runtimes execute: a Conv/Linear directly
    followed by a ReLU/ReLU6 in the same Sequential (the activation is fused into the
    layer, only its output is quantized), and modules that keep their input's
    quantization (max pooling, flatten, dropout, identity)."""
    from torch import nn

    fused_activations = (nn.ReLU, nn.ReLU6)
    keeps_input_range = (
        nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.Unflatten,
        nn.Dropout, nn.Dropout2d, nn.Identity,
    )  # fmt: skip
    fused: set[int] = set()
    for parent in model.modules():
        if isinstance(parent, nn.Sequential):
            children = list(parent.children())
            for layer, nxt in zip(children, children[1:], strict=False):
                if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Linear) and isinstance(
                    nxt, fused_activations
                ):
                    fused.add(id(layer))
    points = []
    for name, m in model.named_modules():
        if list(m.children()) or id(m) in fused or isinstance(m, keeps_input_range):
            continue
        points.append((name, m))
    return points


class _FakeQuantized:
    """The fake-quant instrumentation of a model: weight parametrizations, an input
    fake quantizer and output fake quantizers (forward hooks), removable in one go."""

    def __init__(self, model: Any, per_channel: bool) -> None:
        from torch import nn
        from torch.nn.utils import parametrize

        self.model = model
        self.layers = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
        ]
        if not self.layers:
            raise BuildError("qat: the model has no Conv or Linear layer to quantize")
        # Found before the parametrizations are added: they are modules too, and would
        # count as points (and turn their layers into non-leaves).
        points = _quantized_points(model)
        for _, m in self.layers:
            parametrize.register_parametrization(m, "weight", _weight_fake_quant(per_channel))
        self.quantizers: dict[str, Any] = {"input": _activation_fake_quant()}
        self._hooks = [
            model.register_forward_pre_hook(
                lambda _m, args: (self.quantizers["input"](args[0]), *args[1:])
            )
        ]
        for name, m in points:
            fq = _activation_fake_quant()
            self.quantizers[name] = fq
            self._hooks.append(m.register_forward_hook(lambda _m, _in, out, fq=fq: fq(out)))

    def set(self, *, observe: bool, fake_quant: bool) -> None:
        for fq in self.quantizers.values():
            (fq.enable_observer if observe else fq.disable_observer)()
            (fq.enable_fake_quant if fake_quant else fq.disable_fake_quant)()

    def ranges(self) -> dict[str, list[float]]:
        """The learned activation range [min, max] of every quantization point."""
        return {
            name: [round(float(fq.activation_post_process.min_val), 6),
                   round(float(fq.activation_post_process.max_val), 6)]
            for name, fq in self.quantizers.items()
        }  # fmt: skip

    def remove(self) -> None:
        """Back to a plain module; the weights keep their fake-quantized (snapped) values."""
        from torch.nn.utils import parametrize

        for hook in self._hooks:
            hook.remove()
        for _, m in self.layers:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)


def _observe(model: Any, data: Dataset, batch_size: int = 64) -> None:
    """Initialise the activation observers on the calibration split, so that training
    starts from the ranges a post-training calibration would use."""
    import torch

    with torch.no_grad():
        for i in range(0, len(data.calibration_x), batch_size):
            model(torch.from_numpy(data.calibration_x[i : i + batch_size]))


class QatParams(SeededParams):
    epochs: int = Field(3, ge=1)
    # Fine-tuning of a trained model: well below a from-scratch learning rate.
    lr: float = Field(1e-4, gt=0, le=MAX_LR)
    batch_size: int = Field(64, ge=1)
    per_channel: bool = True


@step("qat", accepts=("torch",), produces="torch", params=QatParams)
def qat(stage: Stage, params: QatParams, ctx: BuildContext) -> Stage:
    """Quantization-aware training: fine-tune with int8 fake quantization of weights
    and activations on the train split, leave a float module whose weights lie on the
    int8 grid. Follow it with ``export_tflite, tflite_int8_full`` or ``export_onnx,
    onnx_int8_static`` (see the module docstring for why this route).

    Params: ``epochs`` (3), ``lr`` (1e-4, Adam), ``batch_size`` (64), ``seed`` (the
    build's), ``per_channel`` (true: one weight scale per output channel, as
    ``tflite_int8_full`` and ``onnx_int8_static`` with its default use; set false only
    before a per-tensor quantizer). Seeded and deterministic (same shuffling, same
    initial ranges from the calibration split).
    Meta ``qat``: epochs, lr, float accuracy before, fake-quantized accuracy after (what
    the int8 model should reach), the snapped float model's accuracy, and the learned
    activation ranges.
    """
    import torch

    model = torch_module(stage, "qat")
    data = ctx.dataset(stage)
    seed = params.seed_for(ctx)
    torch.manual_seed(seed)
    before = accuracy(model, data)

    fq = _FakeQuantized(model, params.per_channel)
    model.eval()
    fq.set(observe=True, fake_quant=False)
    _observe(model, data)
    fq.set(observe=True, fake_quant=True)
    train(model, data, epochs=params.epochs, lr=params.lr, seed=seed, batch_size=params.batch_size)
    fq.set(observe=False, fake_quant=True)  # train() leaves eval mode; ranges stay fixed now
    fake_quant_acc = accuracy(model, data)
    ranges = fq.ranges()
    fq.remove()
    model.eval()

    info = {
        "method": "fake-quant QAT (int8 weights and activations), weights snapped to the grid",
        "epochs": params.epochs,
        "lr": params.lr,
        "per_channel": params.per_channel,
        "accuracy_before": before,
        "fake_quant_accuracy": fake_quant_acc,
        "accuracy_after": accuracy(model, data),
        "activation_ranges": ranges,
    }
    label = f"QAT int8 ({params.epochs} epochs fake-quant fine-tuning)"
    return record(stage, model, "qat", info, label, data)
