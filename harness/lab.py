"""Lab files: the device registry as YAML, for version control and sharing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from devices.errors import UnknownTransportError
from devices.names import NAME_PATTERN
from devices.transport import transport_class, transport_names
from harness.store import Store
from suites.yamlio import error_at, validate_file

LAB_FORMAT_VERSION = 1


class LabDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)  # the one rule (devices/names.py)
    transport: str
    address: str = ""
    type: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("transport")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        # Checked here, not after loading, so that the message names the line too.
        known = transport_names()
        if value not in known:
            raise error_at((), f"unknown transport {value!r} (known: {', '.join(known)})", value)
        return value

    @field_validator("options")
    @classmethod
    def _typed_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # The transport's own options model: a typo is an error naming the key and line.
        try:
            options = transport_class(str(info.data.get("transport"))).Options
        except UnknownTransportError:
            return value  # reported below, with the known transports
        options.model_validate(value)
        return value


class LabFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    devices: list[LabDevice] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> LabFile:
        seen: set[str] = set()
        for i, d in enumerate(self.devices):
            if d.name in seen:
                # The second one: the first is where the device was meant to be.
                raise error_at(("devices", i, "name"), f"duplicate device name {d.name!r}", d.name)
            seen.add(d.name)
        return self


def import_lab(store: Store, path: Path) -> list[str]:
    lab = validate_file(LabFile, path)
    names = [d.name for d in lab.devices]
    for d in lab.devices:
        previous = store.get_device(d.name)
        store.add_device(
            {
                "name": d.name,
                "transport": d.transport,
                "address": d.address,
                "device_type": d.type,
                "tags": d.tags,
                "options": d.options,
            },
            replace=True,
        )
        # Facts describe the hardware behind an address: keep them if that did not change.
        if (
            previous
            and previous["facts"]
            and (previous["transport"], previous["address"]) == (d.transport, d.address)
        ):
            store.set_device_facts(d.name, previous["facts"])
    return names


def export_lab(store: Store, path: Path) -> int:
    rows = store.list_devices()
    doc = {
        "version": LAB_FORMAT_VERSION,
        "devices": [
            {
                k: v
                for k, v in {
                    "name": r["name"],
                    "transport": r["transport"],
                    "address": r["address"],
                    "type": r["device_type"],
                    "tags": r["tags"],
                    "options": r["options"],
                }.items()
                if v not in (None, "", {})
            }
            for r in rows
        ],
    }
    text = "# edgebench lab file (edgebench lab import FILE)\n" + yaml.safe_dump(
        doc, sort_keys=False
    )
    path.write_text(text, encoding="utf-8")
    return len(rows)
