"""Model builder: MobileNetV3-Small (see suites/recipes.py for the builder registry).

Written from the paper in plain ``torch.nn`` (torchvision is not used), with
random weights: it is a realistic edge-sized network for latency, memory and
size measurements, not for accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from suites.recipes import Stage, builder

# "Searching for MobileNetV3" (Howard et al. 2019), Table 2, MobileNetV3-Small:
# (kernel, expansion size, output channels, SE, nonlinearity, stride) per bneck block.
SMALL_BNECKS: tuple[tuple[int, int, int, bool, str, int], ...] = (
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
)
STEM_CHANNELS = 16
LAST_CONV_CHANNELS = 576
HIDDEN_CHANNELS = 1024


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% down
    (the rule of the reference implementation, applied to every width)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _make_model(num_classes: int, width_mult: float) -> Any:
    import torch
    from torch import nn

    def act(kind: str) -> nn.Module:
        return nn.Hardswish() if kind == "HS" else nn.ReLU()

    def conv_bn(cin: int, cout: int, k: int, stride: int, groups: int, nl: str | None) -> Any:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=0.001, momentum=0.01),
        ]
        if nl is not None:
            layers.append(act(nl))
        return nn.Sequential(*layers)

    class SqueezeExcite(nn.Module):
        """Channel attention: pool -> 1x1 (channels/4) -> ReLU -> 1x1 -> hard-sigmoid."""

        def __init__(self, channels: int) -> None:
            super().__init__()
            squeeze = _make_divisible(channels / 4)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Conv2d(channels, squeeze, 1)
            self.relu = nn.ReLU()
            self.fc2 = nn.Conv2d(squeeze, channels, 1)
            self.gate = nn.Hardsigmoid()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))

    class Bneck(nn.Module):
        """Inverted residual: 1x1 expand -> kxk depthwise -> [SE] -> 1x1 project (linear)."""

        def __init__(
            self, cin: int, k: int, exp: int, cout: int, se: bool, nl: str, stride: int
        ) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            if exp != cin:  # the first block has no expansion (exp == cin)
                layers.append(conv_bn(cin, exp, 1, 1, 1, nl))
            layers.append(conv_bn(exp, exp, k, stride, exp, nl))
            if se:
                layers.append(SqueezeExcite(exp))
            layers.append(conv_bn(exp, cout, 1, 1, 1, None))
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.block(x)
            return x + y if self.residual else y

    def ch(c: int) -> int:
        return _make_divisible(c * width_mult)

    stem = ch(STEM_CHANNELS)
    layers: list[nn.Module] = [conv_bn(3, stem, 3, 2, 1, "HS")]
    cin = stem
    for k, exp, cout, se, nl, stride in SMALL_BNECKS:
        layers.append(Bneck(cin, k, ch(exp), ch(cout), se, nl, stride))
        cin = ch(cout)
    last = ch(LAST_CONV_CHANNELS)
    layers.append(conv_bn(cin, last, 1, 1, 1, "HS"))
    hidden = ch(HIDDEN_CHANNELS)
    model = nn.Sequential(
        nn.Sequential(*layers),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(last, hidden),  # the paper's "conv2d 1x1, NBN" on a 1x1 map
        nn.Hardswish(),
        nn.Dropout(0.2),
        nn.Linear(hidden, num_classes),
    )
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def _calibrate_batchnorm(model: Any, batch: np.ndarray) -> None:
    """Set every BatchNorm's running mean/var from one forward pass over ``batch``.

    With random weights and the default running statistics (0, 1) the signal
    shrinks block after block until the logits are ~1e-9 and activations are
    denormal floats (slow on x86, zero in float16), which would make the model
    a poor latency/quantization subject. After this pass each BatchNorm
    normalises its input to about zero mean and unit variance, as in a trained
    network, and the logits have unit scale.
    """
    import torch
    from torch import nn

    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch -> exactly its statistics
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(batch))
    for bn in bns:
        bn.momentum = 0.01
    model.eval()


@builder("mobilenet_v3_small")
def build_mobilenet_v3_small(params: dict[str, Any]) -> Stage:
    """MobileNetV3-Small (Howard et al. 2019, Table 2) in plain torch.nn, random weights.

    Stem 3x3 conv (16 ch, stride 2, hard-swish); the paper's 11 bneck blocks
    (kernel, expansion, output, SE, ReLU/hard-swish, stride as in Table 2; SE =
    pool, 1x1 to expansion/4, ReLU, 1x1, hard-sigmoid); 1x1 conv to 576 with
    hard-swish; global average pool; 1024 hidden with hard-swish; dropout; classifier.
    BatchNorm after every conv (eps 1e-3), none in the head. Weights are He-normal;
    BatchNorm running statistics are set from 8 random N(0, 1) images so that
    activations and logits keep a realistic (unit) scale. As in the authors'
    reference code (and torchvision), the 576-channel conv has no SE block,
    although Table 2 marks one: with it the network would have ~2.71M
    parameters instead of the published 2.5M.

    Parameters at ``num_classes=1000``, ``width_mult=1.0``: 2,542,856 (the same
    as torchvision's mobilenet_v3_small; the paper rounds to 2.5M).

    Params: ``num_classes`` (1000), ``resolution`` (224, the input is
    1x3xRxR), ``width_mult`` (1.0; every channel count is scaled and rounded to
    a multiple of 8), ``seed`` (0, for the weights and the example input).
    Accuracy is not meaningful (no data set, no training).
    """
    import torch

    num_classes = int(params.get("num_classes", 1000))
    resolution = int(params.get("resolution", 224))
    width_mult = float(params.get("width_mult", 1.0))
    seed = int(params.get("seed", 0))
    if resolution < 32:
        raise ValueError(f"resolution must be at least 32 (five stride-2 stages), not {resolution}")

    torch.manual_seed(seed)
    model = _make_model(num_classes, width_mult)
    rng = np.random.default_rng(seed)
    example = rng.standard_normal((1, 3, resolution, resolution)).astype(np.float32)
    _calibrate_batchnorm(
        model, rng.standard_normal((8, 3, resolution, resolution)).astype(np.float32)
    )
    return Stage(
        format="torch",
        module=model,
        example_input=example,
        dataset=None,
        meta={
            "params": sum(p.numel() for p in model.parameters()),
            "accuracy_meaningful": False,
            "architecture": "MobileNetV3-Small (Howard et al. 2019), random weights",
        },
    )
