"""Classification metrics and the result CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

RESULT_COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]


def classification_metrics(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    """Accuracy plus per-class precision, recall and F1 (exact match after strip)."""
    gold = [g.strip() for g in gold]
    predicted = [p.strip() for p in predicted]
    classes = sorted(set(gold))
    per_class: dict[str, dict[str, float]] = {}
    for label in classes:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": tp + fn,
        }
    correct = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p)
    macro_f1 = sum(c["f1"] for c in per_class.values()) / max(1, len(per_class))
    return {
        "accuracy": round(correct / max(1, len(gold)), 4),
        "macro_f1": round(macro_f1, 4),
        "n_examples": len(gold),
        "per_class": per_class,
    }


def result_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in RESULT_COLUMNS})
    return buf.getvalue().encode()
