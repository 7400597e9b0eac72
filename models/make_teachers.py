#!/usr/bin/python3
"""Train the example ONNX teacher models on Fashion-MNIST and export them.

Run with Debian's PyTorch (torch 1.13, onnx 1.12):

    /usr/bin/python3 models/make_teachers.py [--out DIR] [--epochs N]

Produces, in DIR (default: the folder this script is in):

    cnn.onnx     opset 13  CNN, eval-mode export (BatchNorm folded into Conv)
    cnn_bn.onnx  opset 13  the same trained CNN exported with
                           TrainingMode.PRESERVE from eval mode, so the
                           BatchNormalization nodes (running stats,
                           inference form) stay in the graph
    resnet.onnx  opset 17  small ResNet (16/32/64 channels, 2 basic blocks
                           per stage, GlobalAveragePool head)
    mlp.onnx     opset 11  784-256-256-256-10 MLP
    README.md    table of the files with the accuracies measured by this run

Every model takes "input" float32 [N,1,28,28] and returns "logits" [N,10]
(N is dynamic).  The input is preprocessed as

    x = (pixel * preprocess.scale - preprocess.mean) / preprocess.std

with scale = 1/255 and mean/std measured on the training set (rounded to 4
digits); these values are also written to every file's metadata_props.

Data: the IDX .gz files in /usr/share/datasets/fashion-mnist (no network).

After export, every file is checked with onnx.checker (full_check=True) and
run through a small built-in ONNX interpreter (numpy, plus torch's conv /
pool kernels driven by the ONNX node attributes) on the whole test set: its
logits are compared with the torch eval-mode model and its accuracy must
match.  (onnx 1.12 has no onnx.reference and there is no onnxruntime.)

The run is deterministic for a given --seed on a given torch build; the
bytes of the .onnx files are not expected to be identical across torch
versions.
"""

import os

# libgomp's default busy-waiting makes torch's 2 OpenMP threads crawl when
# other jobs share the 2 cores (measured 3-12x slower than passive waiting
# on a loaded machine).  Numerics do not depend on it.  Must be set before
# torch loads; an OMP_WAIT_POLICY already in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import collections
import gzip
import io
import json
import sys
import time
import warnings

import numpy as np
import onnx
import onnx.checker
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
SCALE = 1.0 / 255.0
MAX_BYTES = 10 * 1024 * 1024


# ---------------------------------------------------------------- data


def read_idx(path):
    """Parse a gzip-compressed IDX file into a numpy array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError("%s: size mismatch" % path)
    return data.reshape(dims)


def load_fashion_mnist(root):
    def p(name):
        return os.path.join(root, name)

    xtr = read_idx(p("train-images-idx3-ubyte.gz"))
    ytr = read_idx(p("train-labels-idx1-ubyte.gz"))
    xte = read_idx(p("t10k-images-idx3-ubyte.gz"))
    yte = read_idx(p("t10k-labels-idx1-ubyte.gz"))
    assert xtr.shape == (60000, 28, 28) and ytr.shape == (60000,)
    assert xte.shape == (10000, 28, 28) and yte.shape == (10000,)
    return xtr, ytr, xte, yte


def preprocess(images_u8, mean, std):
    x = images_u8.astype(np.float32) * np.float32(SCALE)
    x = (x - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(x.reshape(-1, 1, 28, 28).copy())


# ---------------------------------------------------------------- models


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(1, 32), *conv_bn_relu(32, 32), nn.MaxPool2d(2),
            *conv_bn_relu(32, 64), *conv_bn_relu(64, 64), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + skip)


class ResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), blocks_per_stage=2):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(1, widths[0]))
        layers = []
        cin = widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks_per_stage):
                stride = 2 if (i > 0 and b == 0) else 1
                layers.append(BasicBlock(cin, w, stride))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], 10)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 10),
        )

    def forward(self, x):
        return self.net(x)


# ---------------------------------------------------------------- training


def train(model, xtr, ytr, epochs, lr, seed, batch=128, log=print):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = xtr.shape[0]
    steps_per_epoch = (n + batch - 1) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch), pct_start=0.2)
    for ep in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(n, generator=gen)
        tot_loss, correct = 0.0, 0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
        log("    epoch %d/%d  loss %.4f  train acc %.4f  (%.0fs)"
            % (ep + 1, epochs, tot_loss / n, correct / n, time.time() - t0))
    model.eval()
    return model


@torch.no_grad()
def predict(model, x, batch=1000):
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


# ---------------------------------------------------------------- export


def export(model, path, opset, meta, training=torch.onnx.TrainingMode.EVAL):
    model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # PRESERVE + constant folding warns about training-mode exports; the
        # model is in eval mode here, so folding cannot touch BN statistics.
        warnings.filterwarnings("ignore", message=".*constant folding be turned off.*")
        torch.onnx.export(
            model, torch.zeros(1, 1, 28, 28), buf,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            opset_version=opset, do_constant_folding=True, training=training,
        )
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, path)
    onnx.checker.check_model(path, full_check=True)
    size = os.path.getsize(path)
    if size >= MAX_BYTES:
        raise RuntimeError("%s is %d bytes (limit %d)" % (path, size, MAX_BYTES))
    return onnx.load(path)


# ------------------------------------------------ tiny ONNX interpreter
# Enough of ONNX to run what torch.onnx.export writes for these models.
# Node attributes (pads, strides, epsilon, transB, axis, ...) are read from
# the file, so this checks the graph itself, not the torch module.


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _sym_pads(pads, node):
    k = len(pads) // 2
    if list(pads[:k]) != list(pads[k:]):
        raise NotImplementedError("%s: asymmetric pads %s" % (node.name, pads))
    return list(pads[:k])


def _run_node(node, args, opset):
    op, a = node.op_type, _attrs(node)
    if op == "Identity":
        return [args[0]]
    if op == "Relu":
        return [np.maximum(args[0], 0)]
    if op == "Add":
        return [args[0] + args[1]]
    if op == "Mul":
        return [args[0] * args[1]]
    if op == "Constant":
        return [onnx.numpy_helper.to_array(a["value"])]
    if op == "Conv":
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise NotImplementedError("Conv auto_pad")
        x = torch.from_numpy(np.array(args[0], copy=True))
        w = torch.from_numpy(np.array(args[1], copy=True))
        b = torch.from_numpy(np.array(args[2], copy=True)) if len(args) > 2 and args[2] is not None else None
        assert list(a.get("kernel_shape", w.shape[2:])) == list(w.shape[2:])
        y = F.conv2d(x, w, b, stride=a.get("strides", [1, 1]),
                     padding=_sym_pads(a.get("pads", [0, 0, 0, 0]), node),
                     dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
        return [y.numpy()]
    if op == "MaxPool":
        x = torch.from_numpy(np.array(args[0], copy=True))
        y = F.max_pool2d(x, a["kernel_shape"], stride=a.get("strides", [1, 1]),
                         padding=_sym_pads(a.get("pads", [0, 0, 0, 0]), node),
                         dilation=a.get("dilations", [1, 1]), ceil_mode=bool(a.get("ceil_mode", 0)))
        return [y.numpy()]
    if op == "BatchNormalization":
        if a.get("training_mode", 0) or len(node.output) > 1:
            raise NotImplementedError("BatchNormalization in training mode")
        x, scale, bias, mean, var = args
        shp = (1, -1) + (1,) * (x.ndim - 2)
        eps = np.float32(a.get("epsilon", 1e-5))
        inv = scale / np.sqrt(var + eps)
        return [(x - mean.reshape(shp)) * inv.reshape(shp) + bias.reshape(shp)]
    if op == "GlobalAveragePool":
        return [args[0].mean(axis=tuple(range(2, args[0].ndim)), keepdims=True)]
    if op == "Flatten":
        x, ax = args[0], a.get("axis", 1)
        return [x.reshape(int(np.prod(x.shape[:ax])), -1)]
    if op == "Gemm":
        A, B = args[0], args[1]
        if a.get("transA", 0):
            A = A.T
        if a.get("transB", 0):
            B = B.T
        y = np.float32(a.get("alpha", 1.0)) * (A @ B)
        if len(args) > 2 and args[2] is not None:
            y = y + np.float32(a.get("beta", 1.0)) * args[2]
        return [y]
    if op == "MatMul":
        return [args[0] @ args[1]]
    if op == "Shape":
        return [np.array(args[0].shape, dtype=np.int64)]
    if op == "Gather":
        return [np.take(args[0], args[1], axis=a.get("axis", 0))]
    if op == "Unsqueeze":
        axes = a["axes"] if "axes" in a else list(args[1])
        y = args[0]
        for ax in sorted(int(v) for v in axes):
            y = np.expand_dims(y, ax)
        return [y]
    if op == "Concat":
        return [np.concatenate(args, axis=a["axis"])]
    if op == "Reshape":
        shape = [int(s) for s in args[1]]
        if not a.get("allowzero", 0):
            shape = [args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [args[0].reshape(shape)]
    raise NotImplementedError("op %s (opset %d)" % (op, opset))


def run_onnx(proto, x):
    opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    env = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    env[proto.graph.input[0].name] = x
    for node in proto.graph.node:
        args = [env[i] if i else None for i in node.input]
        for name, val in zip(node.output, _run_node(node, args, opset)):
            if name:
                env[name] = val
    return env[proto.graph.output[0].name]


def run_onnx_batched(proto, x, batch=1000):
    return np.concatenate([run_onnx(proto, x[i:i + batch]) for i in range(0, x.shape[0], batch)])


# ---------------------------------------------------------------- checks


def op_histogram(proto):
    return collections.Counter(n.op_type for n in proto.graph.node)


def io_signature(proto):
    def sig(v):
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        return (v.name, v.type.tensor_type.elem_type, dims)
    return [sig(v) for v in proto.graph.input], [sig(v) for v in proto.graph.output]


def verify(proto, torch_logits, x_test_np, y_test_np, log, reference_acc):
    ins, outs = io_signature(proto)
    assert ins == [("input", onnx.TensorProto.FLOAT, ["N", 1, 28, 28])], ins
    assert outs == [("logits", onnx.TensorProto.FLOAT, ["N", 10])], outs
    initializer_names = {t.name for t in proto.graph.initializer}
    assert [i.name for i in proto.graph.input if i.name not in initializer_names] == ["input"]
    out = run_onnx_batched(proto, x_test_np)
    assert out.shape == (x_test_np.shape[0], 10) and out.dtype == np.float32
    one = run_onnx(proto, x_test_np[:1])  # dynamic batch: N=1 as well
    assert one.shape == (1, 10)
    diff = float(np.abs(out - torch_logits).max())
    acc = float((out.argmax(1) == y_test_np).mean())
    agree = float((out.argmax(1) == torch_logits.argmax(1)).mean())
    log("    onnx interpreter: acc %.4f, max|onnx-torch| %.2e, argmax agreement %.4f"
        % (acc, diff, agree))
    if diff > 1e-3 or abs(acc - reference_acc) > 5e-4:
        raise RuntimeError("ONNX output does not match the torch model (diff %g, acc %.4f vs %.4f)"
                           % (diff, acc, reference_acc))
    return out, acc, diff


# ---------------------------------------------------------------- readme


def write_readme(path, rows, mean, std, seed, total_s, versions):
    lines = []
    w = lines.append
    w("# Example teacher models")
    w("")
    w("Fashion-MNIST classifiers used as example ONNX teachers. This file and the")
    w("`.onnx` files are generated by `make_teachers.py`; the numbers below are")
    w("those measured by the run that produced the files in this folder.")
    w("")
    w("| file | architecture | opset | params | test accuracy | preprocessing | regenerate |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        w("| `%s` | %s | %d | %s | %.4f | `x = (pixel/255 - %.4f) / %.4f` | `/usr/bin/python3 models/make_teachers.py` |"
          % (r["file"], r["arch"], r["opset"], format(r["params"], ","), r["acc"], mean, std))
    w("")
    w("- Interface of every model: input `input` float32 `[N,1,28,28]`, output")
    w("  `logits` float32 `[N,10]` (unnormalised; argmax is the class), batch")
    w("  dimension `N` dynamic. Class order is the dataset's label order (0 T-shirt/top,")
    w("  1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag,")
    w("  9 Ankle boot).")
    w("- Preprocessing: `x = (pixel * preprocess.scale - preprocess.mean) / preprocess.std`")
    w("  on raw 0..255 pixels, with scale = 1/255 and mean %.4f / std %.4f measured on" % (mean, std))
    w("  the 60 000 training images (rounded to 4 digits). Every file carries these in")
    w("  `metadata_props`: `preprocess.scale` (`%r`), `preprocess.mean`," % SCALE)
    w("  `preprocess.std`, `dataset` (`fashion-mnist`) and `test_accuracy` (on the")
    w("  10 000 test images).")
    w("- params = trainable parameters of the PyTorch model (BatchNorm running")
    w("  statistics not counted). In the eval-mode exports BatchNorm is folded into")
    w("  the preceding Conv, so the ONNX initializers hold different (fewer) numbers.")
    w("- `cnn.onnx` and `cnn_bn.onnx` are the same trained network: `cnn_bn.onnx` is")
    w("  exported with `training=torch.onnx.TrainingMode.PRESERVE` from eval mode, so")
    w("  its `BatchNormalization` nodes are kept in inference form (running mean/var")
    w("  as inputs, a single output) and its outputs equal `cnn.onnx`'s. Dropout is a")
    w("  no-op at inference and torch writes no `Dropout` node in either file.")
    w("- `resnet.onnx`: stem + 3 stages of 2 basic blocks; 4 of the 6 blocks have an")
    w("  identity skip (output shape = input shape), the first block of stages 2")
    w("  and 3 has stride 2 and a 1x1 conv (+BN, folded) projection on the skip.")
    w("")
    w("## Regenerating")
    w("")
    w("```")
    w("/usr/bin/python3 models/make_teachers.py            # writes into models/")
    w("/usr/bin/python3 models/make_teachers.py --out DIR --epochs N --seed S")
    w("```")
    w("")
    w("Use Debian's `/usr/bin/python3` (torch and onnx are installed for it, not")
    w("necessarily for the first `python3` on PATH). Data is read from the IDX")
    w("`.gz` files in `%s`; nothing is downloaded. The script" % DEFAULT_DATA)
    w("uses 2 threads and no GPU. On an idle 2-core machine training takes about")
    w("75 s per CNN epoch and 90 s per ResNet epoch (about 12 minutes in all with the")
    w("default epochs); it is much slower when other jobs share the cores. The run")
    w("that wrote these files took %.0f s wall-clock (%s)." % (total_s, versions))
    w("After exporting, it runs `onnx.checker.check_model(full_check=True)` on every")
    w("file and executes each graph with a small built-in ONNX interpreter on the")
    w("whole test set, checking the logits against the PyTorch eval-mode model.")
    w("")
    w("The run is deterministic given its seed (default %d) on a given torch build," % seed)
    w("but the files are not byte-identical across torch versions (kernels, exporter")
    w("and node naming change), so the accuracies may differ slightly elsewhere.")
    w("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------- main


SPECS = [
    # name, builder, opset, default epochs, lr, architecture text
    ("cnn", CNN, 13, 4, 2e-3,
     "CNN: 2x[conv3x3+BN+ReLU] (32,32), maxpool2, 2x[conv3x3+BN+ReLU] (64,64), maxpool2, "
     "FC 3136-128+ReLU, Dropout 0.3, FC 128-10; eval export (BN folded into Conv)"),
    ("resnet", ResNet, 17, 4, 2e-3,
     "ResNet: stem conv3x3(16)+BN+ReLU, 3 stages x 2 basic blocks (16/32/64 ch, stride-2 "
     "+ 1x1 conv projection at stage changes), GlobalAveragePool, FC 64-10; eval export"),
    ("mlp", MLP, 11, 8, 1e-3,
     "MLP: Flatten, FC 784-256-256-256 with ReLU, FC 256-10; eval export"),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs for every model (default: cnn 4, resnet 4, mlp 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=DEFAULT_DATA, help="Fashion-MNIST IDX folder")
    ap.add_argument("--train-limit", type=int, default=None,
                    help="train on the first N training images only (smoke tests)")
    args = ap.parse_args(argv)

    t_start = time.time()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    xtr_u8, ytr_u8, xte_u8, yte_u8 = load_fashion_mnist(args.data)
    pix = xtr_u8.astype(np.float64) * SCALE
    mean, std = round(float(pix.mean()), 4), round(float(pix.std()), 4)
    del pix
    log("fashion-mnist: train %s, test %s; mean %.4f std %.4f (raw %.6f / %.6f)"
        % (xtr_u8.shape, xte_u8.shape, mean, std,
           xtr_u8.mean() / 255.0, (xtr_u8 / 255.0).std()))
    if args.train_limit:
        xtr_u8, ytr_u8 = xtr_u8[:args.train_limit], ytr_u8[:args.train_limit]
    xtr = preprocess(xtr_u8, mean, std)
    ytr = torch.from_numpy(ytr_u8.astype(np.int64))
    xte = preprocess(xte_u8, mean, std)
    yte = torch.from_numpy(yte_u8.astype(np.int64))
    xte_np, yte_np = xte.numpy(), yte_u8.astype(np.int64)

    def meta(acc):
        return {
            "preprocess.scale": repr(SCALE),
            "preprocess.mean": "%.4f" % mean,
            "preprocess.std": "%.4f" % std,
            "dataset": "fashion-mnist",
            "test_accuracy": "%.4f" % acc,
        }

    rows, protos = [], {}
    for i, (name, builder, opset, def_epochs, lr, arch) in enumerate(SPECS):
        epochs = args.epochs if args.epochs is not None else def_epochs
        torch.manual_seed(args.seed + i)
        model = builder()
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log("%s: %d params, %d epochs, Adam one-cycle max lr %g" % (name, params, epochs, lr))
        t0 = time.time()
        train(model, xtr, ytr, epochs, lr, seed=args.seed + 100 + i, log=log)
        logits = predict(model, xte).numpy()
        acc = float((logits.argmax(1) == yte_np).mean())
        log("    test acc (torch, eval) %.4f  (%.0fs)" % (acc, time.time() - t0))

        exports = [(name, torch.onnx.TrainingMode.EVAL, arch)]
        if name == "cnn":
            exports.append(("cnn_bn", torch.onnx.TrainingMode.PRESERVE,
                            "same trained CNN as cnn.onnx, exported with TrainingMode.PRESERVE "
                            "from eval mode: BatchNormalization nodes kept (inference form)"))
        for fname, mode, text in exports:
            path = os.path.join(args.out, fname + ".onnx")
            proto = export(model, path, opset, meta(acc), training=mode)
            hist = op_histogram(proto)
            log("    %s.onnx: %d bytes, opset %d, ops %s"
                % (fname, os.path.getsize(path), opset, dict(sorted(hist.items()))))
            verify(proto, logits, xte_np, yte_np, log, acc)
            protos[fname] = proto
            rows.append(dict(file=fname + ".onnx", arch=text, opset=opset, params=params, acc=acc,
                             bytes=os.path.getsize(path), ops=dict(sorted(hist.items()))))

    # cnn_bn must keep its BatchNormalization nodes (inference form) and
    # compute the same function as cnn.onnx.
    bn_nodes = [n for n in protos["cnn_bn"].graph.node if n.op_type == "BatchNormalization"]
    assert len(bn_nodes) == 4, "cnn_bn.onnx: expected 4 BatchNormalization nodes"
    for n in bn_nodes:
        assert len(n.output) == 1 and _attrs(n).get("training_mode", 0) == 0
    assert "BatchNormalization" not in op_histogram(protos["cnn"])
    a = run_onnx_batched(protos["cnn"], xte_np)
    b = run_onnx_batched(protos["cnn_bn"], xte_np)
    log("cnn.onnx vs cnn_bn.onnx: max|diff| %.2e, argmax agreement %.4f"
        % (np.abs(a - b).max(), (a.argmax(1) == b.argmax(1)).mean()))
    assert np.abs(a - b).max() < 1e-3

    total = time.time() - t_start
    versions = "torch %s, onnx %s" % (torch.__version__, onnx.__version__)
    write_readme(os.path.join(args.out, "README.md"), rows, mean, std, args.seed, total, versions)
    with open(os.path.join(args.out, "teachers.json"), "w") as f:
        json.dump(dict(mean=mean, std=std, seed=args.seed, seconds=round(total, 1),
                       versions=versions, models=rows), f, indent=2)
        f.write("\n")
    log("done in %.0fs; wrote %s" % (total, ", ".join(r["file"] for r in rows)))


if __name__ == "__main__":
    sys.exit(main())
