#!/usr/bin/python3
"""Seeds for the fuzz targets, made at run time (nothing binary is committed).

    make_seeds.py CORPUS_DIR [TESTDATA_DIR]

CORPUS_DIR/model: a spread of ONNX's conformance models (model.onnx, small ones first);
CORPUS_DIR/tensor: their test-data TensorProtos (.pb) and small .npy files made here;
CORPUS_DIR/dataset: tiny .npz, IDX (plain and gzip) and CIFAR inputs in the layout
tests/fuzz/fuzz_dataset.c reads (a format byte, then files separated by "IDXSPLIT").
Standard library only."""
import gzip, io, os, shutil, struct, sys, zipfile

out = sys.argv[1]
testdata = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/libonnx-testdata/data"
SPLIT = b"IDXSPLIT"


def put(kind, name, data):
    d = os.path.join(out, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def spread(paths, n):
    """n paths spread over the sorted list, smallest files preferred."""
    paths = sorted(p for p in paths if os.path.getsize(p) <= 16384)
    step = max(1, len(paths) // n)
    return paths[::step][:n]


models, pbs = [], []
for root, _, files in os.walk(testdata):
    for f in files:
        p = os.path.join(root, f)
        if f == "model.onnx":
            models.append(p)
        elif f.endswith(".pb"):
            pbs.append(p)
for p in spread(models, 150):
    put("model", os.path.relpath(p, testdata).replace("/", "_"), open(p, "rb").read())
for p in spread(pbs, 150):
    put("tensor", os.path.relpath(p, testdata).replace("/", "_"), open(p, "rb").read())


def npy(descr, shape, payload, version=1):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (
        descr, "(%s)" % "".join("%d," % d for d in shape) if shape else "()")
    pre = 10 if version == 1 else 12
    pad = (-(pre + len(header) + 1)) % 64
    header = (header + " " * pad + "\n").encode()
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + payload


seeds = {
    "f4.npy": npy("<f4", (2, 3), struct.pack("<6f", 0, 1, -2, 3.5, 1e30, -0.0)),
    "f8.npy": npy("<f8", (3,), struct.pack("<3d", 1, 2, 3)),
    "i8.npy": npy("<i8", (2, 2), struct.pack("<4q", 1, -1, 1 << 40, 0)),
    "i4.npy": npy("<i4", (1, 1, 2), struct.pack("<2i", 7, -7)),
    "u1.npy": npy("|u1", (2, 2, 2), bytes(range(8))),
    "b1.npy": npy("|b1", (4,), b"\x00\x01\x01\x00"),
    "scalar.npy": npy("<f4", (), struct.pack("<f", 42)),
    "empty.npy": npy("<f4", (0, 5), b""),
    "v2.npy": npy("<f4", (2,), struct.pack("<2f", 1, 2), version=2),
}
for name, data in seeds.items():
    put("tensor", name, data)

# datasets: x uint8 [N,4,4] (or float32), y int64 [N]
x_train, y_train = npy("|u1", (3, 4, 4), bytes(range(48))), npy("<i8", (3,), struct.pack("<3q", 0, 1, 2))
x_test, y_test = npy("|u1", (2, 4, 4), bytes(range(32))), npy("<i8", (2,), struct.pack("<2q", 2, 0))
xf = npy("<f4", (3, 1, 2, 2), struct.pack("<12f", *[i / 12 for i in range(12)]))
for name, comp, arrays in [("npz_stored", zipfile.ZIP_STORED, [x_train, y_train, x_test, y_test]),
                           ("npz_deflated", zipfile.ZIP_DEFLATED, [x_train, y_train, x_test, y_test]),
                           ("npz_float_nolabels", zipfile.ZIP_STORED, [xf, None, xf, None])]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", comp) as z:
        for key, a in zip(["x_train", "y_train", "x_test", "y_test"], arrays):
            if a is not None:
                z.writestr(key + ".npy", a)
    put("dataset", name, b"\x00" + buf.getvalue())


def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


idx_files = [idx((3, 4, 4), bytes(range(48))), idx((3,), b"\x00\x01\x02"),
             idx((2, 4, 4), bytes(range(32))), idx((2,), b"\x02\x00")]
put("dataset", "idx", b"\x01" + SPLIT.join(idx_files))
put("dataset", "idx_nolabels", b"\x01" + SPLIT.join([idx_files[0], b"", idx_files[2]]))
put("dataset", "idx_flat", b"\x01" + SPLIT.join([idx((3, 16), bytes(48)), idx_files[1], idx((2, 16), bytes(32))]))
put("dataset", "idx_gz", b"\x02" + SPLIT.join(gzip.compress(f, mtime=0) for f in idx_files))
rec10 = lambda label: bytes([label]) + bytes(3072)
rec100 = lambda label: bytes([label % 20, label]) + bytes(3072)
put("dataset", "cifar10", b"\x03" + rec10(1) + rec10(9) + SPLIT + rec10(3))
put("dataset", "cifar100", b"\x04" + rec100(42) + SPLIT + rec100(99))

# shrink spec files (fuzz_spec.c's model has /features/{0,2}/Conv and /classifier/Gemm)
specs = {
    "width.json": b'{"width": 0.5}',
    "all.json": b'{"width": 0.75, "depth": 1, "channels": {"/features/0/Conv": 8, "/features/*": 12},\n'
                b' "drop": ["/features/2/*"]}',
    "escapes.json": b'{"channels": {"/f\\u0065atures/?/Conv": 4, "\\"x\\\\": 1}, "depth": 0.5e0}',
    "empty.json": b"{}",
    "nested.json": b'{"width": 1, "channels": {}, "drop": []}',
}
for name, data in specs.items():
    put("spec", name, data)

# images (fuzz_image.c): every mode the folder reader decodes, small; the first byte picks sizes
try:
    from PIL import Image
    import io as _io
    import numpy as _np
    _rng = _np.random.default_rng(0)
    def _img(mode, fmt, **kw):
        a = _rng.integers(0, 256, (9, 13, 3), dtype=_np.uint8)
        im = Image.fromarray(a).convert(mode) if mode != "I;16" else Image.fromarray(a[:, :, 0].astype(_np.uint16) * 257, "I;16")
        b = _io.BytesIO()
        im.save(b, format=fmt, **kw)
        return b.getvalue()
    for i, (name, mode, fmt, kw) in enumerate([("rgb.png", "RGB", "PNG", {}), ("rgba.png", "RGBA", "PNG", {}),
                                               ("l.png", "L", "PNG", {}), ("p.png", "P", "PNG", {}), ("1.png", "1", "PNG", {}),
                                               ("i16.png", "I;16", "PNG", {}), ("rgb.jpg", "RGB", "JPEG", {}),
                                               ("l.jpg", "L", "JPEG", {}), ("cmyk.jpg", "CMYK", "JPEG", {}),
                                               ("prog.jpg", "RGB", "JPEG", {"progressive": True})]):
        put("image", name, bytes([i * 23 % 256]) + _img(mode, fmt, **kw))
    e = Image.Exif()
    e[0x0112] = 6
    put("image", "exif6.jpg", b"\x07" + _img("RGB", "JPEG", exif=e.tobytes()))
except ImportError:
    pass
