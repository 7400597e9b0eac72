#!/bin/bash
# Teachers as PyTorch really exports them: torchvision's classifiers (python3-torchvision),
# exported by tests/export_torchvision.py at a few opsets in 11-17 with a dynamic batch, random
# non-degenerate weights (two also with torchvision's own init, whose equal constants the exporter
# shares between layers), 32x32 inputs (64 for squeezenet and googlenet). Checks, per model:
#   run agrees with PyTorch within 1e-4 of the output scale;
#   inspect's MACs are complete (no node of unknown shape);
#   shrink --width 0.5 keeps at most the bar's share of the teacher's MACs (ViTs: heads halved
#   with the head dim kept, asserted on the graph; vit_deep --depth 0.5 drops 3 of 6 blocks);
#   every student passes onnx.checker.check_model(full_check=True) and ONNX Runtime agrees with
#   run on it (tests/ort_compare.js, 1e-4);
# and that a layer that cannot shrink is a warning naming it, and a graph with an op of unknown
# shape gets MACs printed as a lower bound; and one epoch of distill on each CNN family, the
# ViTs and ConvNeXt (trains). Exports are cached in $BUILD/real_exports (delete it
# to redo). Skipped without /usr/bin/python3 + torchvision. OD_TEST_QUICK=1 (the sanitizer pass):
# resnet18, resnext, mobilenet_v3_small and the ViTs only.
# Prints `real_exports: N passed, N failed, N skipped` last.
. "$(dirname "$0")/lib.sh"
CACHE=${OD_EXPORT_CACHE:-build/real_exports} # the exports do not depend on the build
QUICK=${OD_TEST_QUICK:-0} # run_all.sh's sanitizer pass: a few families only

need_bin
if ! "$PY" -c "import torch, torchvision, onnx" 2>/dev/null; then
    skipped "no torch, torchvision and onnx in $PY (apt-get install python3-torchvision)"
    finish
fi

# family@opset  bar: the most of the teacher's MACs a width-0.5 student may keep (percent);
# "gap:N": a known gap (documented in README "Supported teachers"): the student must stay under N
# (today's ratio, so it cannot get worse), and the line says the bar is not met.
CASES="
resnet18@11 35
resnet18@13 35
mobilenet_v2@13 40
mobilenet_v2@17 40
mobilenet_v3_small@13 40
mobilenet_v3_small_tvinit@13 40
densenet121_tvinit@13 35
squeezenet1_1@13 35
shufflenet_v2_x0_5@13 40
efficientnet_b0@13 35
densenet121@13 35
googlenet@13 35
mnasnet0_5@13 35
regnet_x_400mf@13 40
resnext@13 40
vit@11 35
vit@13 35
vit@17 35
vit_deep@13 35
vit_deep@17 35
vit_headaxis@17 35
convnext_tiny@13 35
convnext_tiny@17 35
"
if [ "$QUICK" = 1 ]; then
    CASES=$(echo "$CASES" | grep -E '^(resnet18@13|resnext@13|mobilenet_v3_small@13|vit@17|vit_deep@17) ')
fi
specs=$(echo "$CASES" | awk 'NF { print $1 }')
# shellcheck disable=SC2086
if ! "$PY" tests/export_torchvision.py "$CACHE" $specs >"$T/export.log" 2>&1; then
    bad "export: $(tail -3 "$T/export.log")"
    finish
fi

students=""
while read -r spec bar; do
    [ -n "$spec" ] || continue
    name="${spec%@*}_op${spec#*@}"
    base="$CACHE/$name"
    # run against PyTorch
    if "$BIN" run "$base.onnx" --input "$base.in.npy" --output "$T/$name.out.npy" >/dev/null 2>"$T/err" &&
        "$PY" - "$T/$name.out.npy" "$base.ref.npy" >"$T/cmp" 2>&1 <<'EOF'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
d = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
print("max diff %.3g, output scale %.3g" % (d, float(np.abs(b).max())))
sys.exit(0 if d <= 1e-4 * max(1.0, float(np.abs(b).max())) else 1)
EOF
    then ok; else bad "$name: run vs PyTorch: $(cat "$T/err" "$T/cmp" 2>/dev/null | head -2)"; fi
    # inspect's MACs complete
    if "$BIN" inspect "$base.onnx" --json 2>&1 | grep -q '"macs_complete": true'; then ok
    else bad "$name: inspect --json does not report complete MACs"; fi
    # shrink
    "$BIN" shrink "$base.onnx" --width 0.5 -o "$T/$name.student.onnx" >"$T/shrink.out" 2>"$T/shrink.err"
    rc=$?
    [ $rc -eq 0 ] || { bad "$name: shrink failed: $(head -2 "$T/shrink.err")"; continue; }
    ratio=$(sed -n 's/.*, \([0-9.]*\)% of the MACs).*/\1/p' "$T/shrink.out")
    limit=${bar#gap:}
    if [ -n "$ratio" ] && awk -v r="$ratio" -v l="$limit" 'BEGIN { exit !(r <= l) }'; then
        ok
        if [ "$bar" != "$limit" ]; then echo "KNOWN GAP $name: width 0.5 keeps $ratio% of the MACs (bar 40%)"; fi
    else
        bad "$name: width 0.5 keeps ${ratio:-?}% of the MACs, more than $limit%"
    fi
    students="$students $T/$name.student.onnx"
done <<<"$CASES"

# a layer that cannot shrink is a warning naming it and why (a Gather picks some of its channels)
"$PY" - "$T/pinned.onnx" <<'EOF'
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
r = np.random.default_rng(2)
inits = [numpy_helper.from_array(r.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1"),
         numpy_helper.from_array(np.array([0, 2, 4], np.int64), "idx"),
         numpy_helper.from_array(r.standard_normal((4, 3, 1, 1)).astype(np.float32), "w2")]
g = helper.make_graph(
    [helper.make_node("Conv", ["x", "w1"], ["a"], name="c1"),
     helper.make_node("Gather", ["a", "idx"], ["b"], name="pick", axis=1),
     helper.make_node("Conv", ["b", "w2"], ["y"], name="c2")],
    "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])], inits)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
EOF
"$BIN" shrink "$T/pinned.onnx" --width 0.5 -o "$T/s.onnx" >"$T/out" 2>"$T/err"
if grep -q '^onnx-distill: warning: layer "c1" (Conv) keeps all its 8 channels: read by node "pick" (Gather): gathers along the channels' "$T/err" &&
    grep -q ' 1 kept whole (see the warnings)' "$T/out"; then ok
else bad "no per-layer warning or summary count: $(head -2 "$T/err") $(head -3 "$T/out")"; fi

# transformers: heads halved with the head dim kept (the q, k, v Reshapes of every attention ask
# for [T, B * 2, 16]: their Concat'ed shape's batch-times-heads Mul constant 4 -> 2), in_proj
# [E, 3E] -> [32, 96]; vit_headaxis (timm's layout) asks for [B, T, 2, 16]; depth 0.5 keeps 3 of vit_deep's 6 encoder blocks (1, 4 and 6)
vits=""
for spec in vit@11 vit@13 vit@17 vit_deep@13 vit_deep@17; do
    name="${spec%@*}_op${spec#*@}"
    [ -s "$T/$name.student.onnx" ] && vits="$vits $T/$name.student.onnx"
done
# shellcheck disable=SC2086
[ -s "$T/vit_headaxis_op17.student.onnx" ] && vits="$vits $T/vit_headaxis_op17.student.onnx"
if [ -n "$vits" ] && "$PY" - $vits >"$T/heads" 2>&1 <<'EOF'; then ok; else bad "attention heads in the ViT students: $(tail -3 "$T/heads")"; fi
import sys, onnx
from onnx import numpy_helper
bad = 0
for f in sys.argv[1:]:
    g = onnx.load(f).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    inproj = [init[n.input[1]].shape for n in g.node if n.op_type == "MatMul" and
              n.input[1] in init and "self_attention" in n.name]
    heads = []
    for n in g.node:  # heads on an axis of their own: Reshape to Concat(b, t, [h], [E/h])
        cat = prod.get(n.input[1]) if n.op_type == "Reshape" else None
        if cat is not None and cat.op_type == "Concat" and len(cat.input) == 4:
            heads.append(tuple(int(init[i].reshape(-1)[0]) for i in cat.input[2:]))
            inproj = [init[m.input[1]].shape for m in g.node if m.op_type == "MatMul" and
                      m.input[1] in init and m.name.split("/")[-2] in "qkv"]
    for n in g.node:
        src = prod.get(n.input[0])
        if n.op_type != "Reshape" or src is None or src.op_type != "Slice":
            continue
        cat = prod[n.input[1]]  # Concat(tokens, Unsqueeze(batch * heads), head dim)
        hd = int(init[cat.input[2]].reshape(-1)[0])
        mul = prod[prod[cat.input[1]].input[0]]
        h = [int(init[i]) for i in mul.input if i in init]
        heads.append((h[0] if h else None, hd))
    ok = len(heads) > 0 and all(x == (2, 16) for x in heads) and \
        all(s in ((32, 96), (32, 32)) for s in inproj)
    print(f, "q/k/v reshapes (heads, head dim):", sorted(set(heads)), "in_proj:", sorted(set(inproj)))
    bad += not ok
sys.exit(1 if bad else 0)
EOF
"$BIN" shrink "$CACHE/vit_deep_op17.onnx" --width 0.5 --depth 0.5 -o "$T/vit_deep_d.student.onnx" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q 'depth 0.5: 3 of 6 removable blocks dropped' "$T/out" &&
    grep -q '^depth: kept encoder blocks 1, 4, 6 of 6; dropped 2 ' "$T/out" &&
    [ "$("$PY" -c "import onnx,sys; print(sum(n.op_type == 'Softmax' for n in onnx.load(sys.argv[1]).graph.node))" "$T/vit_deep_d.student.onnx")" = 3 ]; then
    ok
    students="$students $T/vit_deep_d.student.onnx"
else bad "vit_deep --depth 0.5: $(cat "$T/out" "$T/err" | head -5)"; fi

# students: ONNX's full check, then ONNX Runtime against run
# shellcheck disable=SC2086
if "$PY" - $students >"$T/check" 2>&1 <<'EOF'; then ok; else bad "onnx.checker: $(tail -3 "$T/check")"; fi
import sys, onnx
bad = 0
for f in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(f), full_check=True)
    except Exception as e:
        bad += 1
        print(f, str(e).splitlines()[0])
sys.exit(1 if bad else 0)
EOF
export NODE_PATH="$PWD/tests/node_modules"
if [ -d tests/node_modules/onnxruntime-node ] || [ -d "$(readlink -f tests/node_modules)/onnxruntime-node" ]; then
    # shellcheck disable=SC2086
    node tests/ort_compare.js --tol 1e-4 --batch 1,3 --bin "$BIN" $students >"$T/ort" 2>&1
    if [ $? -eq 0 ]; then ok; else bad "ONNX Runtime vs run on the students: $(grep -v '^ok' "$T/ort" | tail -3)"; fi
else
    skipped "no onnxruntime-node in tests/node_modules"
fi

# MACs as a lower bound when shape inference stops: a Conv after an op nobody knows
"$PY" - "$T/unknown.onnx" <<'EOF'
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
g = helper.make_graph(
    [helper.make_node("Conv", ["x", "w"], ["a"], name="c1"),
     helper.make_node("Mystery", ["a"], ["b"], name="m", domain="example.com"),
     helper.make_node("Relu", ["b"], ["y"], name="r")],
    "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("example.com", 1)])
m.metadata_props.add(key="source", value="t_real_exports")
onnx.save(m, sys.argv[1])
EOF
"$BIN" inspect "$T/unknown.onnx" >"$T/out" 2>&1
if grep -q '^MACs  *>= 3,888 per sample (a lower bound: 2 nodes of unknown shape)' "$T/out" &&
    grep -q 'source = t_real_exports' "$T/out"; then ok
else bad "inspect on a graph with an unknown op: $(grep -E 'MACs|meta' "$T/out")"; fi
"$BIN" inspect "$T/unknown.onnx" --json >"$T/out" 2>&1
if grep -q '"macs_complete": false, "macs_unknown_nodes": 2' "$T/out" && grep -q '"metadata": {"source": "t_real_exports"}' "$T/out"; then ok
else bad "inspect --json on a graph with an unknown op: $(head -c 300 "$T/out")"; fi

# a contrib op (com.microsoft.Attention, as ONNX Runtime's transformer optimiser writes one
# attention node) is refused by run, eval and distill in one line naming the file, op and node,
# nothing written; shrink keeps the layers around it whole, a warning naming it
"$PY" - "$T/msattn.onnx" "$T/msattn.in.npy" "$T/msattn.npz" <<'EOF'
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
r = np.random.default_rng(0)
w = {n: numpy_helper.from_array(r.standard_normal(s).astype(np.float32) * 0.3, n)
     for n, s in (("w0", (8, 8)), ("wqkv", (8, 24)), ("bqkv", (24,)), ("w2", (8, 10)))}
g = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w0"], ["a"], name="proj"),
     helper.make_node("Attention", ["a", "wqkv", "bqkv"], ["b"], name="attn0", domain="com.microsoft", num_heads=2),
     helper.make_node("MatMul", ["b", "w2"], ["c"], name="head"),
     helper.make_node("ReduceMean", ["c"], ["y"], name="pool", axes=[1], keepdims=0)],
    "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], list(w.values()))
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]),
          sys.argv[1])
np.save(sys.argv[2], r.standard_normal((2, 4, 8)).astype(np.float32))
np.savez(sys.argv[3], x_train=r.random((32, 4, 8), dtype=np.float32), y_train=r.integers(0, 10, 32),
         x_test=r.random((8, 4, 8), dtype=np.float32), y_test=r.integers(0, 10, 8))
EOF
msg="^onnx-distill: $T/msattn.onnx: unsupported op: com.microsoft.Attention (node \"attn0\")\$"
for c in "run $T/msattn.onnx --input $T/msattn.in.npy --output $T/msattn.out.npy" \
    "eval $T/msattn.onnx --data $T/msattn.npz --scale 1" \
    "distill $T/msattn.onnx --data $T/msattn.npz --scale 1 --batch 8 --epochs 1 --latency off --quiet -o $T/msattn.s.onnx"; do
    rc=0
    # shellcheck disable=SC2086
    "$BIN" $c >"$T/out" 2>"$T/err" || rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q "$msg" "$T/err" && [ ! -e "$T/msattn.s.onnx" ] &&
        [ ! -e "$T/msattn.out.npy" ]; then ok
    else bad "com.microsoft.Attention: ${c%% *}: exit $rc: $(head -3 "$T/err")"; fi
done
"$BIN" shrink "$T/msattn.onnx" --width 0.5 -o "$T/msattn.s.onnx" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q 'read by node "attn0" (com.microsoft.Attention)' "$T/err"; then ok
else bad "com.microsoft.Attention: shrink: $(head -2 "$T/err")"; fi

# grouped convs get narrower groups, each with its own channels: a teacher whose dropped channels
# are exactly zero gives a width-0.5 student with the teacher's outputs (groups keep different
# local channels: group 0 keeps 0 and 3, group 1 keeps its 1 and 2)
"$PY" - "$T/grouped.onnx" "$T/grouped.in.npy" <<'EOF'
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
r = np.random.default_rng(3)
w1 = r.standard_normal((8, 4, 1, 1)).astype(np.float32)
w1[[1, 2, 4, 7]] = 0                       # kept: 0, 3 (group 0), 5, 6 (group 1)
w2 = r.standard_normal((8, 4, 3, 3)).astype(np.float32)
w2[[0, 3, 4, 7]] = 0                       # kept outputs: 1, 2, 5, 6
w3 = r.standard_normal((3, 8, 1, 1)).astype(np.float32)
inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"))]
g = helper.make_graph(
    [helper.make_node("Conv", ["x", "w1"], ["a"], name="c1"),
     helper.make_node("Relu", ["a"], ["ar"], name="r1"),
     helper.make_node("Conv", ["ar", "w2"], ["b"], name="c2", group=2, pads=[1, 1, 1, 1]),
     helper.make_node("Relu", ["b"], ["br"], name="r2"),
     helper.make_node("Conv", ["br", "w3"], ["y"], name="c3")],
    "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 6, 6])], inits)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
np.save(sys.argv[2], r.standard_normal((2, 4, 6, 6)).astype(np.float32))
EOF
"$BIN" shrink "$T/grouped.onnx" --width 0.5 --round 1 --bn off -o "$T/grouped_s.onnx" >"$T/out" 2>&1 &&
    "$BIN" run "$T/grouped.onnx" --input "$T/grouped.in.npy" --output "$T/gt.npy" >/dev/null 2>&1 &&
    "$BIN" run "$T/grouped_s.onnx" --input "$T/grouped.in.npy" --output "$T/gs.npy" >/dev/null 2>&1
if [ $? -eq 0 ] && "$PY" - "$T/grouped_s.onnx" "$T/gt.npy" "$T/gs.npy" >"$T/gcheck" <<'EOF'; then ok; else bad "grouped conv at width 0.5: $(cat "$T/out" "$T/gcheck" 2>/dev/null | head -3)"; fi
import sys, numpy as np, onnx
m = onnx.load(sys.argv[1])
c2 = [n for n in m.graph.node if n.name == "c2"][0]
w2 = [i for i in m.graph.initializer if i.name == c2.input[1]][0]
group = [a.i for a in c2.attribute if a.name == "group"][0]
a, b = np.load(sys.argv[2]), np.load(sys.argv[3])
ok = group == 2 and list(w2.dims) == [4, 2, 3, 3] and np.abs(a - b).max() <= 1e-5 * max(1, np.abs(a).max())
print("group", group, "w2", list(w2.dims), "diff", np.abs(a - b).max())
sys.exit(0 if ok else 1)
EOF

# ---- preprocessing you can see --------------------------------------------------------------
# float data already in [0, 1] and the teacher's scale 1/255: an error naming --scale 1
"$PY" - "$T/unit.npz" "$T/rgb.npz" <<'EOF'
import sys, numpy as np
r = np.random.default_rng(0)
y = lambda n: r.integers(0, 10, n).astype(np.int64)
np.savez(sys.argv[1], x_train=r.random((128, 1, 28, 28), dtype=np.float32), y_train=y(128),
         x_test=r.random((16, 1, 28, 28), dtype=np.float32), y_test=y(16))
np.savez(sys.argv[2], x_train=r.integers(0, 256, (64, 3, 32, 32)).astype(np.uint8), y_train=y(64),
         x_test=r.integers(0, 256, (8, 3, 32, 32)).astype(np.uint8), y_test=y(8))
EOF
"$BIN" distill models/cnn.onnx --data "$T/unit.npz" --width 0.5 --epochs 1 --quiet -o "$T/p.onnx" >"$T/out" 2>"$T/err"
if [ $? -eq 1 ] && grep -q -- "--scale 1" "$T/err" && [ ! -e "$T/p.onnx" ]; then ok
else bad "float data in [0,1] with scale 1/255 is not refused: $(head -2 "$T/err")"; fi
"$BIN" distill models/cnn.onnx --data "$T/unit.npz" --scale 1 --width 0.5 --epochs 1 --batch 16 --latency off --quiet -o "$T/p.onnx" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "^preprocessing: scale 1, mean 0.286, std 0.353 (the teacher's preprocess" "$T/out" &&
    grep -q "kept whole" "$T/out" && "$BIN" inspect "$T/p.onnx" | grep -q "preprocess.scale = 1$"; then ok
else bad "--scale 1: preprocessing not printed, builder summary missing or not recorded: $(head -3 "$T/out") $(head -2 "$T/err")"; fi
# a torchvision teacher has no metadata: the default is said, and --mean/--std imagenet work
rc=0
[ "$QUICK" = 1 ] || "$BIN" distill "$CACHE/resnet18_op13.onnx" --data "$T/rgb.npz" --mean imagenet --std imagenet --width 0.25 --epochs 1 --batch 16 --lr 1e-3 --latency off --quiet -o "$T/r.onnx" >"$T/out" 2>"$T/err" || rc=$?
if [ "$QUICK" = 1 ]; then skipped "imagenet preprocessing (quick mode)"
elif [ $rc -eq 0 ] && grep -q "^preprocessing: scale 0.003921569 (1/255), mean 0.485,0.456,0.406, std 0.229,0.224,0.225 (the teacher has no preprocess" "$T/out" &&
    "$BIN" inspect "$T/r.onnx" | grep -q "preprocess.mean = 0.485,0.456,0.406"; then ok
else bad "imagenet preprocessing: $(grep preprocessing "$T/out") $(head -2 "$T/err")"; fi

# ---- trains: one epoch of distill through every op of each CNN family -----------------------
# 24 training samples, 8 held out (a split of 1-2 samples has no spread: always "collapsed"),
# 8 test. A tiny run's accuracy means nothing; the bar is that training runs through every op.
# Every family must finish with a student written: the exports' BatchNorm statistics are
# measured (export_torchvision.py calibrate), so no teacher answers the same for every input.
"$PY" - "$T/t32.npz" "$T/t64.npz" <<'EOF'
import sys, numpy as np
r = np.random.default_rng(1)
for path, hw in ((sys.argv[1], 32), (sys.argv[2], 64)):
    np.savez(path, x_train=r.integers(0, 256, (32, 3, hw, hw)).astype(np.uint8), y_train=r.integers(0, 10, 32),
             x_test=r.integers(0, 256, (8, 3, hw, hw)).astype(np.uint8), y_test=r.integers(0, 10, 8))
EOF
TRAINS="resnet18 mobilenet_v2 mobilenet_v3_small squeezenet1_1 shufflenet_v2_x0_5 efficientnet_b0
densenet121 googlenet mnasnet0_5 regnet_x_400mf resnext"
[ "$QUICK" = 1 ] && TRAINS="resnet18 resnext mobilenet_v3_small"
for fam in $TRAINS; do
    data="$T/t32.npz"
    case $fam in squeezenet1_1 | googlenet) data="$T/t64.npz" ;; esac
    rc=0
    "$BIN" distill "$CACHE/${fam}_op13.onnx" --data "$data" --mean imagenet --std imagenet --width 0.5 --epochs 1 --latency off \
        --batch 8 --val-split 0.25 --quiet -o "$T/trained.onnx" >"$T/out" 2>"$T/err" || rc=$?
    if [ $rc -eq 0 ] && [ -s "$T/trained.onnx" ]; then ok
    else bad "$fam: one epoch of distill: exit $rc: $(grep -v '^width\|^canonical\|^preprocessing' "$T/err" | head -2)"; fi
    rm -f "$T/trained.onnx"
done
# The transformers: batched attention MatMuls, the class token's Expand and Gather, LayerNorm,
# Softmax, GELU, ConvNeXt's depthwise Conv after a Transpose (width and depth 0.5 for the ViTs),
# at the default rate: ConvNeXt at opset 13 (LayerNorm decomposed) collapsed at it while its
# exported eps was a trained parameter (runtime/plan.c, is_parameter).
TTRAINS="vit@11 vit@13 vit@17 vit_deep@13 vit_deep@17 vit_headaxis@17 convnext_tiny@13 convnext_tiny@17"
[ "$QUICK" = 1 ] && TTRAINS="vit@17 vit_deep@17"
for spec in $TTRAINS; do
    fam=${spec%@*} op=${spec#*@} extra=""
    case $fam in vit*) extra="--depth 0.5" ;; esac
    rc=0
    # shellcheck disable=SC2086
    "$BIN" distill "$CACHE/${fam}_op$op.onnx" --data "$T/t32.npz" --mean imagenet --std imagenet --width 0.5 $extra --latency off \
        --epochs 1 --batch 8 --val-split 0.25 --quiet -o "$T/trained.onnx" >"$T/out" 2>"$T/err" || rc=$?
    if [ $rc -eq 0 ] && [ -s "$T/trained.onnx" ]; then ok
    else bad "$spec: one epoch of distill: exit $rc: $(grep -v '^width\|^depth\|^canonical\|^preprocessing' "$T/err" | head -2)"; fi
    rm -f "$T/trained.onnx"
done

finish
