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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
