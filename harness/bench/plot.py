"""The benchmark's picture: latency against throughput, one panel per operation.

Each target is one colour; its p50 is a solid line, its p99 a dashed one, and every
point is labelled with its connection count, so the curve reads left to right as
"more clients: how much more throughput, for how much more waiting". Up and to the
left is worse. Uses matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.bench.fold import OP_TITLES, OPS, Cell, fold_throughput
from harness.bench.model import BenchResults

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def write_plot(results: BenchResults, path: Path) -> bool:
    """Draw ``path`` (PNG); False if there is nothing to draw or no matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415 - heavy, and only needed here

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    cells = fold_throughput(results.throughput)
    ops = [op for op in OPS if any(key[1] == op for key in cells)]
    if not ops:
        return False
    figure, axes = plt.subplots(1, len(ops), figsize=(6 * len(ops), 5), squeeze=False)
    for axis, op in zip(axes[0], ops, strict=True):
        for index, target in enumerate(results.targets):
            series = sorted((cell for key, cell in cells.items()
                             if key[0] == target.name and key[1] == op),
                            key=lambda cell: cell.connections)
            if series:
                _draw_series(axis, series, target.name, COLOURS[index % len(COLOURS)])
        axis.set_title(OP_TITLES[op])
        axis.set_xlabel("requests/s")
        axis.set_ylabel("latency, ms (log)")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle(f"walkv benchmark {results.started} ({results.mode}): latency vs "
                    f"throughput; labels = connections", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def _draw_series(axis: Axes, series: list[Cell], name: str, colour: str) -> None:
    """p50 (solid) and p99 (dashed) of one target, points labelled by connections."""
    x = [cell.requests_per_s for cell in series]
    for attr, style, marker in (("p50_ms", "-", "o"), ("p99_ms", "--", "^")):
        y = [max(getattr(cell, attr), 1e-3) for cell in series]
        axis.plot(x, y, style, marker=marker, color=colour,
                  label=f"{name} {attr.removesuffix('_ms')}")
        for cell, px, py in zip(series, x, y, strict=True):
            axis.annotate(f"{cell.connections}c", (px, py),
                          textcoords="offset points", xytext=(4, 4), fontsize="x-small",
                          color=colour)
