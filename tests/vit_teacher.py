#!/usr/bin/python3
"""Trains issue 14's ViT teacher for `make vit` (tests/vit.sh) and caches it.

    vit_teacher.py OUTDIR

torchvision's VisionTransformer at the bar's shape (32x32 input, patch 4, 6 encoder blocks,
hidden 64, 4 heads, MLP 128) with a one-channel patch embedding, trained with torch on
Fashion-MNIST (/usr/share/datasets/fashion-mnist, 28x28 zero-padded by 2 to 32x32, pixels / 255)
for a few epochs on part of the training set, seed 0. Writes OUTDIR/vit_op13.onnx,
OUTDIR/vit_op17.onnx (dynamic batch) and OUTDIR/fmnist32.npz (x_* uint8 [N, 32, 32], y_* int64:
the format `--data` reads, with the default scale 1/255 that the teacher was trained with).
Existing files are kept (a cache: delete OUTDIR to redo)."""
import gzip
import os
import sys
import time

import numpy as np
import torch
import torchvision.models as tvm

ROOT = "/usr/share/datasets/fashion-mnist"
TRAIN_IMAGES = 20000   # of the 60,000: keeps training to a few minutes on 2 cores
EPOCHS = 4
BATCH = 128


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def padded(x):
    return np.pad(x, ((0, 0), (2, 2), (2, 2))).astype(np.uint8)


def make_model():
    m = tvm.VisionTransformer(image_size=32, patch_size=4, num_layers=6, num_heads=4,
                              hidden_dim=64, mlp_dim=128, num_classes=10)
    m.conv_proj = torch.nn.Conv2d(1, 64, kernel_size=4, stride=4)
    return m


def accuracy(model, x, y):
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            right += (model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item()
    return 100.0 * right / len(x)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/vit_teacher"
    os.makedirs(out, exist_ok=True)
    names = [os.path.join(out, n) for n in ("vit_op13.onnx", "vit_op17.onnx", "fmnist32.npz")]
    if all(os.path.exists(n) for n in names):
        return
    p = lambda n: os.path.join(ROOT, n)
    xtr, ytr = padded(read_idx(p("train-images-idx3-ubyte.gz"))), read_idx(p("train-labels-idx1-ubyte.gz"))
    xte, yte = padded(read_idx(p("t10k-images-idx3-ubyte.gz"))), read_idx(p("t10k-labels-idx1-ubyte.gz"))
    tmp = names[2] + ".tmp.npz"
    np.savez(tmp, x_train=xtr, y_train=ytr.astype(np.int64), x_test=xte, y_test=yte.astype(np.int64))
    os.replace(tmp, names[2])

    torch.manual_seed(0)
    torch.set_num_threads(2)
    f = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)
    x, y = f(xtr[:TRAIN_IMAGES]), torch.from_numpy(ytr[:TRAIN_IMAGES].astype(np.int64))
    xt, yt = f(xte), torch.from_numpy(yte.astype(np.int64))
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    steps = EPOCHS * ((len(x) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(0)
    t0 = time.time()
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print("epoch %d: loss %.4f, test accuracy %.2f%% (%.0f s)"
              % (epoch + 1, loss.item(), accuracy(model, xt, yt), time.time() - t0), flush=True)
    model.eval()
    for opset, name in ((13, names[0]), (17, names[1])):
        torch.onnx.export(model, xt[:2], name + ".tmp", opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        os.replace(name + ".tmp", name)


if __name__ == "__main__":
    main()
