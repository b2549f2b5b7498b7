"""The runner interface and its registry.

A runner turns a job into a typed measurement over a transport:
``Runner.measure(job) -> JobMeasurement``. The scheduler picks the runner a
job's runtime names (``suites/runtimes.py``), hands it the job, and commits what
comes back; it knows nothing of any runtime. Runners register by name with
:func:`register_runner`, which refuses duplicates.

Adding a runner: one module in ``runners/`` with a class decorated
``@register_runner("name")``, imported by :func:`_load_builtin_runners`, and a
runtime in ``suites/runtimes.py`` that names it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from devices.transport import PosixHost, Transport
from runners.records import Accuracy, JobMeasurement


@dataclass(frozen=True)
class MeasureRules:
    """How long and how often to measure (the suite's ``measure:``, whose schema
    holds the defaults)."""

    warmup_runs: int
    warmup_min_s: float
    min_runs: int
    min_duration_s: float
    repetitions: int
    max_runs: int
    timeout_s: float
    # Adaptive stopping: end a window once its median's 95% CI is this narrow
    # (relative to the median), or at max_window_s; None: the fixed rule above.
    target_rel_ci: float | None = None
    max_window_s: float = 10.0
    # Fresh runner processes the repetitions are spread over (1: all in one).
    processes: int = 1
    # One more window around the whole call (inputs in, outputs out) beside the
    # invoke-only windows, where a runtime times them differently.
    io_window: bool = True


@dataclass(frozen=True)
class ModelFile:
    """A model file on the controller, content-addressed."""

    path: Path
    sha256: str
    format: str
    size_bytes: int
    # What the build recorded (torchscript: input_shapes / input_dtypes; recipe, ...).
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSet:
    """Inputs (first axis = samples) and optional integer labels for accuracy."""

    inputs: np.ndarray
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class Job:
    """Everything a runner needs for one job; the controller fills it in."""

    id: int
    key: str
    model: ModelFile
    setting: dict[str, Any]  # the runtime setting, e.g. {"runtime": "litert", "threads": 1}
    measure: MeasureRules
    # Loads the accuracy split on demand (None: the suite measures no accuracy).
    evaluation: Callable[[], EvalSet] | None = None
    # Provenance the controller knows and runners cannot (edgebench version, commit,
    # controller host, recipe chain); runners add their own and copy these in.
    provenance: dict[str, Any] = field(default_factory=dict)


class Runner(ABC):
    """Measures jobs on one device through one transport. One instance per device
    and worker thread; not for concurrent use."""

    name: ClassVar[str]
    # The kind of transport the runner drives; the scheduler plans a runtime's jobs
    # only on devices whose transport is one (no LiteRT job on a microcontroller).
    serves: ClassVar[type[Transport]] = PosixHost

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        # What the device said it is, from probe() or as a side effect of the last
        # measure(); the controller stores it with the device.
        self.facts: dict[str, Any] = {}

    @property
    def device(self) -> str:
        return self.transport.device.name

    @abstractmethod
    def probe(self) -> dict[str, Any]:
        """What the device is (os, cpu, memory, runtimes, sensors, ...), as it says."""

    @abstractmethod
    def measure(self, job: Job) -> JobMeasurement:
        """Time the job's model under its setting (and its accuracy when the job
        has an evaluation set); raises a ``devices.errors.DeviceError`` on failure."""

    def evaluate(self, job: Job) -> Accuracy | None:
        """Accuracy alone; runners that cannot compute it return None."""
        return None

    def infer(self, model: ModelFile, setting: dict[str, Any], inputs: np.ndarray) -> np.ndarray:
        """The model's first output for ``inputs``; not every runner can."""
        raise NotImplementedError(f"runner {self.name!r} cannot return outputs")

    def kill(self) -> None:  # noqa: B027 - optional: most runners hold no process
        """Abort whatever is in flight now (Ctrl-C); the runner may be reused after."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the runner holds; safe to call twice."""


_REGISTRY: dict[str, type[Runner]] = {}


def register_runner(name: str) -> Callable[[type[Runner]], type[Runner]]:
    """Class decorator: make a runner available under ``name``."""

    def decorate(cls: type[Runner]) -> type[Runner]:
        if name in _REGISTRY:
            raise ValueError(
                f"runner {name!r} is already registered by {_REGISTRY[name].__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def runner_names() -> list[str]:
    _load_builtin_runners()
    return sorted(_REGISTRY)


def runner_class(name: str) -> type[Runner]:
    _load_builtin_runners()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no runner {name!r} (registered: {', '.join(sorted(_REGISTRY))})") from None


def _load_builtin_runners() -> None:
    # Importing a runner module runs its @register_runner decorator.
    from runners import agent_runner, android_runner, tensorrt  # noqa: F401
    from runners.mcu import runner  # noqa: F401


def fingerprint(facts: dict[str, Any]) -> str:
    """Stable id of what a device *is* (not of its current load)."""
    keys = (
        "hostname",
        "arch",
        "cpu_model",
        "cpu_cores",
        "memory_total_bytes",
        "os_release",
        "kernel",
        "python",
        "runtimes",
        "board_model",
    )
    blob = json.dumps({k: facts.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
