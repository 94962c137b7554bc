#!/usr/bin/env python3
"""Plots the utility curve of federated search over noised embeddings.

Reads the CSV written by `domicile bench federated-utility --csv FILE` (one
row per dataset, metric, epsilon and clip norm) and draws recall@10 against
epsilon, one line per clip norm, one panel per dataset (synthetic first): solid lines are the
federated result as merged by score, dashed lines the bound on any merge of
the same candidates. epsilon = inf (clipping and grid, no noise) is the
rightmost tick.

    python3 docs/plots/utility_curve.py [docs/plots/utility_curve.csv] [docs/utility-curve.png]

Needs matplotlib (a documentation tool only: pip install matplotlib).
"""
import csv
import math
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    panels = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row["dataset"], row["metric"])
            panels[key][(float(row["clip_ratio"]), float(row["clip_norm"]))].append(row)
    return panels


def position(epsilon, finite_max):
    """log2 of epsilon; inf one and a half steps right of the largest finite epsilon."""
    return math.log2(finite_max) + 1.5 if epsilon == "inf" else math.log2(float(epsilon))


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "docs/plots/utility_curve.csv"
    target = sys.argv[2] if len(sys.argv) > 2 else "docs/utility-curve.png"
    panels = read(source)
    figure, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for axis, ((dataset, metric), lines) in zip(axes[0], sorted(panels.items(), key=lambda item: (not item[0][0].startswith("synthetic"), item[0]))):
        epsilons = sorted({row["epsilon"] for rows in lines.values() for row in rows},
                          key=lambda e: math.inf if e == "inf" else float(e))
        finite_max = max(float(e) for e in epsilons if e != "inf")
        for index, ((ratio, norm), rows) in enumerate(sorted(lines.items())):
            rows = sorted(rows, key=lambda row: position(row["epsilon"], finite_max))
            colour = f"C{index}"
            finite = [row for row in rows if row["epsilon"] != "inf"]
            xs = [position(row["epsilon"], finite_max) for row in finite]
            axis.plot(xs, [float(row["recall_at_10"]) for row in finite], "o-", color=colour,
                      label=f"clip {ratio:g}× median norm ({norm:.3g})")
            axis.plot(xs, [float(row["recall_bound"]) for row in finite], "s--", color=colour, alpha=0.6, markersize=4)
            for row in rows:
                if row["epsilon"] == "inf":
                    x = position("inf", finite_max) + 0.15 * (index - (len(lines) - 1) / 2)  # side by side, not on top
                    axis.plot([x], [float(row["recall_at_10"])], "*", color=colour, markersize=13)
        ticks = [position(e, finite_max) for e in epsilons]
        axis.set_xticks(ticks, ["∞\n(no noise)" if e == "inf" else e for e in epsilons])
        axis.axvline(math.log2(finite_max) + 0.75, color="grey", linewidth=0.8, linestyle=":")
        axis.set_ylim(0, 1.05)
        axis.set_xlabel("ε per export (δ = 1e-6)")
        axis.set_ylabel("recall@10 against the exact top-10 over all regions")
        axis.set_title(f"{dataset} ({metric}), 3 regions")
        axis.grid(alpha=0.3)
        axis.plot([], [], "k-", label="merged by score (federated search)")
        axis.plot([], [], "k--", alpha=0.6, label="bound: best merge of the same candidates")
        axis.legend(fontsize=8, loc="center left")
    figure.suptitle("Federated search over noised embeddings: utility against ε (exact scans)")
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
