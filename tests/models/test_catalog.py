"""The model catalog: pulls check hashes, names are known, builds explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.catalog import entry, load_catalog, pull, resolve_model, sha256_of
from vision.errors import ModelLoadError


def test_every_entry_names_file_hash_classes_and_licence() -> None:
    catalog = load_catalog()

    assert "yolo11n-coco" in catalog
    for known in catalog.values():
        assert len(known.sha256) == 64
        assert known.class_names and known.licence
        assert known.url or known.recipe, f"{known.name}: no way to obtain it"
    assert catalog["yolo11n-coco"].class_names[:3] == ["person", "bicycle", "car"]


def test_pull_copies_from_the_mirror_and_checks_the_hash(
    tmp_path: Path, models_mirror: Path
) -> None:
    path = pull("yolo11n-coco", model_dir=tmp_path, mirror_dir=models_mirror)

    assert path == tmp_path / "yolo11n_coco_deq_fp32_dynamic.onnx"
    assert sha256_of(path) == entry("yolo11n-coco").sha256
    assert pull("yolo11n-coco", model_dir=tmp_path, mirror_dir=None) == path


def test_a_mirror_file_with_the_wrong_hash_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / entry("yolov5n-pothole").file).write_bytes(b"not the model")
    models = tmp_path / "models"

    with pytest.raises(ModelLoadError, match="does not match"):
        pull("yolov5n-pothole", model_dir=models, mirror_dir=mirror)
    assert list(models.iterdir()) == []  # nothing that looks pulled


def test_a_local_build_without_mirror_says_how_it_was_made(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="local build"):
        pull("yolo11n-pothole-416", model_dir=tmp_path, mirror_dir=None)


def test_unknown_names_and_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="neither a catalog name"):
        resolve_model("yolo99-none", model_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="not in the catalog"):
        pull("yolo99-none", model_dir=tmp_path)


def test_resolve_passes_catalog_classes_and_input_size(
    tmp_path: Path, models_mirror: Path
) -> None:
    spec = resolve_model(
        "yolo11n-pothole-416", model_dir=tmp_path, mirror_dir=models_mirror
    )
    assert spec.class_names == ["pothole"]
    assert spec.input_size_px == 416
