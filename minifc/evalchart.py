"""The evaluation chart: accuracy per category, one bar per run (base vs adapter), as a PNG.

    plot_categories(report["runs"], out / "categories.png")   # None (and a note) without matplotlib

A run scored on BFCL files shows BFCL's accuracy per category (its own checker); any other run shows
minifc's exact-answer rate per category. matplotlib is optional, as for train.py's loss.png.
"""

import sys
from pathlib import Path


def category_rates(run: dict) -> tuple[str, dict[str, float]]:
    """(what is plotted, {category: rate}) of one run of eval.py's report."""
    if "bfcl" in run:
        return "BFCL accuracy", {c: counts["accuracy"] for c, counts in run["bfcl"]["categories"].items()}
    return "exact answer", {c: section["exact"]["rate"] for c, section in run["metrics"]["by_category"].items()
                            if section["exact"]["rate"] is not None}


def plot_categories(runs: dict[str, dict], png_path) -> Path | None:
    """Grouped bars: per category, each run's rate (0-100%). Returns the path, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)", file=sys.stderr)
        return None
    series = {label: category_rates(run) for label, run in runs.items()}
    what = next(iter(series.values()))[0]
    categories = list(dict.fromkeys(c for _, rates in series.values() for c in rates))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.45 * len(categories) * len(series) + 2)), 4.5))
    for i, (label, (_, rates)) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(categories))]
        bars = ax.bar(xs, [100 * rates.get(c, 0.0) for c in categories], width, label=label)
        ax.bar_label(bars, labels=[f"{100 * rates[c]:.0f}" if c in rates else "" for c in categories], fontsize=7)
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    ax.set(ylabel=f"{what} (%)", ylim=(0, 105), title=f"{what} per category")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return Path(png_path)
