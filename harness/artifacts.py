"""Content-addressed artifact cache and the variant build cache.

Every model file is stored once under ``artifacts/<sha256[:2]>/<sha256>/<name>``.
A variant build is remembered under ``builds/<key>.json`` where the key hashes
the recipe chain and its inputs, so an unchanged suite never rebuilds.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from devices.transport import sha256_file
from harness.store import Store
from harness.workspace import Workspace
from suites import recipes
from suites.analysis import describe_file
from suites.schema import ModelSpec, Suite, VariantSpec


@dataclass(frozen=True)
class Artifact:
    sha256: str
    path: Path
    format: str
    size_bytes: int


@dataclass(frozen=True)
class Variant:
    """A built variant, ready to push: what the scheduler and report need."""

    model: str
    name: str
    format: str
    artifact: Artifact
    recipe: list[str]
    dataset: str | None
    meta: dict[str, Any]


class ArtifactCache:
    def __init__(self, workspace: Workspace, store: Store) -> None:
        self.ws = workspace
        self.store = store

    def put(self, src: Path, fmt: str, meta: dict[str, Any]) -> Artifact:
        digest = sha256_file(src)
        # The same bytes built under another name (an identity copy of a file, a mixed
        # model that kept nothing) are the same artifact: one file per hash.
        existing = self.lookup(digest)
        dest = existing.path if existing else self.ws.artifacts_dir / digest[:2] / digest / src.name
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        size = dest.stat().st_size
        self.store.record_artifact(digest, src.name, fmt, size, meta)
        return Artifact(digest, dest, fmt, size)

    def lookup(self, sha256: str) -> Artifact | None:
        """The cached file with this hash, verified; None if missing or damaged.

        The file system is the source of truth (not the database), so several
        databases can share one workspace's cache.
        """
        folder = self.ws.artifacts_dir / sha256[:2] / sha256
        files = sorted(p for p in folder.glob("*") if p.is_file() and not p.name.endswith(".part"))
        # Missing or damaged: rebuild rather than benchmark a wrong file.
        path = next((p for p in files if sha256_file(p) == sha256), None)
        if path is None:
            return None
        row = self.store.get_artifact(sha256)
        fmt = row["format"] if row else path.suffix.lstrip(".")
        return Artifact(sha256, path, fmt, path.stat().st_size)


def build_variants(
    suite: Suite,
    suite_dir: Path,
    cache: ArtifactCache,
    *,
    on_progress: Callable[[str, bool], None] | None = None,
    only: set[str] | None = None,
) -> list[Variant]:
    """Build (or take from cache) every model x variant of a suite, in suite order
    (``only``: just the variants of those names: one progressive stage at a time)."""
    built: list[Variant] = []
    with tempfile.TemporaryDirectory(prefix="edgebench-build-") as tmp:
        for model in suite.models:
            base: recipes.Stage | None = None  # trained lazily, once, only if something is missing
            memo: dict[tuple[str, ...], recipes.Stage] = {}  # shared chain prefixes
            base_format = _model_format(model)
            for variant in suite.variants_of(model.name):
                if only is not None and variant.name not in only:
                    continue
                fmt = recipes.check_chain(base_format, variant)
                key = recipes.build_key(model, variant, suite_dir)
                record = cache.ws.builds_dir / f"{key}.json"
                hit = _cached(cache, record, model, variant)
                from_cache = hit is not None
                if hit is None:
                    if base is None:
                        base = recipes.base_model(model, suite_dir)
                    stage = recipes.run_chain(base, variant, Path(tmp) / model.name, memo)
                    hit = _store_built(cache, stage, model, variant, fmt, record)
                built.append(hit)
                if on_progress:
                    on_progress(f"{model.name}/{variant.name}", from_cache)
    return built


def _model_format(model: ModelSpec) -> str:
    if model.builder:
        return "torch"
    return {".onnx": "onnx", ".tflite": "tflite"}.get(Path(str(model.file)).suffix, "unknown")


def _cached(
    cache: ArtifactCache, record: Path, model: ModelSpec, variant: VariantSpec
) -> Variant | None:
    """The variant from an earlier build of the same chain. The build key covers what makes
    the file (model spec, recipe, inputs), not names: the names and the description are
    this suite's, even when another suite (or an older name) built the file."""
    if not record.is_file():
        return None
    info = json.loads(record.read_text())
    artifact = cache.lookup(info["sha256"])
    if artifact is None:
        return None
    stage_meta = {**info.get("meta", {}), "description": variant.description}
    meta = {**stage_meta, "recipe": info["recipe"], "model": model.name, "variant": variant.name}
    cache.store.record_artifact(
        artifact.sha256, artifact.path.name, info["format"], artifact.size_bytes, meta
    )
    return Variant(
        model.name,
        variant.name,
        info["format"],
        artifact,
        info["recipe"],
        info.get("dataset"),
        stage_meta,
    )


def _store_built(
    cache: ArtifactCache,
    stage: recipes.Stage,
    model: ModelSpec,
    variant: VariantSpec,
    fmt: str,
    record: Path,
) -> Variant:
    """Put a freshly built variant in the artifact cache and remember the build."""
    assert stage.path is not None and stage.format == fmt
    recipe = [s.name for s in variant.recipe]
    stage = replace(
        stage,
        meta={
            **stage.meta,
            "file_stats": describe_file(stage.path, fmt),
            "recipe_params": [s.params for s in variant.recipe],
            "description": variant.description,
        },
    )
    meta = {**stage.meta, "recipe": recipe, "model": model.name, "variant": variant.name}
    artifact = cache.put(stage.path, fmt, meta)
    info = {
        "model": model.name,
        "variant": variant.name,
        "format": fmt,
        "sha256": artifact.sha256,
        "recipe": recipe,
        "dataset": stage.dataset,
        "meta": stage.meta,
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp_record = record.with_suffix(".part")
    tmp_record.write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    os.replace(tmp_record, record)
    return Variant(model.name, variant.name, fmt, artifact, recipe, stage.dataset, stage.meta)
