#!/usr/bin/python3
"""PyTorch as a peer in `make bench`: the same network, built in torch from the ONNX file.

A small ONNX -> torch.nn converter for the ops our example teachers and their students use
(Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, Flatten, Gemm,
MatMul, Add, Reshape, Dropout, plus Identity and Constant), with the weights copied, so that
PyTorch runs exactly the graph we run. Modes:

  torch_bench.py check [--onnx-distill BIN] MODEL...
      outputs against `onnx-distill run` at batch 1 and 64 (|a-b| <= 1e-4 (1 + |b|)); exit 1 if not
  torch_bench.py infer [--batch 1,64] [--threads 1,2] [--min-time S] MODEL...
      inference latency under torch.no_grad(), timed like `onnx-distill bench` and
      tests/ort_bench.js (warm-up, then >= 10 runs and >= S seconds; median, p10, p90); prints
      JSON in the shape of `onnx-distill bench --json`
  torch_bench.py train [--batch 64] [--threads 1,2] [--steps N] MODEL...
      training throughput like build/tests/bench_train: forward, L2 loss on random cached
      "teacher logits" (sum of squares / 2 batch), backward, Adam step on one random batch;
      one JSON line {model, batch, threads, samples_per_s, cpu_samples_per_s} per (model, threads)
  torch_bench.py serve [--onnx-distill BIN]
      reads commands from stdin, one per line, answers one JSON line each, so that
      tests/bench.sh can interleave PyTorch with the other runtimes without paying torch's
      start-up every time:
        check MODEL | infer MODEL BATCH THREADS MIN_TIME | train MODEL BATCH THREADS STEPS | quit

Needs Debian's /usr/bin/python3 (python3-torch, python3-onnx).
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads_split(pads, rank):
    """ONNX pads [b1, b2, ..., e1, e2, ...] -> (symmetric padding list or None, F.pad list)."""
    if not pads:
        return [0] * rank, None
    begin, end = list(pads[:rank]), list(pads[rank:])
    if begin == end:
        return begin, None
    fpad = []
    for i in reversed(range(rank)):  # F.pad wants the last dim first
        fpad += [begin[i], end[i]]
    return [0] * rank, fpad


def _same_pads(in_sizes, kernel, strides, dilations, upper):
    """auto_pad SAME_UPPER / SAME_LOWER: pads for the given spatial input sizes, as F.pad list."""
    fpad = []
    for i in reversed(range(len(in_sizes))):
        out = -(-in_sizes[i] // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_sizes[i])
        small, big = total // 2, total - total // 2
        fpad += [small, big] if upper else [big, small]
    return fpad


class Conv(nn.Module):
    def __init__(self, node, inits):
        super().__init__()
        a = _attrs(node)
        w = torch.from_numpy(inits[node.input[1]].copy())
        rank = w.dim() - 2
        if rank not in (1, 2):
            raise NotImplementedError(f"Conv {node.name}: {rank}-D convolution")
        self.rank = rank
        self.stride = list(a.get("strides", [1] * rank))
        self.dilation = list(a.get("dilations", [1] * rank))
        self.groups = a.get("group", 1)
        self.kernel = list(w.shape[2:])
        self.auto_pad = a.get("auto_pad", b"NOTSET")
        if isinstance(self.auto_pad, bytes):
            self.auto_pad = self.auto_pad.decode()
        self.padding, self.fpad = _pads_split(a.get("pads"), rank)
        if self.auto_pad == "VALID":
            self.padding, self.fpad = [0] * rank, None
        self.weight = nn.Parameter(w)
        has_bias = len(node.input) > 2 and node.input[2]
        self.bias = nn.Parameter(torch.from_numpy(inits[node.input[2]].copy())) if has_bias else None

    def forward(self, x):
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            x = F.pad(x, _same_pads(list(x.shape[2:]), self.kernel, self.stride, self.dilation,
                                    self.auto_pad == "SAME_UPPER"))
        elif self.fpad:
            x = F.pad(x, self.fpad)
        conv = F.conv2d if self.rank == 2 else F.conv1d
        return conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class BatchNormalization(nn.Module):
    """Any rank (N, C, ...); batch statistics in train(), running ones in eval(), like ONNX."""

    def __init__(self, node, inits):
        super().__init__()
        a = _attrs(node)
        self.eps = a.get("epsilon", 1e-5)
        self.momentum = 1.0 - a.get("momentum", 0.9)
        self.weight = nn.Parameter(torch.from_numpy(inits[node.input[1]].copy()))
        self.bias = nn.Parameter(torch.from_numpy(inits[node.input[2]].copy()))
        self.register_buffer("running_mean", torch.from_numpy(inits[node.input[3]].copy()))
        self.register_buffer("running_var", torch.from_numpy(inits[node.input[4]].copy()))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, self.momentum, self.eps)


class Pool(nn.Module):
    def __init__(self, node, inits):
        super().__init__()
        a = _attrs(node)
        self.kind = node.op_type
        self.kernel = list(a["kernel_shape"])
        rank = len(self.kernel)
        if rank not in (1, 2):
            raise NotImplementedError(f"{node.op_type} {node.name}: {rank}-D pooling")
        self.rank = rank
        self.stride = list(a.get("strides", [1] * rank))
        self.dilation = list(a.get("dilations", [1] * rank))
        self.ceil_mode = bool(a.get("ceil_mode", 0))
        self.count_include_pad = bool(a.get("count_include_pad", 0))
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad not in ("NOTSET", "VALID"):
            raise NotImplementedError(f"{node.op_type} {node.name}: auto_pad {auto_pad}")
        self.padding, self.fpad = _pads_split(a.get("pads") if auto_pad == "NOTSET" else None, rank)
        if self.fpad and self.kind == "AveragePool" and not self.count_include_pad:
            raise NotImplementedError(f"AveragePool {node.name}: asymmetric pads without count_include_pad")
        if self.kind == "AveragePool" and self.dilation != [1] * rank:
            raise NotImplementedError(f"AveragePool {node.name}: dilations")

    def forward(self, x):
        if self.kind == "MaxPool":
            if self.fpad:
                x = F.pad(x, self.fpad, value=-math.inf)
            f = F.max_pool2d if self.rank == 2 else F.max_pool1d
            return f(x, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)
        if self.fpad:
            x = F.pad(x, self.fpad)
        f = F.avg_pool2d if self.rank == 2 else F.avg_pool1d
        return f(x, self.kernel, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class Gemm(nn.Module):
    """alpha A' B' + beta C; as a Linear layer (weight [out, in]) when B is an initializer."""

    def __init__(self, node, inits):
        super().__init__()
        a = _attrs(node)
        self.alpha, self.beta = a.get("alpha", 1.0), a.get("beta", 1.0)
        self.trans_a = a.get("transA", 0)
        b = inits[node.input[1]]
        self.weight = nn.Parameter(torch.from_numpy((b if a.get("transB", 0) else b.T).copy()))
        has_c = len(node.input) > 2 and node.input[2]
        self.bias = nn.Parameter(torch.from_numpy(inits[node.input[2]].copy())) if has_c else None

    def forward(self, x):
        if self.trans_a:
            x = x.t()
        if self.alpha == 1.0 and self.beta == 1.0:
            return F.linear(x, self.weight, self.bias)
        y = self.alpha * F.linear(x, self.weight)
        return y + self.beta * self.bias if self.bias is not None else y


class Flatten(nn.Module):
    def __init__(self, node, inits):
        super().__init__()
        self.axis = _attrs(node).get("axis", 1)

    def forward(self, x):
        axis = self.axis + x.dim() if self.axis < 0 else self.axis
        return x.reshape(int(np.prod(x.shape[:axis])), -1)


class Reshape(nn.Module):
    def __init__(self, node, inits):
        super().__init__()
        if node.input[1] not in inits:
            raise NotImplementedError(f"Reshape {node.name}: shape is not a constant")
        self.shape = [int(s) for s in inits[node.input[1]]]
        self.allowzero = _attrs(node).get("allowzero", 0)

    def forward(self, x):
        shape = [x.shape[i] if s == 0 and not self.allowzero else s for i, s in enumerate(self.shape)]
        return x.reshape(shape)


class Dropout(nn.Module):
    def __init__(self, node, inits):
        super().__init__()
        ratio = _attrs(node).get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1] in inits:
            ratio = float(inits[node.input[1]])
        self.ratio = ratio

    def forward(self, x):
        return F.dropout(x, self.ratio, self.training)


class Elementwise(nn.Module):
    """Relu, Add, MatMul, Identity: operands that are initializers become parameters."""

    def __init__(self, node, inits):
        super().__init__()
        self.kind = node.op_type
        self.consts = nn.ParameterList()
        self.slots = []  # per input: ("const", index in consts) or ("value", name)
        for name in node.input:
            if name in inits:
                self.slots.append(("const", len(self.consts)))
                self.consts.append(nn.Parameter(torch.from_numpy(np.ascontiguousarray(inits[name]).copy())))
            else:
                self.slots.append(("value", name))

    def forward(self, *values):
        it = iter(values)
        args = [self.consts[k] if kind == "const" else next(it) for kind, k in self.slots]
        if self.kind == "Relu":
            return F.relu(args[0])
        if self.kind == "Add":
            return args[0] + args[1]
        if self.kind == "MatMul":
            return torch.matmul(args[0], args[1])
        return args[0]  # Identity


def _global_average_pool(x):
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


MODULES = {"Conv": Conv, "BatchNormalization": BatchNormalization, "MaxPool": Pool, "AveragePool": Pool,
           "Gemm": Gemm, "Flatten": Flatten, "Reshape": Reshape, "Dropout": Dropout, "Relu": Elementwise,
           "Add": Elementwise, "MatMul": Elementwise, "Identity": Elementwise}


class OnnxNet(nn.Module):
    """Runs an ONNX graph node by node in eager PyTorch (nodes are stored in topological order)."""

    def __init__(self, path):
        super().__init__()
        model = onnx.load(path)
        g = model.graph
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for node in g.node:  # Constant outputs are initializers as far as the converter cares
            if node.op_type == "Constant":
                inits[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        self.input_names = [i.name for i in g.input if i.name not in inits]
        if len(self.input_names) != 1:
            raise NotImplementedError(f"{path}: {len(self.input_names)} graph inputs (one expected)")
        dims = g.input[[i.name for i in g.input].index(self.input_names[0])].type.tensor_type.shape.dim
        self.sample_shape = [d.dim_value for d in dims[1:]]
        self.output_name = g.output[0].name
        self.steps = []  # (module index or None, op, value inputs, output)
        self.layers = nn.ModuleList()
        unsupported = sorted({n.op_type for n in g.node if n.op_type not in MODULES
                              and n.op_type not in ("GlobalAveragePool", "Constant")})
        if unsupported:
            raise NotImplementedError(f"{path}: unsupported ops: {', '.join(unsupported)}")
        for node in g.node:
            if node.op_type == "Constant":
                continue
            if node.op_type == "GlobalAveragePool":
                self.steps.append((None, node.op_type, [node.input[0]], node.output[0]))
                continue
            module = MODULES[node.op_type](node, inits)
            if isinstance(module, Elementwise):
                ins = [n for n in node.input if n not in inits]
            else:
                ins = [node.input[0]]
            self.steps.append((len(self.layers), node.op_type, ins, node.output[0]))
            self.layers.append(module)

    def forward(self, x):
        env = {self.input_names[0]: x}
        for idx, op, ins, out in self.steps:
            args = [env[n] for n in ins]
            env[out] = _global_average_pool(*args) if idx is None else self.layers[idx](*args)
        return env[self.output_name]


def _inputs(net, batch, seed=12345):
    """Floats in [-1, 1], as `onnx-distill bench` feeds."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=[batch] + net.sample_shape).astype(np.float32)


def check(path, onnx_distill, batches=(1, 64), tol=1e-4):
    """Our converted net against `onnx-distill run`; returns a result dict."""
    net = OnnxNet(path).eval()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for batch in batches:
            x = _inputs(net, batch, seed=batch)
            xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
            np.save(xin, x)
            r = subprocess.run([onnx_distill, "run", path, "--input", xin, "--output", yout],
                               capture_output=True, text=True)
            if r.returncode:
                return {"model": path, "ok": False, "error": f"onnx-distill run: {r.stderr.strip()}"}
            ref = np.load(yout)
            with torch.no_grad():
                y = net(torch.from_numpy(x)).numpy()
            if y.shape != ref.shape:
                return {"model": path, "ok": False, "error": f"shape {list(y.shape)} vs ours {list(ref.shape)}"}
            err = float(np.max(np.abs(y - ref) / (1.0 + np.abs(ref))))
            worst = max(worst, err)
    return {"model": path, "ok": worst <= tol, "max_rel_err": worst, "tol": tol}


def infer(net, batch, threads, min_time):
    torch.set_num_threads(threads)
    net.eval()
    x = torch.from_numpy(_inputs(net, batch))
    with torch.no_grad():
        warm_end = time.perf_counter() + min(0.2, min_time * 0.2)
        i = 0
        while i < 3 or time.perf_counter() < warm_end:
            net(x)
            i += 1
        times = []
        start = time.perf_counter()
        while len(times) < 10 or time.perf_counter() - start < min_time:
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    times.sort()
    n = len(times)
    median = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    return {"batch": batch, "threads": threads, "median_ms": 1e3 * median, "p10_ms": 1e3 * times[n // 10],
            "p90_ms": 1e3 * times[n * 9 // 10], "samples_per_s": batch / median}


def train(path, batch, threads, steps, warmup=5):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    net = OnnxNet(path).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(0, 1, size=[batch] + net.sample_shape).astype(np.float32))
    with torch.no_grad():
        classes = net(x[:2]).shape[1]
    target = torch.from_numpy(rng.uniform(0, 1, size=[batch, classes]).astype(np.float32))
    t0 = 0.0
    for k in range(steps + warmup):
        if k == warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = ((net(x) - target) ** 2).sum() / (2 * batch)
        loss.backward()
        opt.step()
    el, cpu = time.perf_counter() - t0, time.process_time() - c0
    # cpu_samples_per_s: per CPU-second of the process, as bench_train reports it (load-proof)
    return {"model": path, "batch": batch, "threads": threads, "samples_per_s": steps * batch / el,
            "cpu_samples_per_s": steps * batch / cpu}


def serve(onnx_distill):
    nets = {}
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "quit":
                break
            if words[0] == "check":
                out = check(words[1], onnx_distill)
            elif words[0] == "infer":
                path, batch, threads, min_time = words[1], int(words[2]), int(words[3]), float(words[4])
                if path not in nets:
                    nets[path] = OnnxNet(path)
                out = infer(nets[path], batch, threads, min_time)
            elif words[0] == "train":
                out = train(words[1], int(words[2]), int(words[3]), int(words[4]))
            else:
                out = {"error": f"unknown command {words[0]}"}
        except Exception as e:  # answer every line, so the caller never waits forever
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    mode, rest = argv[0], argv[1:]
    opts = {"--batch": None, "--threads": "1,2", "--min-time": "1", "--steps": "100",
            "--onnx-distill": "build/onnx-distill"}
    models = []
    i = 0
    while i < len(rest):
        if rest[i] in opts and i + 1 < len(rest):
            opts[rest[i]] = rest[i + 1]
            i += 2
        else:
            models.append(rest[i])
            i += 1
    threads = [int(t) for t in opts["--threads"].split(",")]
    if mode == "serve":
        serve(opts["--onnx-distill"])
        return 0
    if mode == "check":
        ok = True
        for m in models:
            r = check(m, opts["--onnx-distill"])
            ok &= r["ok"]
            print(json.dumps(r))
        return 0 if ok else 1
    if mode == "infer":
        batches = [int(b) for b in (opts["--batch"] or "1,64").split(",")]
        out = []
        for m in models:
            net = OnnxNet(m)
            out.append({"model": m, "results": [infer(net, b, t, float(opts["--min-time"]))
                                                for b in batches for t in threads]})
        print(json.dumps(out))
        return 0
    if mode == "train":
        batches = [int(b) for b in (opts["--batch"] or "64").split(",")]
        for m in models:
            for b in batches:
                for t in threads:
                    print(json.dumps(train(m, b, t, int(opts["--steps"]))), flush=True)
        return 0
    print(f"torch_bench.py: unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
