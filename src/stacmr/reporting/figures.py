"""The report's figures (seaborn): R@K with 95% CI bars per method and split, rank distributions, training curves,
and the qualitative figure (top-5 images of caption queries, scene-text aware beside visual only). Legends sit right
of the panels, never over a bar or a curve; a figure drawn from the synthetic world says so in its title.

`save_figure` writes `<name>.png` and `<name>.pdf` atomically and deterministically (no timestamps or software
versions in the files: the same inputs give the same bytes); `show` embeds a saved PNG in a notebook.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Image
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from stacmr.atomic import atomic_path
from stacmr.data.sources import split_label
from stacmr.evaluation.metrics import RECALL_KS
from stacmr.reporting.history import History
from stacmr.reporting.qualitative import Query
from stacmr.reporting.results import Results

_METADATA = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}
_DIRECTIONS = {"i2t": "image → text", "t2i": "text → image"}
SYNTHETIC_NOTE = "synthetic CTC world: not comparable to the paper"


def save_figure(fig: Figure, out_dir: Path, name: str) -> Path:
    """Write `<out_dir>/<name>.png` (150 dpi) and `.pdf`; returns the PNG's path."""
    paths = {ext: Path(out_dir) / f"{name}.{ext}" for ext in ("png", "pdf")}
    for ext, path in paths.items():
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=_METADATA[ext])
    plt.close(fig)
    return paths["png"]


def show(png: Path) -> Image:
    """The saved PNG as a notebook output; nbconvert embeds it in the HTML report."""
    return Image(filename=str(png))


def _palette(n: int) -> list:
    """n distinguishable colours: the colour-blind palette up to its 10, tab20 beyond (17 ablations and more)."""
    return sns.color_palette("colorblind" if n <= 10 else "tab20", n)


def _title(fig: Figure, title: str, synthetic: bool) -> None:
    """The figure's title, marked when the data is the synthetic world (`data.source: synthetic`)."""
    fig.suptitle(f"{title} ({SYNTHETIC_NOTE})" if synthetic else title)


def _is_synthetic(results: Results) -> bool:
    return results.params.data.source == "synthetic"


def _legend_outside(fig: Figure, ax: plt.Axes) -> None:
    """One legend for the figure, right of the panels, so that it never covers a bar or a curve (issue #17)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)


def recall_figure(results: Results) -> Figure:
    """R@1/5/10 per method, one panel per split and direction, bars with 95% bootstrap CIs."""
    rows = [
        {
            "split": split_label(e.split),
            "direction": _DIRECTIONS[d],
            "K": f"R@{k}",
            "method": e.ablation,
            "value": e.value(f"{d}_r{k}"),
            "low": e.ci(f"{d}_r{k}")[0],
            "high": e.ci(f"{d}_r{k}")[1],
        }
        for e in results.evaluated.values()
        for d in _DIRECTIONS
        for k in RECALL_KS
    ]
    frame = pd.DataFrame(rows)
    methods = list(dict.fromkeys(frame["method"]))
    splits, directions = list(dict.fromkeys(frame["split"])), list(_DIRECTIONS.values())
    colours = dict(zip(methods, _palette(len(methods)), strict=True))
    width = 0.8 / len(methods)
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(len(splits), 2, figsize=(11, 3.2 * len(splits)), squeeze=False, sharey=True)
    for (split, direction), ax in zip(itertools.product(splits, directions), axes.flat, strict=True):
        for m, method in enumerate(methods):
            cell = frame[(frame.split == split) & (frame.direction == direction) & (frame.method == method)]
            x = np.arange(len(cell)) + (m - (len(methods) - 1) / 2) * width
            v = cell["value"].to_numpy()
            err = np.stack([v - cell["low"].to_numpy(), cell["high"].to_numpy() - v])
            ax.bar(x, v, width, color=colours[method], label=method)
            ax.errorbar(x, v, yerr=err, fmt="none", ecolor="black", elinewidth=1, capsize=2)
        ax.set_xticks(np.arange(len(RECALL_KS)), [f"R@{k}" for k in RECALL_KS])
        ax.set(title=f"{split}, {direction}", ylabel="recall (%)", ylim=(0, 100))
    _title(fig, "Recall@K with 95% bootstrap CIs", _is_synthetic(results))
    fig.tight_layout()
    _legend_outside(fig, axes[0][-1])
    return fig


def rank_figure(results: Results) -> Figure:
    """Cumulative distribution of the ground truth's rank (text → image queries), per method and split."""
    splits = results.params.evaluate.splits
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 3.5), squeeze=False)
    colours = _palette(len(results.params.evaluate.ablations))
    for ax, split in zip(axes[0], splits, strict=True):
        for e, colour in zip((e for e in results.evaluated.values() if e.split == split), colours, strict=True):
            ranks = np.sort(results.ranks(e.ablation, split)["t2i"] + 1)
            ax.step(ranks, np.arange(1, len(ranks) + 1) / len(ranks), where="post", label=e.ablation, color=colour)
        ax.set_xscale("log")
        ax.set_xlabel("rank of the ground-truth image (log)")
        ax.set_ylabel("share of caption queries")
        ax.set_title(f"{split_label(split)}: text → image ranks")
    _title(fig, "Where the ground truth ranks", _is_synthetic(results))
    fig.tight_layout()
    _legend_outside(fig, axes[0][-1])
    return fig


def training_figure(histories: list[History], *, synthetic: bool) -> Figure:
    """Validation rsum and training loss per epoch, per ablation (the train stages' history CSVs)."""
    with sns.axes_style("whitegrid"):
        fig, (rsum_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for h, colour in zip(histories, _palette(len(histories)), strict=True):
        rsum_ax.plot(h.frame["epoch"], h.frame["val_rsum"], marker="o", label=h.ablation, color=colour)
        if "loss_loss" in h.frame:
            loss_ax.plot(h.frame["epoch"], h.frame["loss_loss"], marker="o", label=h.ablation, color=colour)
    rsum_ax.set(xlabel="epoch", ylabel="validation rsum", title="Validation rsum (CTC val)")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Training loss", yscale="log")
    _title(fig, "Training curves", synthetic)
    fig.tight_layout()
    _legend_outside(fig, loss_ax)
    return fig


def qualitative_figure(queries: list[Query], *, synthetic: bool) -> Figure:
    """Per query (rows), each model's top images (columns, best first) as tiles with the image id and OCR tokens;
    the ground truth framed in green."""
    methods = list(queries[0].top)
    k = len(queries[0].top[methods[0]])
    fig, axes = plt.subplots(len(queries), 1, figsize=(2.1 * k * len(methods), 2.6 * len(queries)), squeeze=False)
    for ax, query in zip(axes[:, 0], queries, strict=True):
        ax.set_xlim(0, k * len(methods) + len(methods) - 1)
        ax.set_ylim(0, 1.35)
        ax.axis("off")
        caption = textwrap.shorten(query.caption, 140)
        ax.text(
            0,
            1.3,
            f"“{caption}” (ground truth: image {query.image_id}; {query.chosen})",
            fontsize=9,
            va="top",
            weight="bold",
        )
        for m, method in enumerate(methods):
            left = m * (k + 1)
            ax.text(left, 1.08, f"{method}: ground truth at rank {query.ranks[method]}", fontsize=8, va="top")
            for i, hit in enumerate(query.top[method]):
                colour = "#1a9850" if hit.ground_truth else "#bbbbbb"
                ax.add_patch(
                    Rectangle(
                        (left + i + 0.05, 0.02), 0.9, 0.9, fill=False, lw=3 if hit.ground_truth else 1, edgecolor=colour
                    )
                )
                tokens = "\n".join(textwrap.shorten(t, 14) for t in hit.ocr_tokens[:5]) or "(no OCR tokens)"
                ax.text(left + i + 0.5, 0.85, f"#{i + 1} {hit.image_id}", ha="center", va="top", fontsize=7)
                ax.text(left + i + 0.5, 0.7, tokens, ha="center", va="top", fontsize=7, family="monospace")
    _title(
        fig,
        "Top images per caption query (OCR tokens shown; green = ground truth)\nQueries picked where the two"
        " models disagree most, both ways: illustrative, not representative",
        synthetic,
    )
    return fig
