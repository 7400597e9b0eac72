#!/usr/bin/python3
"""Exports torchvision classifiers as a new user would (torch.onnx.export, dynamic batch) and
writes, per model, an input batch and PyTorch's outputs for it, for tests/t_real_exports.sh.

    export_torchvision.py OUTDIR [FAMILY@OPSET ...]

Writes OUTDIR/FAMILY_opOPSET.onnx, OUTDIR/FAMILY_opOPSET.in.npy (float32, batch 2) and
OUTDIR/FAMILY_opOPSET.ref.npy. Existing files are kept (a cache: delete OUTDIR to redo).
Weights are torchvision's random init made non-degenerate: every BatchNorm gets random scale
and shift, and running statistics measured on random inputs (calibrate),
so that no layer is trivially the identity; zero conv biases that
the exporter shares between layers stay, as they would in a model trained from these classes
(torch folds BN into the conv, leaving per-layer biases, and shares equal constants).
FAMILY_tvinit keeps torchvision's own initialisation instead (BatchNorm at its defaults, zero
biases: the exporter then shares equal constants between layers, as in issue 14's report).
Inputs are 32x32 where the family allows it (64 for googlenet's pools, 224/32 patch for ViT
would be large: a 32x32 ViT with patch 8 instead; vit_deep: patch 4, 6 blocks;
vit_headaxis: attention with heads on an axis of their own, as timm writes it)."""
import os
import sys

import numpy as np
import torch
import torchvision.models as tvm

class HeadAxisAttention(torch.nn.Module):
    """Pre-norm attention as timm writes it: separate q, k, v projections, heads on an axis of
    their own ([B, T, h, E/h] transposed to [B, h, T, E/h]), a scale multiplied in."""

    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.heads = heads
        self.ln = torch.nn.LayerNorm(dim)
        self.q, self.k, self.v, self.proj = (torch.nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):
        b, t, c = x.shape
        y = self.ln(x)
        q, k, v = (p(y).reshape(b, t, self.heads, c // self.heads).transpose(1, 2)
                   for p in (self.q, self.k, self.v))
        a = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        return x + self.proj((a.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c))


class HeadAxisViT(torch.nn.Module):
    """Patch 4 on 32x32, two HeadAxisAttention blocks, mean-pooled tokens, a linear head."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, 64, 4, 4)
        self.blocks = torch.nn.Sequential(HeadAxisAttention(), HeadAxisAttention())
        self.head = torch.nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.blocks(self.patch(x).flatten(2).transpose(1, 2))
        return self.head(x.mean(1))


FAMILIES = {
    # name: (constructor, input size)
    "resnet18": (lambda: tvm.resnet18(num_classes=10), 32),
    "mobilenet_v2": (lambda: tvm.mobilenet_v2(num_classes=10), 32),
    "mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(num_classes=10), 32),
    "squeezenet1_1": (lambda: tvm.squeezenet1_1(num_classes=10), 64),
    "shufflenet_v2_x0_5": (lambda: tvm.shufflenet_v2_x0_5(num_classes=10), 32),
    "efficientnet_b0": (lambda: tvm.efficientnet_b0(num_classes=10), 32),
    "densenet121": (lambda: tvm.densenet121(num_classes=10), 32),
    "googlenet": (lambda: tvm.googlenet(num_classes=10, aux_logits=False, init_weights=True), 64),
    "mnasnet0_5": (lambda: tvm.mnasnet0_5(num_classes=10), 32),
    "regnet_x_400mf": (lambda: tvm.regnet_x_400mf(num_classes=10), 32),
    "resnext": (lambda: tvm.resnet.ResNet(tvm.resnet.Bottleneck, [1, 1, 1, 1], num_classes=10,
                                           groups=8, width_per_group=8), 32),
    "vit": (lambda: tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                          hidden_dim=64, mlp_dim=128, num_classes=10), 32),
    # the shape of issue 14's ViT teacher (patch 4, 32x32, 6 blocks): 65 tokens, 4 heads of 16
    "vit_deep": (lambda: tvm.VisionTransformer(image_size=32, patch_size=4, num_layers=6,
                                               num_heads=4, hidden_dim=64, mlp_dim=128,
                                               num_classes=10), 32),
    "vit_headaxis": (lambda: HeadAxisViT(num_classes=10), 32),
    "convnext_tiny": (lambda: tvm.convnext_tiny(num_classes=10), 32),
}


def non_degenerate(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=gen)
            m.bias.data = 0.2 * torch.randn(n, generator=gen)
            m.running_mean.data = 0.1 * torch.randn(n, generator=gen)
            m.running_var.data = 0.5 + torch.rand(n, generator=gen)
        elif isinstance(m, torch.nn.Linear) and not m.weight.detach().any():
            # ViT's head starts at zero: its outputs would all be 0
            m.weight.data = 0.05 * torch.randn(m.weight.shape, generator=gen)
        elif isinstance(m, torch.nn.LayerNorm):
            n = m.weight.shape
            m.weight.data = 0.5 + torch.rand(n, generator=gen)
            m.bias.data = 0.2 * torch.randn(n, generator=gen)
    return model


def calibrate(model, size, gen):
    """BatchNorm running statistics measured on random inputs (as a training pass would leave
    them): with made-up statistics the deep families' activations vanish layer by layer and the
    teacher answers the same logits for every input (mobilenet_v2's output variance 3e-16), which
    no student can be distilled from."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(16, 3, size, size, generator=gen))
    return model


def export(family, opset, outdir):
    base = os.path.join(outdir, "%s_op%d" % (family, opset))
    if all(os.path.exists(base + s) for s in (".onnx", ".in.npy", ".ref.npy")):
        return
    tvinit = family.endswith("_tvinit")
    make, size = FAMILIES[family[:-len("_tvinit")] if tvinit else family]
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = make() if tvinit else calibrate(non_degenerate(make(), gen), size, gen)
    model.eval()
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.no_grad():
        y = model(x)
    tmp = base + ".onnx.tmp"
    torch.onnx.export(model, x, tmp, opset_version=opset, input_names=["input"],
                      output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    np.save(base + ".in.npy", x.numpy().astype(np.float32))
    np.save(base + ".ref.npy", y.numpy().astype(np.float32))
    os.replace(tmp, base + ".onnx")


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    for spec in sys.argv[2:]:
        family, opset = spec.split("@")
        export(family, int(opset), outdir)
        print(family, opset, flush=True)


if __name__ == "__main__":
    import warnings
    warnings.filterwarnings("ignore")
    main()
