#!/bin/bash
# Reports: a short distill with --report to .json, .md and .html; the JSON's keys and numbers
# hold together (ratios, accuracies in [0,1], confusion matrices summing to the test count,
# differences matching the accuracies); compare on two models (--json, --md); a bad report
# extension is refused before training; the HTML is self-contained and renders in headless
# Chromium with its charts in the DOM.
. "$(dirname "$0")/lib.sh"

# OD_TEST_QUICK=1 (run_all.sh's sanitizer pass): less data.
TRAIN=1200 TEST=300
[ "${OD_TEST_QUICK:-0}" = 1 ] && TRAIN=640 TEST=128
COMMON=(models/cnn.onnx --data fashion-mnist --width 0.5 --train-limit $TRAIN --test-limit $TEST --val-split 0.1 --threads 1
        --seed 3 --epochs 2 --quiet)

# one distill writes the JSON; the Markdown and HTML come from a second, shorter run
"$BIN" distill "${COMMON[@]}" -o "$T/s.onnx" --report "$T/r.json" >"$T/d.out" 2>"$T/d.err"
check "distill --report r.json exits 0" '[ $? -eq 0 ] || { cat "$T/d.err"; false; }'
check "report and student written" '[ -s "$T/r.json" ] && [ -s "$T/s.onnx" ]'
check "no temporary files left beside the report" '[ -z "$(ls "$T" | grep -F .tmp.)" ]'
check "summary: sizes, gzip, params, MACs, latency, accuracy, agreement" \
    'for w in "file bytes" "gzip bytes" "params" "MACs per sample" "batch 1, 1 thread" "batch 64, 2 threads" "test accuracy" "agreement with teacher"; do grep -q "$w" "$T/d.out" || { echo "missing: $w"; false; } || return 1; done'
check "summary: training time split, samples/s" \
    'grep -qE "^  loading .* s" "$T/d.out" && grep -qE "^  teacher logits .*samples/s" "$T/d.out" && grep -qE "^  epochs .*samples/s" "$T/d.out" && grep -qE "^  writing " "$T/d.out"'
check "summary names the report" 'grep -q "wrote $T/r.json" "$T/d.out"'

cat >"$T/check.py" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
problems = []
def need(cond, what):
    if not cond: problems.append(what)
for k in ["tool", "kind", "data", "test_samples", "classes", "class_names", "models", "distill"]:
    need(k in r, "top-level key " + k)
need(r["kind"] == "distill", "kind distill")
TRAIN, TEST = int(sys.argv[2]), int(sys.argv[3])
n = r["test_samples"]; K = r["classes"]
need(n == TEST, "%d test samples, not %s" % (TEST, n))
need(K == 10 and len(r["class_names"]) == 10 and r["class_names"][0] == "T-shirt/top", "Fashion-MNIST class names")
t, s = r["models"]
need(t["label"] == "teacher" and s["label"] == "student", "labels")
for m in (t, s):
    for k in ["bytes", "gzip_bytes", "params", "macs", "latency", "accuracy", "agreement", "per_class", "support", "confusion"]:
        need(k in m, m["label"] + " key " + k)
    need(0 < m["gzip_bytes"] < m["bytes"], m["label"] + " gzip smaller than the file")
    need(0 <= m["accuracy"] <= 1, m["label"] + " accuracy in [0,1]")
    conf = m["confusion"]
    need(len(conf) == K and all(len(row) == K for row in conf), m["label"] + " confusion K x K")
    need(sum(map(sum, conf)) == n, m["label"] + " confusion sums to the test count")
    diag = sum(conf[i][i] for i in range(K))
    need(diag == m["correct"] and abs(diag / n - m["accuracy"]) < 1e-9, m["label"] + " accuracy = trace / n")
    need(sum(m["support"]) == n, m["label"] + " support sums to n")
    for c in range(K):
        pc = m["per_class"][c]
        need(pc is None or (0 <= pc <= 1 and abs(pc - conf[c][c] / m["support"][c]) < 1e-9), m["label"] + " per-class %d" % c)
    lat = {(l["batch"], l["threads"]): l for l in m["latency"]}
    need(set(lat) == {(1, 1), (1, 2), (64, 1), (64, 2)}, m["label"] + " latency at batch 1,64 x threads 1,2")
    for l in m["latency"]:
        need(0 < l["p10_ms"] <= l["median_ms"] <= l["p90_ms"] and l["runs"] >= 10, m["label"] + " latency p10 <= median <= p90")
need(t["agreement"] is None and 0 <= s["agreement"] <= 1, "agreement: student only, in [0,1]")
ra = s["ratios"]
for k in ["bytes", "gzip_bytes", "params", "macs"]:
    need(abs(ra[k] - s[k] / t[k]) < 1e-4 * ra[k], "ratio " + k)
need(s["macs"] * 4 <= t["macs"] * 1.02, "student has a quarter of the MACs")
for i, l in enumerate(s["latency"]):
    need(abs(ra["latency_median"][i] - l["median_ms"] / t["latency"][i]["median_ms"]) < 1e-3 * ra["latency_median"][i], "latency ratio")
need(abs(ra["accuracy_delta"] - (s["accuracy"] - t["accuracy"])) < 1e-9, "accuracy delta")
w, rt = s["wrong_where_first_right"], s["right_where_first_wrong"]
need(sum(w["per_class"]) == w["count"] and sum(rt["per_class"]) == rt["count"], "differences: per-class counts sum")
need(abs((rt["count"] - w["count"]) / n - (s["accuracy"] - t["accuracy"])) < 1e-9, "differences explain the accuracy gap")
need(len(w["samples"]) == min(w["count"], 20) and all(x["pred"] != x["label"] == x["ref_pred"] for x in w["samples"]), "samples: student wrong, teacher right")
need(all(x["pred"] == x["label"] != x["ref_pred"] for x in rt["samples"]), "samples: student right, teacher wrong")
d = r["distill"]
for k in ["student", "weights", "options", "n_train", "n_val", "n_test", "best_epoch", "epochs", "time"]:
    need(k in d, "distill key " + k)
o = d["options"]
need(o["epochs"] == 2 and o["seed"] == 3 and o["batch"] == 64 and o["loss"] == "l2" and o["train_limit"] == TRAIN, "options")
need(d["n_train"] + d["n_val"] == TRAIN and d["n_test"] == TEST, "distill counts")
need(len(d["epochs"]) == 2 and all(e["loss"] > 0 for e in d["epochs"]), "two epochs with a loss")
need(all(0 <= e["test_accuracy"] <= 1 and 0 <= e["test_agreement"] <= 1 for e in d["epochs"]), "epoch accuracies in [0,1]")
tm = d["time"]
parts = sum(tm[k]["seconds"] for k in ["loading", "teacher_logits", "epochs", "writing"])
need(all(tm[k]["seconds"] >= 0 for k in ["loading", "teacher_logits", "epochs", "writing", "measuring"]), "phase times")
need(parts <= tm["total_seconds"] + 0.05, "phases add up to no more than the total")
need(tm["epochs"]["samples_per_s"] > 0 and tm["teacher_logits"]["samples_per_s"] > 0, "samples/s")
need(abs(tm["epochs"]["samples"] - 2 * (d["n_train"] // 64) * 64) == 0, "samples trained")
if problems:
    print("; ".join(problems)); sys.exit(1)
EOF
check "JSON: keys present and numbers consistent" '$PY "$T/check.py" "$T/r.json" $TRAIN $TEST'
check "summary agrees with the JSON (accuracy)" \
    'acc=$($PY -c "import json; print(\"%.2f%%\" % (100 * json.load(open(\"$T/r.json\"))[\"models\"][1][\"accuracy\"]))"); grep "^test accuracy" "$T/d.out" | grep -qF "$acc"'
PRE=$(sed -n 's/^preprocessing: \(.*\) (the teacher.*/\1/p' "$T/d.out")
check "JSON: the preprocessing distill printed" \
    '[ -n "$PRE" ] && [ "$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))[\"preprocessing\"])" "$T/r.json")" = "$PRE" ]'

"$BIN" distill "${COMMON[@]}" --epochs 1 -o "$T/s2.onnx" --report "$T/r.md" >"$T/m.out" 2>&1
check "distill --report r.md" '[ $? -eq 0 ] && [ -s "$T/r.md" ] || { cat "$T/m.out"; false; }'
check "Markdown: tables, sections and class names" \
    'grep -q "^| file bytes |" "$T/r.md" && grep -q "^## Accuracy per class" "$T/r.md" && grep -q "^## Training" "$T/r.md" && grep -q "### Hyper-parameters" "$T/r.md" && grep -q "confusion matrix" "$T/r.md" && grep -q "T-shirt/top" "$T/r.md" && grep -q "student wrong, teacher right" "$T/r.md"'
cat >"$T/md.py" <<'EOF'
import sys, re
blocks, cur = [], []
for line in open(sys.argv[1]):
    if line.startswith("|"): cur.append(line)
    elif cur: blocks.append(cur); cur = []
if cur: blocks.append(cur)
assert len(blocks) >= 6, len(blocks)
for b in blocks:
    counts = {len(re.findall(r"(?<!\\)\|", l)) for l in b}
    assert len(counts) == 1, b
EOF
check "Markdown: table rows have matching column counts" '$PY "$T/md.py" "$T/r.md"'
check "Markdown: the preprocessing" 'grep -qF "preprocessing: $PRE." "$T/r.md"'

"$BIN" distill "${COMMON[@]}" --epochs 2 -o "$T/s3.onnx" --report "$T/r.html" >"$T/h.out" 2>&1
check "distill --report r.html" '[ $? -eq 0 ] && [ -s "$T/r.html" ] || { cat "$T/h.out"; false; }'
check "HTML: self-contained (no script, no external URL, font or stylesheet)" \
    '! grep -qiE "<script|https?:|src=|@import|url\(|<link|@font-face" "$T/r.html"'
check "HTML: the preprocessing" 'grep -qF "preprocessing: $PRE." "$T/r.html"'

# bad extension: refused before anything runs, nothing written
start=$SECONDS
"$BIN" distill "${COMMON[@]}" -o "$T/bad.onnx" --report "$T/r.txt" >/dev/null 2>"$T/bad.err"
rc=$?
check "--report r.txt refused: exit 2 (usage), one line naming the extensions, nothing written" \
    '[ $rc -eq 2 ] && [ "$(wc -l <"$T/bad.err")" -eq 1 ] && grep -q "\.json, \.md or \.html" "$T/bad.err" && [ ! -e "$T/bad.onnx" ] && [ ! -e "$T/r.txt" ] && [ $((SECONDS - start)) -le 2 ]'
"$BIN" distill "${COMMON[@]}" -o "$T/bad.onnx" --report "$T/noext" >/dev/null 2>"$T/bad.err"
check "--report without an extension refused" '[ $? -eq 2 ] && [ ! -e "$T/bad.onnx" ]'

# compare: two models, with data
"$BIN" compare models/cnn.onnx "$T/s.onnx" --data fashion-mnist --limit $TEST --min-time 0.05 --json >"$T/c.json" 2>"$T/c.err"
check "compare --json exits 0" '[ $? -eq 0 ] || { cat "$T/c.err"; false; }'
cat >"$T/cmp.py" <<'EOF'
import json, sys
c, r, TEST = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
assert c["kind"] == "compare" and "distill" not in c and c["test_samples"] == TEST
a, b = c["models"]
assert a["label"] == "cnn.onnx" and b["label"] == "s.onnx", (a["label"], b["label"])
for x, y in zip(c["models"], r["models"]):
    for k in ["bytes", "gzip_bytes", "params", "macs", "confusion"]:
        assert x[k] == y[k], k
    assert abs(x["accuracy"] - y["accuracy"]) < 1e-9
assert abs(b["agreement"] - r["models"][1]["agreement"]) < 1e-9
assert sum(map(sum, b["confusion"])) == TEST
assert len(b["latency"]) == 4 and abs(b["ratios"]["macs"] - b["macs"] / a["macs"]) < 1e-6
EOF
check "compare --json: same models and accuracy as distill's report" '$PY "$T/cmp.py" "$T/c.json" "$T/r.json" $TEST'
"$BIN" compare models/cnn.onnx "$T/s.onnx" --batch 1 --threads 1 --min-time 0.05 --md >"$T/c.md" 2>"$T/c.err"
check "compare --md: a table with a ratio column, no accuracy without --data" \
    '[ $? -eq 0 ] && grep -q "^| | cnn.onnx | s.onnx | ratio |" "$T/c.md" && grep -q "^| MACs per sample |" "$T/c.md" && grep -q "batch 1, 1 thread" "$T/c.md" && ! grep -q "test accuracy" "$T/c.md"'
"$BIN" compare models/cnn.onnx "$T/s.onnx" --batch 1 --threads 1 --min-time 0.05 >"$T/c.txt" 2>&1
check "compare: text table by default" '[ $? -eq 0 ] && grep -qE "^MACs per sample +18,691,840 " "$T/c.txt"'
"$BIN" compare "$T/nowhere.onnx" >/dev/null 2>"$T/c.err"
check "compare: missing model is one line, exit 1" '[ $? -eq 1 ] && [ "$(wc -l <"$T/c.err")" -eq 1 ] && grep -q nowhere "$T/c.err"'
"$BIN" compare models/cnn.onnx --json --md >/dev/null 2>"$T/c.err"
check "compare: --json and --md exclude each other (usage error: exit 2)" '[ $? -eq 2 ]'

# the HTML in headless Chromium: loads, the charts are in the DOM, a screenshot is drawn
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
    echo "SKIP chromium not installed (Debian package chromium)"
    skip=$((skip + 1))
else
    chrome() {
        timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
            --disable-component-update --disable-sync --disable-extensions --user-data-dir="$(mktemp -d -p "$T")" "$@"
    }
    chrome --enable-logging=stderr --v=0 --dump-dom "file://$T/r.html" >"$T/dom.html" 2>"$T/chrome.err"
    check "Chromium loads the report" '[ $? -eq 0 ] && grep -q "</main>" "$T/dom.html" || { tail -5 "$T/chrome.err"; false; }'
    check "Chromium: no console messages or failed loads in its log" '! grep -E "CONSOLE|Uncaught|ERR_FILE|net::ERR" "$T/chrome.err"'
    cat >"$T/dom.py" <<'EOF'
import sys, re
d = open(sys.argv[1]).read()
svgs = re.findall(r"<svg\b[^>]*>", d)
assert len(svgs) >= 7, len(svgs)
for i in ["chart-size", "chart-latency", "chart-loss", "chart-accuracy", "chart-per-class", "chart-confusion-0", "chart-confusion-1"]:
    assert ("id=\"%s\"" % i) in d, i
assert d.count("class=\"bar\"") >= 2 * (4 + 4 + 10), d.count("class=\"bar\"")
assert d.count("class=\"cell\"") == 2 * 100, d.count("class=\"cell\"")
assert d.count("class=\"series\"") >= 3
for t in ["summary", "time", "epochs", "options", "per-class"]:
    assert ("<table id=\"%s\"" % t) in d, t
# and each chart as written is well-formed XML (what a strict SVG viewer would need)
import xml.etree.ElementTree as ET
src = open(sys.argv[2]).read()
charts = re.findall(r"<svg\b.*?</svg>", src, re.S)
assert len(charts) == len(svgs), (len(charts), len(svgs))
for c in charts:
    ET.fromstring(c)
EOF
    check "DOM: the charts (size, latency, loss, accuracy, per class, two confusion maps)" '$PY "$T/dom.py" "$T/dom.html" "$T/r.html"'
    chrome --hide-scrollbars --window-size=1200,3000 --screenshot="$T/r.png" "file://$T/r.html" >/dev/null 2>&1
    check "screenshot drawn" '[ -s "$T/r.png" ] && [ "$(stat -c %s "$T/r.png")" -gt 50000 ]'
    if [ -n "${REPORT_SCREENSHOT:-}" ]; then cp "$T/r.png" "$REPORT_SCREENSHOT"; cp "$T/r.html" "${REPORT_SCREENSHOT%.png}.html"; fi
fi

finish
