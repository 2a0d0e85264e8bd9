"""PNG figures of the eval reports, drawn with matplotlib's Agg backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

RECALL_101 = np.linspace(0.0, 1.0, 101)


def plot_pr_curves(
    curves: Sequence[tuple[str, Sequence[float]]],
    path: Path,
    *,
    title: str,
) -> Path:
    """Overlay 101-point precision envelopes (COCO's curve at IoU 0.5).

    Each curve is (legend label, 101 precision values at recall 0..1); the
    undefined value -1 (no object of the class) is not drawn.
    """
    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    for label, precision in curves:
        values = np.asarray(precision, dtype=float)
        values = np.where(values < 0, np.nan, values)
        axes.step(RECALL_101, values, where="post", linewidth=1.8, label=label)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision (envelope)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_confusion_matrix(
    labels: Sequence[str], counts: Sequence[Sequence[int]], path: Path, *, title: str
) -> Path:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = np.asarray(counts, dtype=int)
    size = max(3.2, 0.7 * len(labels) + 2.0)
    figure, axes = plt.subplots(figsize=(size + 1.0, size), dpi=120)
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    limit = matrix.max() if matrix.size else 0
    for (row, col), value in np.ndenumerate(matrix):
        colour = "white" if limit and value > limit / 2 else "black"
        axes.text(col, row, str(value), ha="center", va="center", color=colour)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
