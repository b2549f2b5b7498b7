"""The registry of power sources: which sensor a device measures power with, how the
agent samples it, and how the host turns the raw readings into a (t, watts) series.

The agent on the device only timestamps raw text (see runners/agent/PROTOCOL.md,
"Power sampling"); everything format-specific happens here, on the controller.
A device picks its source with the option ``power`` (``auto`` by default: the
first sensor ``device check`` found; ``none`` to switch sampling off).

Each source is declared once, as a :class:`PowerSource` subclass registered by name
with :func:`register_source` (a second registration of a name is refused). It says

* how the agent samples it (:meth:`PowerSource.sampler` -> :class:`Sampler`: the
  ``power`` field of the agent's ``bench`` request, an argv list or file paths);
* how one raw reading becomes ``(rail, watts)`` (:meth:`PowerSource.reading`);
* what else the readings tell (:meth:`PowerSource.telemetry`, optional).

The built-in sources live next to their parsers: ``tegrastats``
(:mod:`~devices.power.tegrastats`), ``ina3221`` (:mod:`~devices.power.ina3221`,
hwmon and the JetPack 4 ``ina3221x`` IIO driver), ``rpi_pmic``
(:mod:`~devices.power.rpi`) and ``nvidia_smi`` (:mod:`~devices.power.nvml`).

Adding a source (an Android battery's ``current_now``/``voltage_now``, a Nordic
PPK2, a Joulescope) is one module plus one registration: write
``devices/power/<name>.py`` with a parser and a ``@register_source("<name>")``
subclass of :class:`PowerSource`, and add the module to :data:`BUILTIN_MODULES` so
that the registry imports it. Nothing else (scheduler, runners, agent) changes: the
agent's three sampling modes cover a tool that streams lines, a command run per
sample and files read per sample. Add a recorded output under ``tests/data/power``
too: ``tests/test_power_sources.py`` round-trips one for every registered source.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from devices.power.errors import ParseError, PowerSourceError

DEFAULT_INTERVAL_MS = 100
# Option values of ``power`` that are not sources.
AUTO, NONE = "auto", "none"
# Modules that register the built-in sources (imported on first use of the registry).
BUILTIN_MODULES = ("tegrastats", "ina3221", "rpi", "nvml", "ppk2", "joulescope")


class Reading(NamedTuple):
    """One raw reading as power: the rail it measures and watts."""

    rail: str
    watts: float


@dataclass(frozen=True)
class Sampler:
    """How the agent samples a source (the agent's ``PowerSampler`` modes).

    ``stream``: run ``argv`` and stamp each line it prints; ``poll_command``: run
    ``argv`` every interval and stamp its whole output; ``poll_files``: read every
    file of ``files`` every interval and stamp ``key=value;key=value...``.
    """

    mode: Literal["stream", "poll_command", "poll_files"]
    argv: tuple[str, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)  # reading key -> path


class Sensor(BaseModel):
    """A sensor entry as ``device check`` (the agent's probe) reports it, or as an
    explicit ``power=`` option makes it (``kind`` only)."""

    # The agent may report more than the host reads; an older host must not refuse it.
    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str
    path: str | None = None  # the tool, or the sysfs directory
    channels: dict[str, str] = Field(default_factory=dict)  # channel -> rail label


class PowerOptions(BaseModel):
    """The device options about power, typed (device options hold other keys too)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    power: str = AUTO
    power_interval_ms: int = Field(DEFAULT_INTERVAL_MS, gt=0)
    power_tool: str | None = None  # the tool's path when it is not on PATH
    power_hwmon: str | None = None  # ina3221: the sysfs directory when not probed

    @field_validator("power")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in (AUTO, NONE) and value not in _registry():
            raise PydanticCustomError(
                "unknown_power_source",
                "is not a power source (known: {known})",
                {"known": ", ".join((AUTO, NONE, *source_names()))},
            )
        return value


def power_options(options: Mapping[str, Any]) -> PowerOptions:
    """The power options of a device, validated; a mistake is one :class:`DeviceError`
    naming the option (a misspelt ``power_*`` option is a mistake too)."""
    known = set(PowerOptions.model_fields)
    unknown = sorted(k for k in options if k.startswith("power") and k not in known)
    if unknown:
        raise PowerSourceError(
            f"unknown option {unknown[0]!r} (power options: {', '.join(sorted(known))})"
        )
    try:
        return PowerOptions.model_validate(dict(options))
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "power"
        raise PowerSourceError(
            f"option {key}={err['input']!r} {_lower_first(err['msg'])}"
        ) from None


def _lower_first(message: str) -> str:
    return message[:1].lower() + message[1:]


class PowerSource(ABC):
    """One kind of power sensor. Subclasses are stateless; register them with
    :func:`register_source`, which sets :attr:`name`."""

    name: ClassVar[str]

    @abstractmethod
    def sampler(self, sensor: Sensor, options: PowerOptions) -> Sampler:
        """How the agent samples this sensor; raise :class:`PowerSourceError` when the
        options and the probe do not say enough (e.g. no sysfs directory)."""

    @abstractmethod
    def reading(self, text: str) -> Reading | None:
        """One raw reading (a line, a command's output, ``key=value;...``) as power.

        Raise :class:`ParseError` (or ``ValueError``) for a reading that is unusable:
        it is counted as skipped. Return None for a reading that belongs to something
        else (nvidia-smi's line for another GPU): it is ignored.
        """

    def telemetry(self, texts: Sequence[str]) -> dict[str, Any] | None:
        """What else the sensor said during the bench (loads, temperatures); None
        when it carries no such data."""
        return None


S = TypeVar("S", bound=type[PowerSource])

_REGISTRY: dict[str, PowerSource] = {}


def register_source(name: str) -> Callable[[S], S]:
    """Class decorator: make a power source available under ``name``."""

    def decorate(cls: S) -> S:
        if name in _REGISTRY:
            holder = type(_REGISTRY[name])
            raise ValueError(
                f"power source {name!r} is already registered by "
                f"{holder.__module__}.{holder.__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return decorate


def _registry() -> dict[str, PowerSource]:
    # Importing a source module runs its @register_source decorator.
    for module in BUILTIN_MODULES:
        importlib.import_module(f"devices.power.{module}")
    return _REGISTRY


def source_names() -> list[str]:
    """The registered power sources, sorted."""
    return sorted(_registry())


def get_source(name: str) -> PowerSource:
    """The registered source ``name``; :class:`PowerSourceError` listing the known ones."""
    try:
        return _registry()[name]
    except KeyError:
        raise PowerSourceError(
            f"unknown power source {name!r} (known: {', '.join(source_names())})"
        ) from None


# --------------------------------------------------------------------------- host side
@dataclass(frozen=True)
class PowerSeries:
    source: str
    rail: str
    samples: list[tuple[float, float]]  # (t on the agent's clock, watts)
    skipped: int  # readings that did not parse


def choose_source(options: dict[str, Any], facts: dict[str, Any] | None) -> dict[str, Any] | None:
    """The sensor entry to use, from the device option ``power`` and the probed facts."""
    wanted = power_options(options).power
    if wanted == NONE:
        return None
    sensors = list((facts or {}).get("sensors") or [])
    if wanted == AUTO:
        return sensors[0] if sensors else None
    found = next((s for s in sensors if s.get("kind") == wanted), None)
    # An explicit choice is honoured even if the probe did not see it (the tool may
    # live outside PATH: give its path with the option ``power_tool``).
    return found or {"kind": wanted}


def sampler_request(
    sensor: dict[str, Any], options: dict[str, Any], *, idle_s: float = 1.0
) -> dict[str, Any]:
    """The ``power`` field of the agent's ``bench`` request for this sensor."""
    typed = power_options(options)
    probed = Sensor.model_validate(sensor)
    sampler = get_source(probed.kind).sampler(probed, typed)
    request: dict[str, Any] = {
        "interval_ms": typed.power_interval_ms,
        "idle_s": idle_s,
        "mode": sampler.mode,
    }
    if sampler.mode == "poll_files":
        request["files"] = dict(sampler.files)
    else:
        request["argv"] = list(sampler.argv)
    return request


def parse_readings(kind: str, readings: Sequence[Sequence[Any]]) -> PowerSeries:
    """Raw ``[t, text]`` readings from the agent -> a watts series on the agent's clock."""
    source = get_source(kind)
    samples: list[tuple[float, float]] = []
    rails: list[str] = []
    skipped = 0
    for t, text in readings:
        try:
            reading = source.reading(str(text))
        except (ParseError, ValueError):
            skipped += 1
            continue
        if reading is None:
            continue  # another device's reading (nvidia-smi prints every GPU)
        samples.append((float(t), reading.watts))
        rails.append(reading.rail)
    # The rail can only change if the tool's output changes format mid-run; name the
    # one most readings came from.
    rail = max(set(rails), key=rails.count) if rails else "-"
    return PowerSeries(kind, rail, samples, skipped)


def telemetry_summary(kind: str, readings: Sequence[Sequence[Any]]) -> dict[str, Any] | None:
    """What else the sensor said during the bench (tegrastats: GPU/EMC load and
    temperatures). None for sources that carry no such data."""
    return get_source(kind).telemetry([str(text) for _, text in readings])
