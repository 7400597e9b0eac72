#!/usr/bin/python3
"""Summarises tests/paper.sh runs: mean +- std over seeds of test accuracy, agreement with the
teacher, training time and latency per configuration (Markdown table), each noisy setting's
difference from the plain teacher (sigma 0), and an SVG of accuracy against sigma, one line per
alpha with +-1 std bars, the labels-only and plain-teacher baselines as dashed lines.
usage: paper_summary.py RUNS.jsonl OUT.md OUT.svg [SETTINGS-LINE]"""
import collections
import json
import statistics
import sys


def ms(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def table(by):
    rows = ["| configuration | seeds | test accuracy (%) | vs σ 0 (points) | agreement with teacher (%) | training (s) | latency batch 1 (ms) |",
            "|---|---|---|---|---|---|---|"]
    base = by.get("teacher, sigma 0")
    stats = {}
    for cfg, rs in by.items():
        a = ms([100 * r["test_accuracy"] for r in rs])
        g = ms([100 * r["agreement"] for r in rs])
        t = ms([r["train_seconds"] for r in rs])
        l = ms([r["latency_ms"] for r in rs])
        stats[cfg] = a
        diff = "–"
        if base and cfg != "teacher, sigma 0":
            # paired by seed: the same seed gives the same initial student and batch order
            b = {r["seed"]: r["test_accuracy"] for r in base}
            d = [100 * (r["test_accuracy"] - b[r["seed"]]) for r in rs if r["seed"] in b]
            if d:
                dm, ds = ms(d)
                diff = "%+.2f ± %.2f" % (dm, ds)
        rows.append("| %s | %d | %.2f ± %.2f | %s | %.2f ± %.2f | %.1f ± %.1f | %.4f ± %.4f |"
                    % (cfg, len(rs), a[0], a[1], diff, g[0], g[1], t[0], t[1], l[0], l[1]))
    return rows, stats


def svg(stats, teacher_acc):
    noisy = {}  # (sigma, alpha) -> (mean, std), from "sigma S, alpha A"
    for c, v in stats.items():
        if c.startswith("sigma "):
            noisy[(float(c.split()[1].rstrip(",")), float(c.split()[3]))] = v
    sig = sorted({k[0] for k in noisy})
    alphas = sorted({k[1] for k in noisy})
    vals = [v[0] - v[1] for v in stats.values()] + [v[0] + v[1] for v in stats.values()]
    lo, hi = min(vals) - 0.2, max(vals) + 0.2
    W, H, L, B = 600, 340, 60, 44
    X = lambda i: L + 30 + i * (W - L - 150) / max(1, len(sig) - 1)
    Y = lambda v: H - B - (v - lo) / (hi - lo) * (H - B - 20)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, H - B, W - 10, H - B),
           '<line x1="%d" y1="20" x2="%d" y2="%d" stroke="black"/>' % (L, L, H - B)]
    for k in range(5):
        v = lo + k * (hi - lo) / 4
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (L - 5, Y(v) + 4, v))
    for i, s in enumerate(sig):
        out.append('<text x="%.1f" y="%d" text-anchor="middle">σ %g</text>' % (X(i), H - B + 16, s))
    title = "student test accuracy (%%, mean ± std over seeds) against the noise σ; teacher %.2f%%" % teacher_acc
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % (W // 2, H - 8, title))
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for j, a in enumerate(alphas):
        c = colors[j % 4]
        pts = []
        for i, sg in enumerate(sig):
            if (sg, a) in noisy:
                x = X(i) + (j - (len(alphas) - 1) / 2) * 6  # spread the bars so they do not overlap
                m, sd = noisy[(sg, a)]
                pts.append((x, Y(m)))
                out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>' % (x, Y(m - sd), x, Y(m + sd), c))
                out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (x, Y(m), c))
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (c, " ".join("%.1f,%.1f" % p for p in pts)))
        out.append('<text x="%d" y="%d" fill="%s">α %g</text>' % (L + 12, H - B - 12 - 16 * (len(alphas) - 1 - j), c, a))
    for name, color, text in (("teacher, sigma 0", "#555", "plain teacher (σ 0)"), ("labels only", "#999", "labels only")):
        if name in stats:
            y = Y(stats[name][0])
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="5,4"/>' % (L, y, W - 10, y, color))
            out.append('<text x="%d" y="%.1f" fill="%s" text-anchor="end">%s</text>' % (W - 12, y - 4, color, text))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(jsonl, md_path, svg_path, settings=""):
    runs = [json.loads(l) for l in open(jsonl) if l.strip()]
    if not runs:
        sys.exit("paper_summary: no runs in " + jsonl)
    by = collections.OrderedDict()
    for r in runs:
        by.setdefault(r["config"], []).append(r)
    rows, stats = table(by)
    teacher_acc = 100 * runs[0]["teacher_accuracy"]
    head = ["Student: %s parameters, %s MACs per sample; teacher models/cnn.onnx %.2f%% test accuracy." %
            (format(runs[0]["params"], ","), format(runs[0]["macs"], ","), teacher_acc)]
    if settings:
        head.insert(0, settings)
    open(md_path, "w").write("\n\n".join(head) + "\n\n" + "\n".join(rows) + "\n")
    open(svg_path, "w").write(svg(stats, teacher_acc))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(*sys.argv[1:5])
