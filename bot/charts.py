"""Loss-curve PNGs drawn with matplotlib (headless)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def loss_chart(points: list[list[float | None]], title: str) -> bytes:
    """points: [[step, train_loss, valid_loss or None], ...] → PNG bytes."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    steps = [p[0] for p in points]
    ax.plot(steps, [p[1] for p in points], label="training loss", color="#2f6fdf", linewidth=1.6)
    valid = [(p[0], p[2]) for p in points if len(p) > 2 and p[2] is not None]
    if valid:
        ax.plot(
            *zip(*valid, strict=True),
            label="validation loss",
            color="#e8772e",
            marker="o",
            markersize=3,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _png(fig)


def _png(fig: object) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return buf.getvalue()


def metrics_chart(metrics: dict[str, dict[str, float]], title: str) -> bytes:
    """Grouped bars: one group per metric, one bar per model (scores from 0 to 1)."""
    models = list(metrics)
    names = [m for m in next(iter(metrics.values())) if m != "errors"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, [metrics[model].get(n, 0.0) for n in names], width, label=model[-40:])
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def confusion_chart(labels: list[str], confusion: list[list[int]], title: str) -> bytes:
    """Reference classes down, answers across (the last column: anything else)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=100)
    ax.imshow(confusion, cmap="Blues")
    columns = [*labels, "other"]
    ax.set_xticks(range(len(columns)), [c[:14] for c in columns], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [c[:14] for c in labels])
    for r, row in enumerate(confusion):
        for c, value in enumerate(row):
            ax.text(c, r, str(value), ha="center", va="center", fontsize=8)
    ax.set_xlabel("answered")
    ax.set_ylabel("reference")
    ax.set_title(title, fontsize=10)
    return _png(fig)
