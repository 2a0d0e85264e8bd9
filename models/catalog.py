"""The model catalog and its pull step.

Each model the service can run has an entry in ``catalog.toml``: file name,
SHA-256, classes, input size, licence, and where it comes from. ``pull``
copies the file from a mirror directory when one is configured (machines with
no internet) or downloads it, and checks the hash either way, so a camera
never runs weights nobody can trace.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import httpx

from vision.errors import ModelLoadError

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    file: str
    sha256: str
    version: str
    task: str
    class_names: list[str]
    input_size_px: int
    licence: str
    url: str | None = None
    built_from: str | None = None
    recipe: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model file ready to load, with what the catalog knows of it."""

    path: Path
    class_names: list[str] | None
    input_size_px: int | None
    name: str | None = None


@cache
def load_catalog() -> dict[str, CatalogEntry]:
    text = resources.files("models").joinpath("catalog.toml").read_text("utf-8")
    entries = tomllib.loads(text)["models"]
    return {name: _entry(name, fields) for name, fields in entries.items()}


def _entry(name: str, fields: dict) -> CatalogEntry:
    classes = fields.pop("classes")
    if isinstance(classes, str):
        names_file = resources.files("models").joinpath(f"{classes}.names")
        classes = names_file.read_text("utf-8").split("\n")
        classes = [line.strip() for line in classes if line.strip()]
    return CatalogEntry(name=name, class_names=list(classes), **fields)


def entry(name: str) -> CatalogEntry:
    catalog = load_catalog()
    if name not in catalog:
        known = ", ".join(sorted(catalog))
        raise ModelLoadError(f"model {name!r} is not in the catalog (known: {known})")
    return catalog[name]


def resolve_model(
    name_or_path: str, *, model_dir: Path, mirror_dir: Path | None = None
) -> ModelSpec:
    """Find a model by catalog name (pulling it if needed) or by file path."""
    path = Path(name_or_path)
    if name_or_path not in load_catalog():
        if path.is_file():
            return ModelSpec(path=path, class_names=None, input_size_px=None)
        raise ModelLoadError(
            f"model {name_or_path!r}: neither a catalog name nor an existing file"
        )

    known = entry(name_or_path)
    local = pull(known.name, model_dir=model_dir, mirror_dir=mirror_dir)
    return ModelSpec(
        path=local,
        class_names=known.class_names,
        input_size_px=known.input_size_px,
        name=known.name,
    )


def pull(
    name: str,
    *,
    model_dir: Path,
    mirror_dir: Path | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Make the model's file present in ``model_dir`` with the right hash.

    A file already there with the right hash is kept. Otherwise it is copied
    from ``mirror_dir`` or downloaded from the entry's URL into a temporary
    file, checked, and only then moved into place: a failed or tampered
    transfer never leaves a file that looks pulled.
    """
    known = entry(name)
    target = model_dir / known.file
    if target.is_file() and sha256_of(target) == known.sha256:
        return target

    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=model_dir, delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        _fetch(known, tmp_path, mirror_dir=mirror_dir, timeout_s=timeout_s)
        actual = sha256_of(tmp_path)
        if actual != known.sha256:
            raise ModelLoadError(
                f"model {name}: SHA-256 {actual} does not match the catalog's "
                f"{known.sha256}; refusing the file"
            )
        tmp_path.replace(target)
    finally:
        tmp_path.unlink(missing_ok=True)

    logger.info("pulled model %s into %s", name, target)
    return target


def _fetch(
    known: CatalogEntry, dest: Path, *, mirror_dir: Path | None, timeout_s: float
) -> None:
    if mirror_dir is not None:
        mirrored = mirror_dir / known.file
        if mirrored.is_file():
            shutil.copyfile(mirrored, dest)
            return
        logger.warning("model %s: not in mirror %s", known.name, mirror_dir)

    if known.url is None:
        how = known.recipe or "see the catalog entry"
        raise ModelLoadError(
            f"model {known.name}: {known.file} has no download URL and is not in "
            f"the mirror directory ({mirror_dir or 'none configured'}); it is a "
            f"local build: {how}"
        )

    try:
        with httpx.stream(
            "GET", known.url, follow_redirects=True, timeout=timeout_s
        ) as response:
            response.raise_for_status()
            with dest.open("wb") as out:
                for chunk in response.iter_bytes(_CHUNK_BYTES):
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise ModelLoadError(
            f"model {known.name}: download from {known.url} failed: {exc}"
        ) from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
