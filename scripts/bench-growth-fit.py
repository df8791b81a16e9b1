#!/usr/bin/env python3
"""Fits the results of `cargo bench -p provenance-cli --bench growth` (criterion's
estimates.json files) to t = a + b*x per benchmark line and prints a Markdown table:
the median time at each size, the fixed cost a, the per-unit cost b (per container, per
policy, per signature), R^2 of the straight line, and the log-log slope between the two
largest sizes (1.0 = linear, 2.0 = quadratic).

Usage: scripts/bench-growth-fit.py [CRITERION_DIR]
       (default: $CARGO_TARGET_DIR/criterion, else target/criterion)
"""

import json
import math
import os
import sys

GROUPS = ["pod_size", "policies", "signatures"]


def fmt(ns):
    """A duration in ns as us or ms with 3 significant digits."""
    if abs(ns) >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if abs(ns) >= 1e3:
        return f"{ns / 1e3:.3g} us"
    return f"{ns:.3g} ns"


def median(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["median"]["point_estimate"]


def fit(points):
    """Least squares t = a + b*x; returns a, b, R^2."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for _, y in points)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in points)
    r2 = 1.0 - ss_res / ss_tot if ss_tot else 1.0
    return a, b, r2


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    for group in GROUPS:
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        lines = sorted(d for d in os.listdir(gdir) if d != "report")
        sizes = set()
        data = {}
        for line in lines:
            pts = []
            for size in os.listdir(os.path.join(gdir, line)):
                est = os.path.join(gdir, line, size, "new", "estimates.json")
                if size.isdigit() and os.path.exists(est):
                    pts.append((int(size), median(est)))
            if len(pts) >= 2:
                pts.sort()
                data[line] = pts
                sizes.update(x for x, _ in pts)
        if not data:
            continue
        sizes = sorted(sizes)
        print(f"### {group}\n")
        print("| line | " + " | ".join(f"{s}" for s in sizes)
              + " | fixed a | per unit b | R² | log-log slope (last two) |")
        print("|---" * (len(sizes) + 5) + "|")
        for line, pts in data.items():
            by = dict(pts)
            a, b, r2 = fit(pts)
            (x1, y1), (x2, y2) = pts[-2], pts[-1]
            slope = math.log(y2 / y1) / math.log(x2 / x1) if y1 > 0 and y2 > 0 else float("nan")
            cells = " | ".join(fmt(by[s]) if s in by else "" for s in sizes)
            print(f"| `{line}` | {cells} | {fmt(a)} | {fmt(b)} | {r2:.4f} | {slope:.2f} |")
        print()


if __name__ == "__main__":
    main()
