"""Labelled image sets for detector evaluation: YOLO folders and COCO JSON.

Both load into a ``LabelledSet``: each image with its size and its boxes in
pixels (x1, y1, x2, y2), and the set's class names with the category id each
has in COCO form. Images without objects are kept, and listed in the COCO
ground truth's ``images``: a false box on one of them lowers precision, as it
would on a camera.

Class ids are never trusted across sources. YOLO label files number classes
from 0, COCO files number categories however their author chose; the loader
checks every id against the set's own class list and refuses unknown ones,
naming them, instead of shifting silently.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from vision.errors import ConfigError, FrameError
from vision.ingest.images import image_size_from_header

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    image_id: int
    width: int
    height: int
    bbox_xyxy: np.ndarray  # (n, 4) float64, pixels
    class_index: np.ndarray  # (n,) int, index into LabelledSet.class_names

    @property
    def is_empty(self) -> bool:
        return self.class_index.size == 0


@dataclass(frozen=True)
class LabelledSet:
    name: str
    source: Path
    split: str
    class_names: list[str]
    category_ids: list[int]  # COCO category id of each class, same order
    images: list[LabelledImage] = field(repr=False)

    @property
    def num_boxes(self) -> int:
        return sum(int(image.class_index.size) for image in self.images)

    @property
    def num_empty_images(self) -> int:
        return sum(1 for image in self.images if image.is_empty)

    def boxes_per_class(self) -> list[int]:
        counts = np.zeros(len(self.class_names), dtype=int)
        for image in self.images:
            np.add.at(counts, image.class_index, 1)
        return [int(c) for c in counts]

    def to_coco(self) -> dict[str, Any]:
        """COCO ground truth; every image is listed, with objects or not."""
        images, annotations = [], []
        for image in self.images:
            images.append(
                {
                    "id": image.image_id,
                    "file_name": image.path.name,
                    "width": image.width,
                    "height": image.height,
                }
            )
            for box, index in zip(image.bbox_xyxy, image.class_index, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image.image_id,
                        "category_id": self.category_ids[int(index)],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        categories = [
            {"id": cid, "name": name}
            for cid, name in zip(self.category_ids, self.class_names, strict=True)
        ]
        return {"images": images, "annotations": annotations, "categories": categories}


def load_labelled_set(
    data: str | Path, *, split: str = "test", images_dir: Path | None = None
) -> LabelledSet:
    """A YOLO ``data.yaml`` or a COCO JSON file, by its suffix."""
    path = Path(data)
    if not path.is_file():
        raise ConfigError(f"eval set {path}: not found")
    if path.suffix.lower() == ".json":
        return load_coco_json(path, images_dir=images_dir, split=split)
    if path.suffix.lower() in {".yaml", ".yml"}:
        return load_yolo_set(path, split=split)
    raise ConfigError(f"eval set {path}: expected a data.yaml or a COCO .json file")


def load_yolo_set(data_yaml: Path, *, split: str = "test") -> LabelledSet:
    """A YOLO-format set as ultralytics reads it (labels beside ``images``)."""
    data_yaml = data_yaml.resolve()
    spec = _read_yaml(data_yaml)
    class_names = _yolo_names(spec, data_yaml)
    # As ultralytics: 'path' (relative to the file) is the root, else the
    # file's own folder.
    root = data_yaml.parent / spec["path"] if spec.get("path") else data_yaml.parent
    if split not in spec:
        raise ConfigError(f"{data_yaml}: no {split!r} split (has: {', '.join(spec)})")
    entries = spec[split] if isinstance(spec[split], list) else [spec[split]]
    image_paths = [
        p for entry in entries for p in _image_files(root / entry, data_yaml)
    ]
    if not image_paths:
        raise ConfigError(f"{data_yaml}: split {split!r} holds no images")

    images = [
        _yolo_image(path, image_id, len(class_names))
        for image_id, path in enumerate(image_paths, start=1)
    ]
    return LabelledSet(
        name=data_yaml.parent.name,
        source=data_yaml,
        split=split,
        class_names=class_names,
        category_ids=list(range(1, len(class_names) + 1)),
        images=images,
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a mapping at the top")
    return spec


def _yolo_names(spec: dict[str, Any], path: Path) -> list[str]:
    names = spec.get("names")
    if isinstance(names, dict):
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise ConfigError(f"{path}: class ids must run 0..n-1, found {keys}")
        names = [str(names[k]) for k in keys]
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{path}: 'names' must list the class names")
    if "nc" in spec and int(spec["nc"]) != len(names):
        raise ConfigError(f"{path}: nc is {spec['nc']} but 'names' has {len(names)}")
    return [str(n) for n in names]


def _image_files(entry: Path, data_yaml: Path) -> list[Path]:
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if entry.is_file() and entry.suffix == ".txt":
        lines = entry.read_text(encoding="utf-8").split()
        return [(entry.parent / line).resolve() for line in lines if line]
    raise ConfigError(f"{data_yaml}: image folder or list {entry} not found")


def label_path_for(image_path: Path) -> Path:
    """ultralytics' rule: the last ``images`` folder becomes ``labels``."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _yolo_image(path: Path, image_id: int, num_classes: int) -> LabelledImage:
    width, height = image_size(path)
    label_file = label_path_for(path)
    rows = _label_rows(label_file) if label_file.is_file() else []
    boxes, classes = [], []
    for line_no, values in rows:
        class_id = int(values[0])
        if not 0 <= class_id < num_classes:
            raise ConfigError(
                f"{label_file}:{line_no}: class id {class_id} is outside the set's "
                f"classes 0..{num_classes - 1}"
            )
        coords = np.asarray(values[1:], dtype=np.float64)
        if coords.size == 4:
            cx, cy, w, h = coords
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        else:  # a segment polygon: its bounding box, as ultralytics does
            xs, ys = coords[0::2], coords[1::2]
            box = [xs.min(), ys.min(), xs.max(), ys.max()]
        boxes.append(np.asarray(box) * [width, height, width, height])
        classes.append(class_id)
    return LabelledImage(
        path=path,
        image_id=image_id,
        width=width,
        height=height,
        bbox_xyxy=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        class_index=np.asarray(classes, dtype=int),
    )


def _label_rows(label_file: Path) -> list[tuple[int, list[float]]]:
    rows = []
    for line_no, line in enumerate(
        label_file.read_text(encoding="utf-8").splitlines(), 1
    ):
        values = line.split()
        if not values:
            continue
        if len(values) < 5 or len(values) % 2 == 0:
            raise ConfigError(
                f"{label_file}:{line_no}: expected 'class cx cy w h' or a polygon, "
                f"got {line.strip()!r}"
            )
        rows.append((line_no, [float(v) for v in values]))
    return rows


def image_size(path: Path) -> tuple[int, int]:
    """Width and height, from the header when the format allows."""
    try:
        return image_size_from_header(path)
    except FrameError:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ConfigError(f"{path}: not a readable image") from None
        return int(image.shape[1]), int(image.shape[0])


def load_coco_json(
    json_path: Path, *, images_dir: Path | None = None, split: str = "test"
) -> LabelledSet:
    """A COCO detection ground truth; image files lie in ``images_dir``
    (default: beside the JSON file, or in its ``images`` folder)."""
    try:
        spec = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{json_path}: not valid JSON: {exc}") from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(spec.get(key), list):
            raise ConfigError(f"{json_path}: expected a list under {key!r}")

    categories = sorted(spec["categories"], key=lambda c: int(c["id"]))
    category_ids = [int(c["id"]) for c in categories]
    class_names = [str(c["name"]) for c in categories]
    if len(set(class_names)) != len(class_names):
        raise ConfigError(f"{json_path}: category names are not unique")
    _check_annotation_ids(spec, category_ids, json_path)

    base = images_dir or _coco_images_dir(json_path, spec["images"])
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in spec["annotations"]:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    index_of = {cid: i for i, cid in enumerate(category_ids)}
    images = [
        _coco_image(entry, base, by_image.get(int(entry["id"]), []), index_of)
        for entry in spec["images"]
    ]
    return LabelledSet(
        name=json_path.stem,
        source=json_path,
        split=split,
        class_names=class_names,
        category_ids=category_ids,
        images=images,
    )


def _check_annotation_ids(
    spec: dict[str, Any], category_ids: list[int], json_path: Path
) -> None:
    known_categories = set(category_ids)
    unknown = sorted(
        {int(a["category_id"]) for a in spec["annotations"]} - known_categories
    )
    if unknown:
        raise ConfigError(
            f"{json_path}: annotations use category_id {unknown} that the "
            f"categories list does not define (defined: {sorted(known_categories)}); "
            "the ids are probably numbered from a different base"
        )
    image_ids = {int(i["id"]) for i in spec["images"]}
    orphans = sorted({int(a["image_id"]) for a in spec["annotations"]} - image_ids)
    if orphans:
        raise ConfigError(
            f"{json_path}: annotations refer to image_id {orphans[:10]} not in 'images'"
        )


def _coco_images_dir(json_path: Path, images: list[dict[str, Any]]) -> Path:
    for candidate in (json_path.parent, json_path.parent / "images"):
        if images and (candidate / images[0]["file_name"]).is_file():
            return candidate
    return json_path.parent


def _coco_image(
    entry: dict[str, Any],
    base: Path,
    annotations: list[dict[str, Any]],
    index_of: dict[int, int],
) -> LabelledImage:
    path = base / entry["file_name"]
    if "width" in entry and "height" in entry:
        width, height = int(entry["width"]), int(entry["height"])
    else:
        width, height = image_size(path)
    boxes = [
        [x, y, x + w, y + h] for x, y, w, h in (ann["bbox"] for ann in annotations)
    ]
    return LabelledImage(
        path=path,
        image_id=int(entry["id"]),
        width=width,
        height=height,
        bbox_xyxy=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        class_index=np.asarray(
            [index_of[int(a["category_id"])] for a in annotations], dtype=int
        ),
    )


@dataclass(frozen=True)
class ClassTable:
    """Which model class stands for each class of the set, by name."""

    set_names: list[str]
    model_names: list[str]
    model_index: list[int]  # per set class

    @classmethod
    def build(
        cls,
        set_names: list[str],
        model_names: list[str],
        renames: dict[str, str] | None = None,
    ) -> ClassTable:
        """Match by name; ``renames`` maps a set class to a differently named
        model class. Raises ConfigError naming every set class left over."""
        renames = renames or {}
        unknown_renames = sorted(set(renames) - set(set_names))
        if unknown_renames:
            raise ConfigError(
                f"class map names set classes {unknown_renames} that the set does "
                f"not have (set classes: {', '.join(set_names)})"
            )
        position = {name: i for i, name in enumerate(model_names)}
        missing = [n for n in set_names if renames.get(n, n) not in position]
        if missing:
            shown = ", ".join(model_names[:12]) + (
                ", ..." if len(model_names) > 12 else ""
            )
            raise ConfigError(
                f"the model has no class for set classes {missing} (model classes: "
                f"{shown}); map them with --class-map SET_CLASS=MODEL_CLASS"
            )
        index = [position[renames.get(n, n)] for n in set_names]
        if len(set(index)) != len(index):
            raise ConfigError("two set classes map to the same model class")
        return cls(list(set_names), list(model_names), index)

    def set_index_of_model(self) -> dict[int, int]:
        return {m: s for s, m in enumerate(self.model_index)}

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"set_class": s, "model_class": self.model_names[m], "model_id": m}
            for s, m in zip(self.set_names, self.model_index, strict=True)
        ]
