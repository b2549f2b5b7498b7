"""Recipe steps: knowledge distillation (see suites/recipes.py for the step registry).

``distill`` trains a smaller student (made by a registered builder, untrained)
to match the current model (the teacher). To say honestly what distillation
bought, it also trains the same student from the same initialization on the
labels alone, with the same epochs, learning rate and batch order, and records
both test accuracies.

Student builders are called as ``BUILDERS[name]({**student_params, "seed": seed,
"epochs": 0})``: a builder must return an untrained model for ``epochs: 0``.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from suites.datasets import load_dataset
from suites.errors import BuildError
from suites.recipes import BUILDERS, MAX_LR, BuildContext, SeededParams, Stage, builder, step


@builder("digits_cnn_small")
def build_digits_cnn_small(params: dict[str, Any]) -> Stage:
    """A small CNN for the digits data set (same input 1x1x8x8 and 10 outputs as
    ``digits_cnn``, ~4x fewer parameters). Params: ``seed`` (0), ``epochs`` (15;
    0 returns the untrained model, as ``distill`` needs), ``lr`` (5e-3)."""
    import torch
    from torch import nn

    from suites.pruning import accuracy, train

    seed = int(params.get("seed", 0))
    epochs = int(params.get("epochs", 15))
    torch.manual_seed(seed)
    data = load_dataset("digits")
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    train(model, data, epochs=epochs, lr=float(params.get("lr", 5e-3)), seed=seed)
    model.eval()
    return Stage(
        format="torch",
        module=model,
        example_input=data.test_x[:1],
        dataset="digits",
        meta={
            "host_accuracy": accuracy(model, data) if epochs > 0 else None,
            "params": sum(p.numel() for p in model.parameters()),
        },
    )


class DistillParams(SeededParams):
    student: str = "digits_cnn_small"
    student_params: dict[str, Any] = Field(default_factory=dict)
    temperature: float = Field(4.0, gt=0, le=1e6)
    alpha: float = Field(0.7, ge=0, le=1)
    epochs: int = Field(30, ge=1)
    lr: float = Field(5e-3, gt=0, le=MAX_LR)
    batch_size: int = Field(64, ge=1)

    @field_validator("student")
    @classmethod
    def _registered_builder(cls, value: str) -> str:
        if value not in BUILDERS:
            raise PydanticCustomError(
                "unknown_builder",
                "unknown student builder '{name}' (known: {known})",
                {"name": value, "known": ", ".join(sorted(BUILDERS))},
            )
        return value


@step("distill", accepts=("torch",), produces="torch", params=DistillParams)
def distill(stage: Stage, params: DistillParams, ctx: BuildContext) -> Stage:
    """Knowledge distillation of the current model (teacher) into a smaller student.

    Loss: ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
    + (1 - alpha) * CE(student, labels)`` on the dataset's train split, Adam.
    Params: ``student`` (builder name, "digits_cnn_small"), ``student_params``
    (extra builder params, {}), ``temperature`` T (4), ``alpha`` (0.7),
    ``epochs`` (30), ``lr`` (5e-3), ``batch_size`` (64), ``seed`` (0).
    The same student init is also trained on labels only (same epochs, lr,
    batch order) as the baseline. The output stage is the distilled student.
    Meta ``distill``: teacher/student param counts, ``teacher_accuracy``,
    ``student_kd_accuracy``, ``student_scratch_accuracy`` and ``gain``
    (kd - scratch, may be negative), all on the test split.
    """
    import torch
    import torch.nn.functional as F

    from suites.pruning import accuracy, record, torch_module, train

    student_name, student_params = params.student, params.student_params
    temperature, alpha, epochs = params.temperature, params.alpha, params.epochs
    lr, batch_size, seed = params.lr, params.batch_size, params.seed_for(ctx)

    teacher = torch_module(stage, "distill")
    teacher.eval()
    data = ctx.dataset(stage)
    student_stage = BUILDERS[student_name]({**student_params, "seed": seed, "epochs": 0})
    student = student_stage.module
    x = torch.from_numpy(data.train_x)
    with torch.no_grad():
        teacher_logits = torch.cat([teacher(x[i : i + 512]) for i in range(0, len(x), 512)])
        probe = torch.from_numpy(stage.example_input)
        if student(probe).shape != teacher(probe).shape:
            raise BuildError(
                f"distill: student {student_name!r} output shape "
                f"{tuple(student(probe).shape)} differs from the teacher's "
                f"{tuple(teacher(probe).shape)}"
            )
    scratch = copy.deepcopy(student)  # same init for the labels-only baseline

    def kd_loss(logits: Any, labels: Any, idx: Any) -> Any:
        soft = F.kl_div(
            F.log_softmax(logits / temperature, dim=1),
            F.log_softmax(teacher_logits[idx] / temperature, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        hard = F.cross_entropy(logits, labels)
        return alpha * temperature**2 * soft + (1 - alpha) * hard

    common = {"epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size}
    train(student, data, loss_fn=kd_loss, **common)
    train(scratch, data, **common)

    def n_params(m: Any) -> int:
        return sum(p.numel() for p in m.parameters())

    kd_acc = accuracy(student, data)
    scratch_acc = accuracy(scratch, data)
    info = {
        "student": student_name,
        "temperature": temperature,
        "alpha": alpha,
        "epochs": epochs,
        "lr": lr,
        "teacher_param_count": n_params(teacher),
        "student_param_count": n_params(student),
        "teacher_accuracy": accuracy(teacher, data),
        "student_kd_accuracy": kd_acc,
        "student_scratch_accuracy": scratch_acc,
        "gain": kd_acc - scratch_acc,
    }
    label = (
        f"distill {info['teacher_param_count']} -> {info['student_param_count']} params "
        f"({student_name}, T={temperature:g}, alpha={alpha:g}; "
        f"KD {kd_acc:.3f} vs scratch {scratch_acc:.3f})"
    )
    return record(stage, student, "distill", info, label, data)
