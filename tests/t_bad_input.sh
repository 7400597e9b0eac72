#!/bin/bash
# Nothing a user feeds in crashes the tool or loses their work (issue 8). Every case runs a
# command on a bad model, dataset, tensor file or option and checks: exit status 1 (not a
# crash: no signal, no sanitizer report), exactly one line on stderr naming what is wrong (the
# file, node, op or tensor), and nothing left in the output folder (no output file, no
# temporary file). The bad files are made here: models with /usr/bin/python3 + onnx.helper or by
# corrupting bytes, datasets with numpy. kill -9 during distill leaves an earlier output
# byte-identical. Run against the sanitizer build with BUILD=build-asan.
# (tests/t_distill.sh covers SIGINT/--resume and distill's basic bad options.)
. "$(dirname "$0")/lib.sh"
# Sanitizers exit with their own codes, so a report is never mistaken for a clean exit 1.
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:exitcode=86:detect_leaks=1
export LSAN_OPTIONS=${LSAN_OPTIONS:-}:exitcode=87
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-}:exitcode=88:print_stacktrace=1
O=$T/out # the output folder of every case: must stay empty

# expect_fail NAME REGEX COMMAND...: exit 1 (a runtime error), one stderr line matching REGEX
# (extended, case sensitive), $O empty afterwards. expect_usage: the same with exit 2 (a usage
# error: an unknown option, a value out of range).
expect_fail() {
    local name=$1 re=$2 why="" rc lines
    shift 2
    rm -rf "$O"
    mkdir -p "$O"
    "$@" >"$T/stdout" 2>"$T/stderr" </dev/null
    rc=$?
    lines=$(wc -l <"$T/stderr")
    [ $rc -eq "${want_rc:-1}" ] || why="exit status $rc"
    grep -qE 'Sanitizer|runtime error|^ *#[0-9]+ 0x' "$T/stderr" && why="$why; sanitizer report"
    [ "$lines" -eq 1 ] || why="$why; $lines lines on stderr"
    grep -qE -- "$re" "$T/stderr" || why="$why; stderr does not match /$re/"
    [ -z "$(ls -A "$O")" ] || why="$why; left behind: $(ls -A "$O" | tr '\n' ' ')"
    if [ -z "$why" ]; then
        ok "$name"
    else
        bad "$name:$why"
        head -c 3000 "$T/stderr" | sed 's/^/    /'
    fi
}

expect_usage() { want_rc=2 expect_fail "$@"; }

if ! $PY -c 'import onnx, numpy' 2>/dev/null; then
    skipped "/usr/bin/python3 lacks onnx or numpy: the fixtures cannot be made"
    finish
fi

TEACHER=models/cnn.onnx
D=(--epochs 1 --threads 1 --quiet --batch 32)

# ---- fixtures ---------------------------------------------------------------------------------
F=$T/f
mkdir -p "$F/sub"
$PY - "$F" models/cnn.onnx <<'EOF' || { bad "making the fixtures"; finish; }
import os, sys
import numpy as np
import onnx
from onnx import helper as h, TensorProto as TP, numpy_helper as nh

out, teacher = sys.argv[1], sys.argv[2]


def save(m, name, check=False):
    if check:
        onnx.checker.check_model(m)
    with open(os.path.join(out, name), "wb") as f:
        f.write(m.SerializeToString())


def model(nodes, inputs, outputs, inits=(), opset=13):
    g = h.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="t_bad_input")


X = h.make_tensor_value_info("x", TP.FLOAT, ["N", 4])
Y = h.make_tensor_value_info("y", TP.FLOAT, ["N", 4])
save(model([h.make_node("Relu", ["x"], ["y"], name="relu")], [X], [Y]), "good.onnx", True)
# a cycle: a = x + b, b = relu(a)
save(model([h.make_node("Add", ["x", "b"], ["a"], name="add_1"),
            h.make_node("Relu", ["a"], ["b"], name="relu_1"),
            h.make_node("Identity", ["b"], ["y"], name="out")], [X], [Y]), "cycle.onnx")
# an input nobody writes
save(model([h.make_node("Add", ["x", "ghost_act"], ["y"], name="add_dangling")], [X], [Y]),
     "dangling.onnx")
# Gemm's bias named but absent (its weight is there)
W = nh.from_array(np.ones((4, 4), np.float32), "fc.weight")
save(model([h.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1)],
           [X], [Y], [W]), "missing_init.onnx")
# three unsupported ops, one in a custom domain
save(model([h.make_node("Relu", ["x"], ["a"], name="r"),
            h.make_node("Einsum", ["a"], ["b"], name="einsum_1", equation="ij->ij"),
            h.make_node("Hardmax", ["b"], ["c"], name="hardmax_1"),
            h.make_node("MyCustomOp", ["c"], ["y"], name="custom_1", domain="com.example")],
           [X], [Y]), "unsupported.onnx")
X784 = h.make_tensor_value_info("x", TP.FLOAT, ["N", 784])
Y10 = h.make_tensor_value_info("y", TP.FLOAT, ["N", 10])
save(model([h.make_node("Einsum", ["x"], ["b"], name="einsum_1", equation="ij->ij"),
            h.make_node("Hardmax", ["b"], ["c"], name="hardmax_1"),
            h.make_node("MyCustomOp", ["c"], ["y"], name="custom_1", domain="com.example")],
           [X784], [Y10]), "unsupported784.onnx")
# attributes the op does not define: Relu with "slope"; the teacher's first Conv with "pad" for
# "pads" (run with the default it gives another shape; ONNX Runtime refuses the model)
save(model([h.make_node("Relu", ["x"], ["y"], name="relu_attr", slope=0.1)], [X], [Y]), "attr_relu.onnx")
m = onnx.load(teacher)
conv = next(n for n in m.graph.node if n.op_type == "Conv")
conv.name = "conv_pad"
next(a for a in conv.attribute if a.name == "pads").name = "pad"
onnx.save(m, os.path.join(out, "attr_conv_pad.onnx"))
# element types: an unknown code on a graph input and on an initializer; complex64 into Relu
m = model([h.make_node("Relu", ["x"], ["y"], name="relu")], [X], [Y])
m.graph.input[0].type.tensor_type.elem_type = 99
save(m, "dtype_input.onnx")
t = nh.from_array(np.ones((4,), np.float32), "w_odd")
t.data_type = 99
save(model([h.make_node("Add", ["x", "w_odd"], ["y"], name="add_w")], [X], [Y], [t]), "dtype_init.onnx")
Xc = h.make_tensor_value_info("x", TP.COMPLEX64, ["N", 4])
Yc = h.make_tensor_value_info("y", TP.COMPLEX64, ["N", 4])
save(model([h.make_node("Relu", ["x"], ["y"], name="relu_c")], [Xc], [Yc]), "dtype_complex.onnx")
# dims whose product overflows int64: an initializer, and a graph input
t = TP(); t.name = "huge"; t.data_type = TP.FLOAT; t.dims.extend([1 << 32, 1 << 32, 16]); t.raw_data = b"\0" * 16
save(model([h.make_node("Add", ["x", "huge"], ["y"], name="add_huge")], [X], [Y], [t]), "overflow_init.onnx")
Xh = h.make_tensor_value_info("x", TP.FLOAT, ["N", 1 << 40, 1 << 40])
Yh = h.make_tensor_value_info("y", TP.FLOAT, ["N", 1 << 40, 1 << 40])
save(model([h.make_node("Relu", ["x"], ["y"], name="relu_huge")], [Xh], [Yh]), "overflow_input.onnx")
# an initializer larger than its bytes: inline raw data, and an external file too short
t = TP(); t.name = "w_raw"; t.data_type = TP.FLOAT; t.dims.extend([1000]); t.raw_data = b"\0" * 16
save(model([h.make_node("Add", ["x", "w_raw"], ["y"], name="add_raw")], [X], [Y], [t]), "init_short.onnx")


def ext_model(name, location, offset=None):
    t = TP(); t.name = "w_ext"; t.data_type = TP.FLOAT; t.dims.extend([4])
    t.data_location = TP.EXTERNAL
    e = t.external_data.add(); e.key = "location"; e.value = location
    if offset is not None:
        e = t.external_data.add(); e.key = "offset"; e.value = str(offset)
    save(model([h.make_node("Add", ["x", "w_ext"], ["y"], name="add_ext")], [X], [Y], [t]),
         os.path.join("sub", name))


with open(os.path.join(out, "sub", "w_short.bin"), "wb") as f:
    f.write(b"\0" * 8)  # 8 bytes, 16 needed
with open(os.path.join(out, "secret.bin"), "wb") as f:
    f.write(b"\0" * 16)  # the right size, but outside the model's folder
ext_model("ext_short.onnx", "w_short.bin")
ext_model("ext_offset.onnx", "w_short.bin", offset=1 << 62)
ext_model("ext_dotdot.onnx", "../secret.bin")
ext_model("ext_dotdot2.onnx", "a/../../secret.bin")
ext_model("ext_abs.onnx", os.path.abspath(os.path.join(out, "secret.bin")))
ext_model("ext_symlink.onnx", "link.bin")
ext_model("ext_missing.onnx", "nowhere.bin")

# datasets for the 1x28x28 teacher: 256 train, 64 test samples
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (256, 28, 28), dtype=np.uint8)
y = rng.integers(0, 10, (256,), dtype=np.int64)


def npz(name, **a):
    base = dict(x_train=x, y_train=y, x_test=x[:64], y_test=y[:64])
    base.update(a)
    np.savez(os.path.join(out, name), **{k: v for k, v in base.items() if v is not None})


npz("ok.npz")
npz("shape.npz", x_train=rng.integers(0, 256, (256, 3, 32, 32), dtype=np.uint8),
    x_test=rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8))
yb = y.copy(); yb[5] = -1
npz("label_neg.npz", y_train=yb)
yb = y.copy(); yb[7] = 1 << 40
npz("label_huge.npz", y_train=yb)
yb = y.copy(); yb[3] = 12  # fine for the file, outside the 10-class teacher
npz("label_class.npz", y_train=yb, y_test=yb[:64])
npz("label_count.npz", y_train=y[:10])
xf = (x / 255.0).astype(np.float32); xf[2, 3, 4] = np.nan
npz("nan.npz", x_train=xf, x_test=xf[:64])
xf = (x / 255.0).astype(np.float32); xf[9, 0, 0] = -np.inf
npz("inf.npz", x_train=xf, x_test=xf[:64])

# teachers with a NaN in the first conv's weights, and infinities in a Gemm's
for name, rank, value, whole in [("nan_teacher.onnx", 4, np.nan, False), ("inf_teacher.onnx", 2, np.inf, True)]:
    m = onnx.load(teacher)
    for init in m.graph.initializer:
        if len(init.dims) == rank:
            a = nh.to_array(init).copy()
            if whole:
                a[:] = value
            else:
                a.flat[0] = value
            init.CopyFrom(nh.from_array(a, init.name))
            break
    onnx.save(m, os.path.join(out, name))

np.save(os.path.join(out, "x.npy"), np.ones((2, 4), np.float32))
np.save(os.path.join(out, "x_f64.npy"), np.ones((2, 4), np.float64))
np.save(os.path.join(out, "x_shape.npy"), np.ones((2, 5), np.float32))
EOF
ln -s /etc/hostname "$F/sub/link.bin"
: >"$F/empty.onnx"
$PY -c 'import random, sys; random.seed(8); sys.stdout.buffer.write(bytes(random.randrange(256) for _ in range(3000)))' >"$F/random.onnx"
head -c 900000 models/cnn.onnx >"$F/truncated.onnx"
head -c 300 models/cnn.onnx >"$F/truncated_head.onnx"
cp "$F/random.onnx" "$F/random.npz"
head -c 40000 "$F/ok.npz" >"$F/truncated.npz"
: >"$F/empty.npy"
head -c 60 "$F/x.npy" >"$F/truncated.npy"
cp "$F/random.onnx" "$F/random.pb"
mkdir -p "$F/idx_bad"
head -c 2000 "$F/random.onnx" | gzip >"$F/idx_bad/train-images-idx3-ubyte.gz"
cp "$F/idx_bad/train-images-idx3-ubyte.gz" "$F/idx_bad/t10k-images-idx3-ubyte.gz"
mkdir -p "$F/idx_trunc"
printf '\x00\x00\x08\x03\x00\x00\x00\x64\x00\x00\x00\x1c\x00\x00\x00\x1c' >"$F/idx_trunc/train-images-idx3-ubyte"
head -c 5000 /dev/zero >>"$F/idx_trunc/train-images-idx3-ubyte"
cp "$F/idx_trunc/train-images-idx3-ubyte" "$F/idx_trunc/t10k-images-idx3-ubyte"

# ---- models that do not decode or do not check -----------------------------------------------
for cmd in inspect "run --input $F/x.npy --output $O/y.npy" "bench --min-time 0.01 --batch 1 --threads 1" \
    "optimize -o $O/o.onnx" "shrink --width 0.5 -o $O/s.onnx" "eval --data $F/ok.npz" \
    "distill --data $F/ok.npz ${D[*]} -o $O/s.onnx" "compare --no-latency $TEACHER"; do
    c=${cmd%% *}
    expect_fail "$c: empty file" 'empty\.onnx: .*empty' $BIN $cmd "$F/empty.onnx"
    expect_fail "$c: random bytes" 'random\.onnx: not an ONNX model' $BIN $cmd "$F/random.onnx"
    expect_fail "$c: truncated model" 'truncated\.onnx: .*(truncated|malformed)' $BIN $cmd "$F/truncated.onnx"
    expect_fail "$c: model with a cycle" 'cycle\.onnx: node "add_1" \(Add\): .*cycle' $BIN $cmd "$F/cycle.onnx"
    expect_fail "$c: dangling input" 'dangling\.onnx: node "add_dangling" \(Add\): input "ghost_act"' $BIN $cmd "$F/dangling.onnx"
    expect_fail "$c: missing initializer" 'missing_init\.onnx: node "fc" \(Gemm\): input "fc\.bias"' $BIN $cmd "$F/missing_init.onnx"
    expect_fail "$c: unknown element type (input)" 'dtype_input\.onnx: graph input "x" has element type 99' $BIN $cmd "$F/dtype_input.onnx"
    expect_fail "$c: unknown element type (initializer)" 'dtype_init\.onnx: initializer "w_odd" has element type 99' $BIN $cmd "$F/dtype_init.onnx"
    expect_fail "$c: initializer dims overflow" 'overflow_init\.onnx: initializer "huge": .*overflows' $BIN $cmd "$F/overflow_init.onnx"
    expect_fail "$c: initializer larger than its bytes" 'init_short\.onnx: initializer "w_raw" holds 16 bytes, its dims need 4000' $BIN $cmd "$F/init_short.onnx"
    expect_fail "$c: external data larger than its file" 'ext_short\.onnx: initializer "w_ext": external data file .*w_short\.bin" holds 8 bytes' $BIN $cmd "$F/sub/ext_short.onnx"
    expect_fail "$c: external data offset past its file" 'ext_offset\.onnx: initializer "w_ext": .*holds 8 bytes' $BIN $cmd "$F/sub/ext_offset.onnx"
    expect_fail "$c: external data ../" 'ext_dotdot\.onnx: initializer "w_ext": external data path "\.\./secret\.bin" leaves the model' $BIN $cmd "$F/sub/ext_dotdot.onnx"
    expect_fail "$c: external data a/../../" 'ext_dotdot2\.onnx: initializer "w_ext": .*leaves the model' $BIN $cmd "$F/sub/ext_dotdot2.onnx"
    expect_fail "$c: external data absolute path" 'ext_abs\.onnx: initializer "w_ext": external data path ".*secret\.bin" is absolute' $BIN $cmd "$F/sub/ext_abs.onnx"
    expect_fail "$c: external data symlink out" 'ext_symlink\.onnx: initializer "w_ext": .*"link\.bin" resolves outside' $BIN $cmd "$F/sub/ext_symlink.onnx"
    expect_fail "$c: external data missing" 'ext_missing\.onnx: initializer "w_ext": .*nowhere\.bin' $BIN $cmd "$F/sub/ext_missing.onnx"
done
expect_fail "inspect: a folder" 'is a folder' $BIN inspect "$F"
expect_fail "inspect: no such file" 'nowhere\.onnx: No such file' $BIN inspect "$F/nowhere.onnx"
expect_fail "run: truncated in its header" 'truncated_head\.onnx' $BIN run "$F/truncated_head.onnx" --input "$F/x.npy" --output "$O/y.npy"
expect_fail "distill: output folder missing (found before training)" "$O/no/s\.onnx: cannot write there" $BIN distill $TEACHER --data "$F/ok.npz" "${D[@]}" -o "$O/no/s.onnx"
expect_fail "distill: --resume from a file that is no checkpoint" 'random\.onnx: not a checkpoint' $BIN distill $TEACHER --data "$F/ok.npz" "${D[@]}" --resume "$F/random.onnx" -o "$O/s.onnx"
expect_fail "shrink: --spec that is not JSON" 'x\.npy:1:1: ' $BIN shrink $TEACHER --spec "$F/x.npy" -o "$O/s.onnx"
expect_fail "distill: bad --student" 'cycle\.onnx: node "add_1"' $BIN distill $TEACHER --student "$F/cycle.onnx" --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx"

# ---- models that decode but cannot run: fail at plan time, naming every culprit ----------------
UNSUP='unsupported\.onnx: unsupported ops: Einsum \(node "einsum_1"\), Hardmax \(node "hardmax_1"\), com\.example\.MyCustomOp \(node "custom_1"\)'
expect_fail "run: every unsupported op at once" "$UNSUP" $BIN run "$F/unsupported.onnx" --input "$F/x.npy" --output "$O/y.npy"
expect_fail "bench: every unsupported op at once" "$UNSUP" $BIN bench "$F/unsupported.onnx" --min-time 0.01 --batch 1 --threads 1
expect_fail "eval: every unsupported op at once" 'unsupported\.onnx: unsupported ops: Einsum .*Hardmax .*MyCustomOp' $BIN eval "$F/unsupported.onnx" --data "$F/ok.npz"
expect_fail "distill: unsupported ops in the teacher" 'unsupported ops: Einsum .*Hardmax .*MyCustomOp' $BIN distill "$F/unsupported784.onnx" --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx"
ATTR='node "relu_attr" \(Relu\): unknown attribute "slope"'
expect_fail "run: unknown attribute" "attr_relu\.onnx: $ATTR" $BIN run "$F/attr_relu.onnx" --input "$F/x.npy" --output "$O/y.npy"
expect_fail "bench: unknown attribute" "$ATTR" $BIN bench "$F/attr_relu.onnx" --min-time 0.01 --batch 1 --threads 1
PAD='node "conv_pad" \(Conv\): unknown attribute "pad"'
expect_fail "eval: Conv with pad for pads" "$PAD" $BIN eval "$F/attr_conv_pad.onnx" --data "$F/ok.npz"
expect_fail "shrink: Conv with pad for pads" "$PAD" $BIN shrink "$F/attr_conv_pad.onnx" --width 0.5 -o "$O/s.onnx"
expect_fail "distill: Conv with pad for pads" "$PAD" $BIN distill "$F/attr_conv_pad.onnx" --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx"
expect_fail "distill: student with pad for pads" "$PAD" $BIN distill $TEACHER --student "$F/attr_conv_pad.onnx" --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx"
if $BIN inspect "$F/attr_conv_pad.onnx" >"$T/inspect.out" 2>&1 && grep -qE "note .*$PAD" "$T/inspect.out"; then
    ok "inspect: unknown attribute is a note, exit 0"
else
    bad "inspect: unknown attribute is a note, exit 0"
    head -c 2000 "$T/inspect.out" | sed 's/^/    /'
fi
expect_fail "run: complex64 input" 'input "x" wants complex64, the file holds float' $BIN run "$F/dtype_complex.onnx" --input "$F/x.npy" --output "$O/y.npy"
expect_fail "bench: complex64 into Relu" 'dtype_complex\.onnx: node "relu_c" \(Relu\): .*complex64' $BIN bench "$F/dtype_complex.onnx" --min-time 0.01 --batch 1 --threads 1
expect_fail "bench: input dims overflow" 'overflow_input\.onnx: graph input "x": the product of its dims overflows' $BIN bench "$F/overflow_input.onnx" --min-time 0.01 --batch 1 --threads 1
expect_fail "eval: input dims overflow" 'overflow_input\.onnx: ' $BIN eval "$F/overflow_input.onnx" --data "$F/ok.npz"
expect_fail "distill: input dims overflow" 'model input is \[N,1099511627776,1099511627776\]' $BIN distill "$F/overflow_input.onnx" --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx"
expect_fail "run: input file of the wrong type" 'x_f64\.npy: input "x" wants float, the file holds double' $BIN run "$F/good.onnx" --input "$F/x_f64.npy" --output "$O/y.npy"
expect_fail "run: input file of the wrong shape" 'x_shape\.npy: input "x" wants shape \[N,4\], the file holds \[2,5\]' $BIN run "$F/good.onnx" --input "$F/x_shape.npy" --output "$O/y.npy"

# ---- tensor files -----------------------------------------------------------------------------
expect_fail "run: empty .npy" 'empty\.npy: ' $BIN run "$F/good.onnx" --input "$F/empty.npy" --output "$O/y.npy"
expect_fail "run: truncated .npy" 'truncated\.npy: .*truncated' $BIN run "$F/good.onnx" --input "$F/truncated.npy" --output "$O/y.npy"
expect_fail "run: random bytes as .npy" 'random\.onnx: not a \.npy file|random\.onnx: ' $BIN run "$F/good.onnx" --input "$F/random.onnx" --output "$O/y.npy"
expect_fail "run: random bytes as .pb" 'random\.pb: ' $BIN run "$F/good.onnx" --input "$F/random.pb" --output "$O/y.npy"
expect_fail "run: output into a missing folder" "$O/no/y\.npy: " $BIN run "$F/good.onnx" --input "$F/x.npy" --output "$O/no/y.npy"

# ---- datasets ---------------------------------------------------------------------------------
for c in eval distill; do
    args=(--data)
    [ $c = distill ] && extra=("${D[@]}" -o "$O/s.onnx") || extra=()
    expect_fail "$c: dataset shape does not fit the model" '3072|\[3,32,32\]' $BIN $c $TEACHER "${args[@]}" "$F/shape.npz" "${extra[@]}"
    expect_fail "$c: negative label" 'label_neg\.npz: y_train\.npy: labels out of range: -1 at sample 5' $BIN $c $TEACHER "${args[@]}" "$F/label_neg.npz" "${extra[@]}"
    expect_fail "$c: label above 65535" 'label_huge\.npz: y_train\.npy: labels out of range: 1099511627776 at sample 7' $BIN $c $TEACHER "${args[@]}" "$F/label_huge.npz" "${extra[@]}"
    expect_fail "$c: label beyond the model's classes" 'sample 3 has label 12, outside .*10 classes' $BIN $c $TEACHER "${args[@]}" "$F/label_class.npz" "${extra[@]}"
    expect_fail "$c: labels and samples disagree" 'label_count\.npz: y_train\.npy: 10 labels for 256 samples' $BIN $c $TEACHER "${args[@]}" "$F/label_count.npz" "${extra[@]}"
    expect_fail "$c: NaN in the data" 'nan\.npz: x_train\.npy: NaN at sample 2' $BIN $c $TEACHER "${args[@]}" "$F/nan.npz" "${extra[@]}"
    expect_fail "$c: infinity in the data" 'inf\.npz: x_train\.npy: infinity at sample 9' $BIN $c $TEACHER "${args[@]}" "$F/inf.npz" "${extra[@]}"
    expect_fail "$c: random bytes as .npz" 'random\.npz: ' $BIN $c $TEACHER "${args[@]}" "$F/random.npz" "${extra[@]}"
    expect_fail "$c: truncated .npz" 'truncated\.npz: ' $BIN $c $TEACHER "${args[@]}" "$F/truncated.npz" "${extra[@]}"
    expect_fail "$c: corrupt IDX .gz" 'idx_bad/train-images-idx3-ubyte\.gz: ' $BIN $c $TEACHER "${args[@]}" "$F/idx_bad" "${extra[@]}"
    expect_fail "$c: truncated IDX" 'idx_trunc/train-images-idx3-ubyte: .*' $BIN $c $TEACHER "${args[@]}" "$F/idx_trunc" "${extra[@]}"
done
expect_fail "compare: label beyond the model's classes" 'sample 3 has label 12, outside the model.s 10 classes' $BIN compare --no-latency $TEACHER --data "$F/label_class.npz"

expect_fail "compare: dataset shape does not fit the model" 'cnn\.onnx: .*3072' $BIN compare --no-latency $TEACHER --data "$F/shape.npz"
expect_fail "compare: NaN in the data" 'nan\.npz: x_train\.npy: NaN at sample 2' $BIN compare --no-latency $TEACHER --data "$F/nan.npz"
expect_fail "compare: input dims overflow" 'overflow_input\.onnx: graph input "x": the product of its dims overflows' $BIN compare $TEACHER "$F/overflow_input.onnx" --batch 1 --threads 1 --min-time 0.01

# ---- NaN and infinity in weights: training stops with a message, writes nothing ----------------
expect_fail "distill: NaN in the teacher's weights" 'teacher: initializer ".*" holds NaN at element 0' $BIN distill "$F/nan_teacher.onnx" --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx"
expect_fail "distill: infinity in the teacher's weights" 'teacher: initializer "classifier.1.weight" holds infinity' $BIN distill "$F/inf_teacher.onnx" --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx"
expect_fail "distill: NaN in the student's weights" 'student: initializer ".*" holds NaN' $BIN distill $TEACHER --student "$F/nan_teacher.onnx" --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx"
expect_fail "distill: training that diverges" 'training diverged at epoch 1' $BIN distill $TEACHER --data "$F/ok.npz" "${D[@]}" --optimizer sgd --lr 100 --warmup 0 -o "$O/s.onnx"

# ---- the command line: unknown flags, values out of range --------------------------------------
for c in inspect run bench eval distill shrink optimize compare; do
    grep -q "\"$c\"" tools/main.c || continue
    expect_usage "$c: unknown flag" "unknown option --frobnicate" $BIN $c $TEACHER --frobnicate
done
expect_usage "unknown command" 'unknown command "frobnicate"' $BIN frobnicate
DD=(distill $TEACHER --data "$F/ok.npz" "${D[@]}" -o "$O/s.onnx")
for v in -0.5 nan inf -inf 1e999 abc ''; do
    expect_usage "distill: --sigma '$v'" '--sigma' $BIN "${DD[@]}" --sigma "$v"
done
for v in -0.1 1.01 nan 2 x; do
    expect_usage "distill: --alpha '$v'" '--alpha' $BIN "${DD[@]}" --alpha "$v"
done
for v in -1 0 1.01 nan 1e-30; do
    expect_usage "distill: --width '$v'" '--width' $BIN "${DD[@]}" --width "$v"
done
for v in -1,1 1,0.5 0.1 0.1,nan; do
    expect_usage "distill: --sigma-range '$v'" '--sigma-range' $BIN "${DD[@]}" --sigma-range "$v"
done
expect_usage "distill: --width=0 (= form)" '--width' $BIN "${DD[@]}" --width=0
expect_usage "distill: --sigma without a value" '--sigma' $BIN distill $TEACHER --data "$F/ok.npz" -o "$O/s.onnx" --sigma
for v in -0.5 0 1.5 nan inf; do
    expect_usage "shrink: --width '$v'" '--width' $BIN shrink $TEACHER --width "$v" -o "$O/s.onnx"
    expect_usage "shrink: --depth '$v'" '--depth' $BIN shrink $TEACHER --depth "$v" -o "$O/s.onnx"
done
expect_usage "bench: --batch 0" '--batch' $BIN bench $TEACHER --batch 0
expect_usage "bench: --threads -1" '--threads' $BIN bench $TEACHER --threads -1
expect_usage "run: --threads 0" '--threads' $BIN run $TEACHER --input "$F/x.npy" --output "$O/y.npy" --threads 0
expect_usage "eval: --threads 100000" '--threads' $BIN eval $TEACHER --data "$F/ok.npz" --threads 100000
expect_usage "optimize: --weights f8" '--weights' $BIN optimize $TEACHER --weights f8 -o "$O/o.onnx"

# ---- never destroy a user's file (issue 19) ---------------------------------------------------
# Each case names the files that must survive; they are compared byte for byte afterwards.
S=$T/safe
mkdir -p "$S/sub"
cp $TEACHER "$S/teacher.onnx"
cp "$F/ok.npz" "$S/data.npz"
ln -s teacher.onnx "$S/link.onnx"
keep() { sha256sum "$@" >"$T/keep.sum"; }
kept() { # kept NAME: the files given to keep are byte-identical
    if sha256sum --quiet -c "$T/keep.sum" >/dev/null 2>&1; then ok "$1: the input survives"; else bad "$1: an input changed"; fi
}
SD=(--data "$S/data.npz" "${D[@]}")
keep "$S/teacher.onnx" "$S/data.npz"
expect_fail "distill: --checkpoint the teacher" 'teacher\.onnx: is the input .*teacher\.onnx' $BIN distill "$S/teacher.onnx" "${SD[@]}" --checkpoint "$S/teacher.onnx" -o "$O/s.onnx"
kept "distill: --checkpoint the teacher"
expect_fail "distill: --checkpoint the data set" 'data\.npz: is the input' $BIN distill "$S/teacher.onnx" "${SD[@]}" --checkpoint "$S/data.npz" -o "$O/s.onnx"
kept "distill: --checkpoint the data set"
for o in "$S/teacher.onnx" "$S/sub/../teacher.onnx" "$S/link.onnx" "$S/data.npz"; do
    expect_fail "distill: -o $(basename "$o") (an input)" 'is the input' $BIN distill "$S/teacher.onnx" "${SD[@]}" -o "$o"
    kept "distill: -o $o"
    [ "$o" = "$S/data.npz" ] && continue # no input of shrink
    expect_fail "shrink: -o $(basename "$o") (an input)" 'is the input' $BIN shrink "$S/teacher.onnx" --width 0.5 -o "$o"
    kept "shrink: -o $o"
done
expect_fail "distill: -o the --student" 'is the input' $BIN distill "$TEACHER" --student "$S/teacher.onnx" "${SD[@]}" -o "$S/link.onnx"
kept "distill: -o the --student"
expect_fail "distill: -o the same file as --report" 'is also the output' $BIN distill "$S/teacher.onnx" "${SD[@]}" -o "$O/s.json" --report "$O/s.json"
expect_fail "run: --output the --input file" 'is the input' $BIN run "$F/good.onnx" --input "$F/x.npy" --output "$F/x.npy"
expect_fail "distill: -o into the data set's folder" 'inside the input folder' $BIN distill "$S/teacher.onnx" --data "$F/idx_trunc" "${D[@]}" -o "$F/idx_trunc/s.onnx"
keep "$S/teacher.onnx" "$S/data.npz"
# -o "" : refused before anything, no hidden .ckpt in the current folder
( cd "$O" && expect_fail 'distill: -o ""' 'output path is empty' "$OLDPWD/$BIN" distill "$OLDPWD/$S/teacher.onnx" "${SD[@]}" -o "" )
[ -z "$(ls -A "$O")" ] && ok 'distill -o "": no .ckpt left in the current folder' || bad "distill -o \"\": left $(ls -A "$O")"
# optimize IN -o IN is in place, atomic
cp "$S/teacher.onnx" "$S/inplace.onnx"
if "$BIN" optimize "$S/inplace.onnx" -o "$S/inplace.onnx" >/dev/null 2>&1 && "$BIN" inspect "$S/inplace.onnx" >/dev/null 2>&1 &&
    [ -z "$(ls -A "$S" | grep -vxE 'teacher\.onnx|data\.npz|link\.onnx|sub|inplace\.onnx')" ]; then
    ok "optimize IN -o IN: in place, loads afterwards, no temporary left"
else bad "optimize IN -o IN in place"; fi
# devices: written through, never renamed over
for dev in /dev/null /dev/full; do
    [ -c $dev ] || continue
    "$BIN" shrink "$S/teacher.onnx" --width 0.5 -o $dev >/dev/null 2>"$T/dev.err"; rc=$?
    [ -c $dev ] && ok "shrink -o $dev: still a character device (exit $rc)" || bad "shrink -o $dev replaced the device"
    "$BIN" optimize "$S/teacher.onnx" -o $dev >/dev/null 2>&1
    [ -c $dev ] && ok "optimize -o $dev: still a character device" || bad "optimize -o $dev replaced the device"
done
expect_fail "shrink -o /dev/full: the write fails, named" '/dev/full: cannot write: No space' $BIN shrink "$S/teacher.onnx" --width 0.5 -o /dev/full
"$BIN" distill "$S/teacher.onnx" "${SD[@]}" -o /dev/null >/dev/null 2>"$T/dev.err"; rc=$?
if [ -c /dev/null ] && [ $rc -eq 0 ] && [ ! -e /dev/null.ckpt ] && [ ! -e /dev/null.lock ]; then ok "distill -o /dev/null: exit 0, device kept, no checkpoint or lock beside it"
else bad "distill -o /dev/null: rc $rc: $(head -2 "$T/dev.err")"; fi
"$BIN" shrink "$S/teacher.onnx" --width 0.5 -o /dev/stdout >"$T/stdout.onnx" 2>/dev/null
"$BIN" inspect "$T/stdout.onnx" >/dev/null 2>&1 && ok "shrink -o /dev/stdout: the student comes out on stdout" || bad "shrink -o /dev/stdout"
# unbounded reads: devices are refused at once
expect_fail "inspect /dev/zero" '/dev/zero: not a regular file' timeout 20 $BIN inspect /dev/zero
expect_fail "inspect /dev/urandom" '/dev/urandom: not a regular file' timeout 20 $BIN inspect /dev/urandom
expect_fail "distill --data /dev/zero" '/dev/zero: not a regular file' timeout 20 $BIN distill "$S/teacher.onnx" --data /dev/zero "${D[@]}" -o "$O/s.onnx"
expect_fail "eval --data /dev/urandom" '/dev/urandom: not a regular file' timeout 20 $BIN eval "$S/teacher.onnx" --data /dev/urandom
mkdir -p "$S/idx_zero" && ln -sf /dev/zero "$S/idx_zero/train-images-idx3-ubyte" && ln -sf /dev/zero "$S/idx_zero/t10k-images-idx3-ubyte"
expect_fail "eval: IDX file that is /dev/zero" 'train-images-idx3-ubyte: not a regular file|idx_zero: no dataset in this folder' timeout 20 $BIN eval "$S/teacher.onnx" --data "$S/idx_zero"
if timeout 20 "$BIN" inspect - <"$S/teacher.onnx" >/dev/null 2>&1; then ok "inspect - reads standard input"; else bad "inspect - (stdin)"; fi
# --resume refuses every difference that changes the result, naming it; the checkpoint survives
C=$S/run.ckpt
"$BIN" distill "$S/teacher.onnx" "${SD[@]}" --checkpoint "$C" -o "$S/first.onnx" >/dev/null 2>"$T/ck.err"
if [ ! -s "$C" ]; then bad "resume: no checkpoint made: $(head -2 "$T/ck.err")"; else
    $PY -c 'import numpy as np, sys; d = dict(np.load(sys.argv[1])); d["x_train"] = d["x_train"][::-1].copy(); np.savez(sys.argv[2], **d)' "$S/data.npz" "$S/data2.npz"
    keep "$C"
    for diff in "--train-limit 200:--train-limit" "--val-split 0.2:--val-split" "--weight-decay 0.01:--weight-decay" \
        "--schedule step:--schedule" "--label-weight 0.5:--label-weight" "--scale 0.5:--scale" "--lr 0.01:--lr" "--seed 9:--seed"; do
        args=${diff%%:*} name=${diff#*:}
        expect_fail "resume with $args is refused, naming $name" "made by a different run: .*$name .* in the checkpoint" \
            $BIN distill "$S/teacher.onnx" "${SD[@]}" $args --resume "$C" -o "$O/s.onnx"
    done
    expect_fail "resume on another data set is refused, naming it" 'made by a different run: data ' \
        $BIN distill "$S/teacher.onnx" --data "$S/data2.npz" "${D[@]}" --resume "$C" -o "$O/s.onnx"
    kept "resume refusals"
    cp "$C" "$S/bad.ckpt"
    printf '\x05' | dd of="$S/bad.ckpt" bs=1 seek=80 conv=notrunc 2>/dev/null
    expect_fail "resume from a checkpoint with a corrupted header" 'bad\.ckpt: the checkpoint is corrupted' \
        $BIN distill "$S/teacher.onnx" "${SD[@]}" --resume "$S/bad.ckpt" -o "$O/s.onnx"
fi
# two runs on one output: the second is refused while the first holds the lock
P=(distill $TEACHER --data fashion-mnist --train-limit 3000 --test-limit 200 --threads 1 --quiet --epochs 20) # interrupted long before the end
"$BIN" "${P[@]}" -o "$S/par.onnx" >/dev/null 2>"$T/par.err" &
pid=$!
for _ in $(seq 50); do [ -e "$S/par.onnx.lock" ] && break; sleep 0.1; done
expect_fail "a second run on the same -o is refused" 'par\.onnx: another run is writing this output' $BIN "${P[@]}" -o "$S/par.onnx"
# interrupt it after its first epoch, then interrupt a resumed run before it finishes one
for _ in $(seq 1200); do [ -s "$S/par.onnx.ckpt" ] && break; sleep 0.1; done
kill -INT $pid; wait $pid
mv "$S/par.onnx.ckpt" "$S/par.ckpt"
"$BIN" "${P[@]}" --resume "$S/par.ckpt" -o "$S/par.onnx" >/dev/null 2>"$T/res.err" &
pid=$!
# as soon as it catches SIGINT (SigCgt bit 2), which it does right before training: the stop is
# seen at the first batch, before any epoch of this run ends
for _ in $(seq 600); do
    mask=$(awk '/^SigCgt/ {print $2}' /proc/$pid/status 2>/dev/null)
    [ -n "$mask" ] && (( 0x$mask & 2 )) && break
    sleep 0.05
done
kill -INT $pid; wait $pid; rc=$?
named=$(grep -o -- '--resume [^ ]*' "$T/res.err" | head -1 | cut -d' ' -f2)
if [ $rc -eq 0 ]; then echo "SKIP the resumed run finished before it could be interrupted"; skip=$((skip + 1))
elif [ $rc -eq 130 ] && [ -n "$named" ] && [ -s "$named" ]; then ok "an interrupted --resume run names a checkpoint that exists ($named)"
else bad "interrupted --resume: rc $rc, names '${named}': $(head -2 "$T/res.err")"; fi
[ ! -e "$S/par.onnx.lock" ] && ok "the lock file is gone after the run" || bad "par.onnx.lock left behind"
# quadratic graph checks: a 200,000-node chain
$PY - "$S/chain.onnx" <<'PYEOF'
import sys
from onnx import helper as h, TensorProto as TP
n = 200000
nodes = [h.make_node("Relu", ["x" if i == 0 else "t%d" % (i - 1)], ["t%d" % i if i < n - 1 else "y"], name="n%d" % i) for i in range(n)]
g = h.make_graph(nodes, "chain", [h.make_tensor_value_info("x", TP.FLOAT, ["N", 4])], [h.make_tensor_value_info("y", TP.FLOAT, ["N", 4])])
open(sys.argv[1], "wb").write(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]).SerializeToString())
PYEOF
if timeout 20 "$BIN" inspect "$S/chain.onnx" 2>&1 | grep -q 'nodes *200000'; then ok "inspect a 200,000-node chain (timeout 20 s)"
else bad "inspect a 200,000-node chain did not finish in 20 s"; fi
# opsets and IR versions outside what ONNX defines
MAXOPS=$($PY -c 'import onnx; print(onnx.defs.onnx_opset_version())')
$PY - "$S" <<'PYEOF'
import os, sys
from onnx import helper as h, TensorProto as TP
X = h.make_tensor_value_info("x", TP.FLOAT, ["N", 4]); Y = h.make_tensor_value_info("y", TP.FLOAT, ["N", 4])
def save(name, opsets, ir=8):
    m = h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["y"], name="relu")], "g", [X], [Y]), opset_imports=opsets)
    m.ir_version = ir
    open(os.path.join(sys.argv[1], name), "wb").write(m.SerializeToString())
for v in (0, -1, 99): save("op%d.onnx" % v, [h.make_opsetid("", v)])
save("op1.onnx", [h.make_opsetid("", 1)], 3)
for v in (0, -5, 99): save("ir%d.onnx" % v, [h.make_opsetid("", 13)], v)
save("nodefault.onnx", [h.make_opsetid("com.example", 1)])
PYEOF
for v in 0 -1 99; do
    expect_fail "opset $v refused" "opset $v of the default domain is outside what ONNX defines here: 1 to $MAXOPS" $BIN inspect "$S/op$v.onnx"
done
for v in 0 -5 99; do
    expect_fail "IR version $v refused" "IR version $v is outside what ONNX defines here: 1 to [0-9]+" $BIN shrink "$S/ir$v.onnx" --width 0.5 -o "$O/s.onnx"
done
expect_fail "no default-domain opset refused" 'imports no default-domain opset' $BIN optimize "$S/nodefault.onnx" -o "$O/s.onnx"
expect_fail "shrink of an opset-1 teacher refused (ONNX Runtime: 7 and up)" 'opset 1; ONNX Runtime supports 7 to' $BIN shrink "$S/op1.onnx" --width 0.5 -o "$O/s.onnx"
# a student that learned nothing fails the run, as a collapse does
expect_fail "distill --lr 16: a student no better than the teacher's commonest class is not written" \
    'training (failed|collapsed|diverged)' $BIN distill $TEACHER --data fashion-mnist --train-limit 3000 --test-limit 200 --threads 1 --quiet --lr 16 --warmup 0 --epochs 1 -o "$O/s.onnx"
# names reach the terminal escaped
$PY -c '
import sys
from onnx import helper as h, TensorProto as TP
X = h.make_tensor_value_info("x\x1b[31m", TP.FLOAT, [1, 4]); Y = h.make_tensor_value_info("y", TP.FLOAT, [1, 4])
g = h.make_graph([h.make_node("Relu", ["x\x1b[31m"], ["y"], name="evil\x1b]0;t\x07")], "g\x1b[2J", [X], [Y])
open(sys.argv[1], "wb").write(h.make_model(g, opset_imports=[h.make_opsetid("", 13)], producer_name="p\x1b[5m").SerializeToString())' "$S/esc.onnx"
"$BIN" inspect --nodes "$S/esc.onnx" >"$T/esc.out" 2>&1
if ! grep -q $'\x1b' "$T/esc.out" && grep -q 'x\\x1b\[31m' "$T/esc.out" && grep -q 'evil\\x1b\]0;t\\x07' "$T/esc.out"; then ok "inspect escapes names"
else bad "inspect prints raw escape sequences"; fi

# ---- kill -9 during distill: the earlier output stays as it was, no temporary file remains ------
# the earlier output: a good student, written first
K=$T/kill
mkdir -p "$K"
KD=(distill $TEACHER --data fashion-mnist --train-limit 1000 --test-limit 200 --threads 1 --seed 3 --latency off --quiet)
"$BIN" "${KD[@]}" --epochs 1 -o "$K/student.onnx" >/dev/null 2>"$K/first.err"
if [ $? -ne 0 ] || [ ! -s "$K/student.onnx" ]; then
    bad "kill -9: the earlier distill did not write its student: $(head -3 "$K/first.err")"
else
    cp "$K/student.onnx" "$T/before.onnx"
    # kill at several moments: while loading, while training, around the end of an epoch
    for delay in 0.2 1 2.5 4; do
        # enough epochs that no run ends before its kill, however fast training gets
        "$BIN" "${KD[@]}" --epochs 40 --seed 4 -o "$K/student.onnx" >/dev/null 2>&1 &
        pid=$!
        sleep $delay
        kill -9 $pid 2>/dev/null
        wait $pid 2>/dev/null
        check_why=""
        cmp -s "$T/before.onnx" "$K/student.onnx" || check_why="the earlier student changed"
        stray=$(ls -A "$K" | grep -vxE 'student\.onnx|student\.onnx\.ckpt|student\.onnx\.lock|first\.err')
        [ -z "$stray" ] || check_why="$check_why; left behind: $stray"
        if [ -z "$check_why" ]; then ok "kill -9 after ${delay}s: earlier student untouched, no temporary file"
        else bad "kill -9 after ${delay}s: $check_why"; fi
    done
    # a distill that runs to the end replaces it
    "$BIN" "${KD[@]}" --epochs 1 --seed 4 -o "$K/student.onnx" >/dev/null 2>&1
    if [ $? -eq 0 ] && ! cmp -s "$T/before.onnx" "$K/student.onnx" && [ -z "$(ls -A "$K" | grep -vxE 'student\.onnx|first\.err')" ]; then
        ok "a finished distill replaces the earlier student and removes its checkpoint"
    else
        bad "a finished distill replaces the earlier student and removes its checkpoint: $(ls -A "$K" | tr '\n' ' ')"
    fi
fi

finish
