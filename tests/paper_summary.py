#!/usr/bin/python3
"""Summarises tests/paper.sh runs: mean +- std of test accuracy, training time and latency per
configuration (Markdown table) and an SVG of accuracy against sigma, one line per alpha, with
the labels-only and plain-teacher baselines as horizontal lines."""
import collections
import json
import statistics
import sys


def main(jsonl, md_path, svg_path):
    runs = [json.loads(l) for l in open(jsonl) if l.strip()]
    by = collections.OrderedDict()
    for r in runs:
        by.setdefault(r["config"], []).append(r)

    def ms(xs):
        return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)

    lines = ["| configuration | seeds | test accuracy (%) | training time (s) | latency batch 1 (ms) |", "|---|---|---|---|---|"]
    stats = {}
    for cfg, rs in by.items():
        a = ms([100 * r["test_accuracy"] for r in rs])
        t = ms([r["seconds"] for r in rs])
        l = ms([r["latency_ms"] for r in rs])
        stats[cfg] = a
        lines.append("| %s | %d | %.2f ± %.2f | %.0f ± %.0f | %.4f ± %.4f |" % (cfg, len(rs), a[0], a[1], t[0], t[1], l[0], l[1]))
    open(md_path, "w").write("\n".join(lines) + "\n")

    # SVG: x = sigma (0.1 .. 0.8, log-ish spacing by index), y = accuracy
    sig = sorted({float(c.split()[1].rstrip(",")) for c in stats if c.startswith("sigma ")})
    alphas = sorted({float(c.split()[3]) for c in stats if c.startswith("sigma ")})
    vals = [v[0] for v in stats.values()]
    if not vals:
        return
    lo, hi = min(vals) - 0.3, max(vals) + 0.3
    W, H, L, B = 560, 320, 60, 40
    X = lambda i: L + 20 + i * (W - L - 40) / max(1, len(sig) - 1)
    Y = lambda v: H - B - (v - lo) / (hi - lo) * (H - B - 20)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, H - B, W - 10, H - B),
           '<line x1="%d" y1="20" x2="%d" y2="%d" stroke="black"/>' % (L, L, H - B)]
    for k in range(5):
        v = lo + k * (hi - lo) / 4
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>' % (L - 5, Y(v) + 4, v))
    for i, s in enumerate(sig):
        out.append('<text x="%.1f" y="%d" text-anchor="middle">σ %g</text>' % (X(i), H - B + 16, s))
    out.append('<text x="%d" y="%d" text-anchor="middle">test accuracy (%%) of the student against the noise σ</text>' % (W // 2, H - 5))
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for j, a in enumerate(alphas):
        pts = [(X(i), Y(stats["sigma %g, alpha %g" % (s, a)][0])) for i, s in enumerate(sig) if "sigma %g, alpha %g" % (s, a) in stats]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (colors[j % 4], " ".join("%.1f,%.1f" % p for p in pts)))
        out.append('<text x="%d" y="%d" fill="%s">α %g</text>' % (W - 90, 30 + 16 * j, colors[j % 4], a))
    for name, color in (("teacher, sigma 0", "#555"), ("labels only", "#aaa")):
        if name in stats:
            y = Y(stats[name][0])
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="5,4"/>' % (L, y, W - 10, y, color))
            out.append('<text x="%d" y="%.1f" fill="%s">%s</text>' % (L + 5, y - 4, color, "plain teacher (σ 0)" if "teacher" in name else "labels only"))
    out.append("</svg>")
    open(svg_path, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
