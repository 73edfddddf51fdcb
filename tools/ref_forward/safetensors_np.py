"""Minimal safetensors reader/writer on raw bytes (the Python package cannot hold FP8/F4/F6 arrays).

Independent of ue8: header = 8-byte little-endian length + JSON; data in row-major little-endian order.
"""
import json
import struct

import numpy as np

NP_DTYPES = {
    "F32": np.float32, "F16": np.float16, "U8": np.uint8, "F8_E4M3": np.uint8,
    "F8_E5M2": np.uint8, "F8_E8M0": np.uint8, "F6_E3M2": np.uint8, "F6_E2M3": np.uint8,
    "BF16": np.uint16,
}


def write(path, tensors, metadata=None):
    """tensors: dict name -> (dtype string, shape list, raw bytes)."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    """Returns (metadata, dict name -> (dtype, shape, raw bytes))."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[8 + n + b:8 + n + e])
    return meta, out


def bf16_bytes(x):
    """f32 -> bf16 with round-to-nearest-even, as raw little-endian bytes."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r.tobytes()


def bf16_to_f32(raw, shape):
    u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
    return u.view(np.float32).reshape(shape)
