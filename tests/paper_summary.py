#!/usr/bin/python3
"""Summarises tests/paper.sh runs: mean +- std over seeds of test accuracy, agreement with the
teacher, training time and latency per configuration (Markdown table), each noisy setting's
difference from the plain teacher (sigma 0), and an SVG of accuracy against sigma, one line per
alpha with +-1 std bars, the labels-only and plain-teacher baselines as dashed lines. Then issue
17's tables (rows with "table" other than "grid"): the auto search against the grid, the regime
map, the low-label regime and one against two teachers, each configuration's paired difference
from its cell's baseline marked when it exceeds 2 std. Each run's command and wall time per part
($WALL_FILE, $PAPER_CMD; its cells from $THIS_RUN) are kept in RUNS_runs.json beside RUNS.jsonl,
so parts and cells run apart each keep theirs (a later run of the same cells replaces them).
usage: paper_summary.py RUNS.jsonl OUT.md OUT.svg [SETTINGS-LINE]"""
import collections
import json
import os
import statistics
import sys

BASELINE = {"regime": "labels only", "lowlabel": "labels only", "teachers": "one teacher (cnn)"}
STUDENTS = ["conv", "mlp", "half"]
TITLES = {"auto": "Automatic noise search (`--sigma auto --alpha auto`) beside the grid",
          "regime": "Regime map: training-set size x student capacity",
          "lowlabel": "Low-label regime: labelled images alone, or with the rest as `--unlabeled`",
          "teachers": "One teacher against two bundled teachers (σ 0)"}


def paired(rs, base):
    """mean and std over seeds of the difference from base's run of the same seed (points)"""
    b = {r["seed"]: r["test_accuracy"] for r in base}
    d = [100 * (r["test_accuracy"] - b[r["seed"]]) for r in rs if r["seed"] in b]
    return ms(d) if d else None


def versus(rs, base):
    """the paired difference from base's runs as text, and **helps**/**hurts** when beyond 2 std"""
    d = paired(rs, base) if base else None
    if not d:
        return "–", ""
    flag = ("**helps**" if d[0] > 0 else "**hurts**") if len(rs) > 1 and abs(d[0]) > 2 * d[1] else ""
    return "%+.2f ± %.2f" % d, flag


def cell_order(cell):
    """regime cells by size ("all" last), then student, whichever order their runs were merged in"""
    size, _, student = cell.partition(", ")
    return (int(size) if size.isdigit() else float("inf"), STUDENTS.index(student) if student in STUDENTS else 0)


def extra_table(name, runs, grid_by):
    out = ["## " + TITLES.get(name, name), ""]
    cells = collections.OrderedDict()
    for r in runs:
        cells.setdefault(r.get("cell", ""), collections.OrderedDict()).setdefault(r["config"], []).append(r)
    cells = collections.OrderedDict(sorted(cells.items(), key=lambda kv: cell_order(kv[0])))
    if name == "auto":
        rows = ["| configuration | seeds | test accuracy (%) | training s per seed (search + the kept finalist) | chosen (loss, σ, α, lr) |", "|---|---|---|---|---|"]
        for cell, by in cells.items():
            for cfg, rs in by.items():
                a = ms([100 * r["test_accuracy"] for r in rs])
                t = ms([r["train_seconds"] for r in rs])
                chosen = ", ".join("%s (%d)" % (c, n) for c, n in sorted(collections.Counter(
                    "%s σ %g α %g lr %s" % (r["loss"], r["sigma"], r["alpha"], r.get("lr", "?")) for r in rs).items()))
                rows.append("| %s | %d | %.2f ± %.2f | %.1f ± %.1f | %s |" % (cfg, len(rs), a[0], a[1], t[0], t[1], chosen))
        if grid_by:
            best = max(grid_by, key=lambda c: statistics.mean([r["test_accuracy"] for r in grid_by[c]]))
            ba = ms([100 * r["test_accuracy"] for r in grid_by[best]])
            seeds = {r["seed"] for rs in grid_by.values() for r in rs}
            grid_t = sum(r["train_seconds"] for rs in grid_by.values() for r in rs) / max(1, len(seeds))
            rows.append("| best grid point: %s | %d | %.2f ± %.2f | whole grid: %.1f per seed | |" % (best, len(grid_by[best]), ba[0], ba[1], grid_t))
            auto = [r for by in cells.values() for rs in by.values() for r in rs]
            aa = ms([100 * r["test_accuracy"] for r in auto])
            at = statistics.mean([r["train_seconds"] for r in auto])
            # the bar: no worse than 1 std below the best point (above it meets the bar too)
            out += rows + ["", "Auto against the best grid point: %+.2f points (%s, 1 std of the best point: %.2f); training time %.2f of the grid's "
                           "(bar: no more than 1 std below, at most 0.20)." % (aa[0] - ba[0], "at or above it" if aa[0] >= ba[0] else
                                                                             "within 1 std" if aa[0] >= ba[0] - ba[1] else "more than 1 std below",
                                                                             ba[1], at / grid_t if grid_t else float("nan"))]
            return out
        return out + rows
    base_name = BASELINE.get(name)
    # the regime map also pairs each noisy setting with the plain teacher: does the noise earn its place
    vs_plain = name == "regime"
    rows = ["| cell | configuration | seeds | test accuracy (%%) | vs %s, same seed (points) | > 2 std |%s agreement (%%) | best epoch | training (s) |"
            % (base_name, " noise vs plain teacher, same seed |" if vs_plain else ""), "|---|---|---|---|---|---|%s---|---|---|" % ("---|" if vs_plain else "")]
    for cell, by in cells.items():
        base = by.get(base_name)
        for cfg, rs in by.items():
            a = ms([100 * r["test_accuracy"] for r in rs])
            g = ms([100 * r["agreement"] for r in rs])
            t = ms([r["train_seconds"] for r in rs])
            e = ms([r["best_epoch"] for r in rs])
            diff, flag = versus(rs, base) if cfg != base_name else ("–", "")
            noise = ""
            if vs_plain:
                noise = " %s |" % " ".join(x for x in versus(rs, by.get("teacher, sigma 0")) if x) if cfg.startswith("sigma ") else " – |"
            rows.append("| %s | %s | %d | %.2f ± %.2f | %s | %s |%s %.2f ± %.2f | %.1f | %.1f ± %.1f |"
                        % (cell, cfg, len(rs), a[0], a[1], diff, flag, noise, g[0], g[1], e[0], t[0], t[1]))
    return out + rows


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
        l = ms([r["latency_ms"] or 0.0 for r in rs])
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
    everything = [json.loads(l) for l in open(jsonl) if l.strip()]
    if not everything:
        sys.exit("paper_summary: no runs in " + jsonl)
    runs = [r for r in everything if r.get("table", "grid") == "grid"]
    wall = {}
    if os.environ.get("WALL_FILE") and os.path.exists(os.environ["WALL_FILE"]):
        for line in open(os.environ["WALL_FILE"]):
            if "=" in line:
                k, v = line.strip().split("=", 1)
                wall[k] = int(v)
    side_path = os.path.splitext(jsonl)[0] + "_runs.json"
    side = json.load(open(side_path)) if os.path.exists(side_path) else {}
    this = everything
    if os.environ.get("THIS_RUN"):
        this = [json.loads(l) for l in open(os.environ["THIS_RUN"]) if l.strip()]
    for part, sec in wall.items():
        cells = sorted({r.get("cell", "") for r in this if r.get("table", "grid") == part})
        cmd = settings if part == "grid" else os.environ.get("PAPER_CMD", settings)
        side[part] = [e for e in side.get(part, []) if not set(e["cells"]) <= set(cells)] + \
            [{"cells": cells, "minutes": round(sec / 60, 1), "command": cmd}]
    if wall:
        open(side_path, "w").write(json.dumps(side, indent=1, ensure_ascii=False) + "\n")
    text = [side["grid"][-1]["command"]] if side.get("grid") else [settings] if settings else []
    by = collections.OrderedDict()
    for r in runs:
        by.setdefault(r["config"], []).append(r)
    if runs:
        rows, stats = table(by)
        teacher_acc = 100 * runs[0]["teacher_accuracy"]
        text.append("Student: %s parameters, %s MACs per sample; teacher models/cnn.onnx %.2f%% test accuracy." %
                    (format(runs[0]["params"], ","), format(runs[0]["macs"], ","), teacher_acc))
        if side.get("grid"):
            text.append("Wall time of the grid: %.1f min." % side["grid"][-1]["minutes"])
        text.append("\n".join(rows))
        open(svg_path, "w").write(svg(stats, teacher_acc))
    tables = collections.OrderedDict()
    for r in everything:
        if r.get("table", "grid") != "grid":
            tables.setdefault(r["table"], []).append(r)
    for name, rs in tables.items():
        t = extra_table(name, rs, by)
        for k, e in enumerate(side.get(name, [])):
            cells = "; ".join(c for c in e["cells"] if c)
            t.insert(2 + 2 * k, "%s%s: %.1f min wall." % ("Cells " + cells + ", " if cells else "", e["command"], e["minutes"]))
            t.insert(3 + 2 * k, "")
        text.append("\n".join(t))
    open(md_path, "w").write("\n\n".join(text) + "\n")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(*sys.argv[1:5])
