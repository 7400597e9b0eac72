"""Writes the image folders tests/t_images.sh reads, and torchvision's tensors for them.

usage: images_make.py OUT

OUT/ref/      20 images of several sizes and modes (RGB, RGBA, L, LA, P, 1-bit PNG; RGB, grey,
              CMYK and EXIF-rotated JPEG), made here from seeded random content, in 4 classes
OUT/ref_rgb.npy   torchvision's Resize(40) + CenterCrop((32, 36)) + ToTensor on
                  Image.open(f).convert("RGB") (EXIF orientation applied first), [20, 3, 32, 36]
OUT/ref_grey.npy  Grayscale first, then Resize(37) + CenterCrop(33), [20, 1, 33, 33]
OUT/grey16/   a 16-bit grey PNG (value v*257 ... ) whose high bytes are known: OUT/grey16.npy
OUT/split/    train/ and val/ folders (val has classes in another order on disk)
OUT/corrupt/  two classes, one truncated PNG, one JPEG of garbage and a .bmp among good ones
OUT/fmnist/   train/ and test/ from Fashion-MNIST as PNG (N_TRAIN and N_TEST per folder)
The sample order is the folder reader's: classes sorted, then file names sorted.
"""
import gzip
import io
import os
import sys

import numpy as np
from PIL import Image, ImageOps
import torchvision.transforms as T

out = sys.argv[1]
n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 600
n_test = int(sys.argv[3]) if len(sys.argv) > 3 else 300
rng = np.random.default_rng(7)


def smooth(h, w, c):
    """Random content with structure (so resizing matters): a coarse grid upsampled plus noise."""
    coarse = rng.integers(0, 256, size=(max(2, h // 6), max(2, w // 6), c)).astype(np.float32)
    img = np.array(Image.fromarray(coarse.astype(np.uint8).squeeze()).resize((w, h), Image.BICUBIC))
    img = img.reshape(h, w, c).astype(np.int32) + rng.integers(-30, 30, size=(h, w, c))
    return np.clip(img, 0, 255).astype(np.uint8)


def exif_bytes(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def make_ref():
    specs = [  # (class, name, h, w, kind)
        ("cat", "a.png", 48, 64, "RGB"), ("cat", "b.png", 64, 48, "RGBA"), ("cat", "c.png", 40, 40, "L"),
        ("cat", "d.png", 37, 91, "LA"), ("cat", "e.png", 120, 80, "P"),
        ("dog", "a.jpg", 50, 70, "JRGB"), ("dog", "b.jpeg", 90, 60, "JL"), ("dog", "c.JPG", 33, 33, "JCMYK"),
        ("dog", "d.jpg", 45, 80, "JEXIF6"), ("dog", "e.jpg", 80, 45, "JEXIF3"),
        ("emu", "a.png", 13, 17, "RGB"), ("emu", "b.png", 200, 300, "RGB"), ("emu", "c.png", 31, 29, "1"),
        ("emu", "d.jpg", 333, 123, "JRGB444"), ("emu", "e.png", 40, 36, "RGB"),
        ("yak", "a.png", 36, 40, "L"), ("yak", "b.jpg", 64, 64, "JEXIF8"), ("yak", "c.png", 25, 100, "RGBA"),
        ("yak", "d.jpg", 17, 230, "JEXIF5"), ("yak", "e.png", 41, 39, "P"),
    ]
    paths = []
    for cls, name, h, w, kind in specs:
        d = os.path.join(out, "ref", cls)
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, name)
        if kind == "RGB":
            Image.fromarray(smooth(h, w, 3)).save(p)
        elif kind == "RGBA":
            Image.fromarray(np.concatenate([smooth(h, w, 3), smooth(h, w, 1)], axis=2), "RGBA").save(p)
        elif kind == "L":
            Image.fromarray(smooth(h, w, 1)[:, :, 0], "L").save(p)
        elif kind == "LA":
            Image.fromarray(np.concatenate([smooth(h, w, 1), smooth(h, w, 1)], axis=2), "LA").save(p)
        elif kind == "P":
            Image.fromarray(smooth(h, w, 3)).convert("P", palette=Image.ADAPTIVE, colors=32).save(p)
        elif kind == "1":
            Image.fromarray(smooth(h, w, 1)[:, :, 0] > 128).save(p)
        elif kind == "JRGB":
            Image.fromarray(smooth(h, w, 3)).save(p, quality=90)
        elif kind == "JRGB444":
            Image.fromarray(smooth(h, w, 3)).save(p, quality=75, subsampling=0)
        elif kind == "JL":
            Image.fromarray(smooth(h, w, 1)[:, :, 0], "L").save(p, quality=85)
        elif kind == "JCMYK":
            Image.fromarray(smooth(h, w, 3)).convert("CMYK").save(p, quality=95)
        elif kind.startswith("JEXIF"):
            Image.fromarray(smooth(h, w, 3)).save(p, quality=92, exif=exif_bytes(int(kind[5:])))
        paths.append(p)
    paths.sort(key=lambda p: (os.path.basename(os.path.dirname(p)), os.path.basename(p)))

    def load(p):
        return ImageOps.exif_transpose(Image.open(p)).convert("RGB")

    rgb = T.Compose([T.Resize(40), T.CenterCrop((32, 36)), T.ToTensor()])
    grey = T.Compose([T.Grayscale(1), T.Resize(37), T.CenterCrop(33), T.ToTensor()])
    np.save(os.path.join(out, "ref_rgb.npy"), np.stack([rgb(load(p)).numpy() for p in paths]).astype(np.float32))
    np.save(os.path.join(out, "ref_grey.npy"), np.stack([grey(load(p)).numpy() for p in paths]).astype(np.float32))


def make_grey16():
    d = os.path.join(out, "grey16", "only")
    os.makedirs(d, exist_ok=True)
    v = rng.integers(0, 65536, size=(9, 11)).astype(np.uint16)
    Image.fromarray(v, "I;16").save(os.path.join(d, "a.png"))
    np.save(os.path.join(out, "grey16.npy"), (v >> 8).astype(np.float32)[None, None] / 255)


def make_split():
    for split, classes in (("train", ["b", "a", "c"]), ("val", ["c", "a"])):
        for i, cls in enumerate(classes):
            d = os.path.join(out, "split", split, cls)
            os.makedirs(d, exist_ok=True)
            for k in range(2 if split == "val" else 3):
                Image.fromarray(np.full((8, 8), 10 * i + k, np.uint8)).save(os.path.join(d, f"{k}.png"))


def make_corrupt():
    for cls in ("a", "b"):
        d = os.path.join(out, "corrupt", cls)
        os.makedirs(d, exist_ok=True)
        for k in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(os.path.join(d, f"{k}.png"))
    good = io.BytesIO()
    Image.fromarray(smooth(8, 8, 3)).save(good, format="PNG")
    open(os.path.join(out, "corrupt", "a", "1trunc.png"), "wb").write(good.getvalue()[:40])
    open(os.path.join(out, "corrupt", "b", "junk.jpg"), "wb").write(b"\xff\xd8\xff" + bytes(100))
    Image.fromarray(smooth(8, 8, 3)).save(os.path.join(out, "corrupt", "b", "x.bmp"))
    open(os.path.join(out, "corrupt", "b", "notes.txt"), "w").write("not an image\n")


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def make_fmnist():
    names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    src = "/usr/share/datasets/fashion-mnist"
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = idx(f"{src}/{prefix}-images-idx3-ubyte.gz")[:n]
        y = idx(f"{src}/{prefix}-labels-idx1-ubyte.gz")[:n]
        for i in range(n):
            d = os.path.join(out, "fmnist", split, f"{y[i]}-{names[y[i]]}")
            os.makedirs(d, exist_ok=True)
            Image.fromarray(x[i]).save(os.path.join(d, f"{i:05d}.png"))


make_ref()
make_grey16()
make_split()
make_corrupt()
make_fmnist()
