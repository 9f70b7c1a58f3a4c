"""Read and write the safetensors format with NumPy alone.

The format (https://github.com/huggingface/safetensors, documented there) is:
8 bytes little-endian u64 N, then N bytes of JSON header mapping each tensor
name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the byte
buffer that follows) plus an optional "__metadata__" of string -> string, then
the tensors' raw little-endian bytes back to back.

Why this format for checkpoints: PyTorch users read it directly
(`safetensors.torch.load_file`), no pickle is involved (loading cannot run
code), the header can be read without the data, and it needs no dependency to
write here.
"""

from __future__ import annotations

import json
import os
import struct
import uuid

import numpy as np

_TO_CODE = {
    np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16", np.dtype("int8"): "I8",
    np.dtype("uint64"): "U64", np.dtype("uint32"): "U32", np.dtype("uint16"): "U16", np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}
_FROM_CODE = {code: dtype for dtype, code in _TO_CODE.items()}


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated or not in the expected format."""


def encode(tensors: dict, metadata: dict | None = None) -> bytes:
    """The safetensors bytes for {name: array} and string metadata."""
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        array = np.ascontiguousarray(value)
        if array.dtype not in _TO_CODE:
            raise TypeError(f"safetensors: tensor {name!r} has unsupported dtype {array.dtype}")
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _TO_CODE[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"safetensors: metadata must map strings to strings; bad keys: {bad}")
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # align the data to 8 bytes
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode(blob: bytes, source: str = "<bytes>") -> tuple[dict, dict]:
    """({name: array}, metadata) from safetensors bytes; `source` names the file in errors."""
    if len(blob) < 8:
        raise CheckpointError(f"{source}: not a safetensors file (only {len(blob)} bytes)")
    (size,) = struct.unpack("<Q", blob[:8])
    if size > len(blob) - 8:
        raise CheckpointError(f"{source}: not a safetensors file, or truncated (header says {size} bytes, "
                              f"the file has {len(blob) - 8} after the length)")
    try:
        header = json.loads(blob[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{source}: unreadable safetensors header ({error})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{source}: the safetensors __metadata__ must map strings to strings")
    data = memoryview(blob)[8 + size:]
    tensors = {}
    for name, entry in header.items():
        tensors[name] = _tensor(data, name, entry, source)
    return tensors, metadata


def _tensor(data, name, entry, source) -> np.ndarray:
    """One tensor of the byte buffer, its header `entry` checked first."""
    if not isinstance(entry, dict):
        raise CheckpointError(f"{source}: tensor {name!r} has a malformed header entry")
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if code not in _FROM_CODE and code != "BF16":
        raise CheckpointError(f"{source}: tensor {name!r} has unsupported dtype {code!r}")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
            or not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and o >= 0 for o in offsets)):
        raise CheckpointError(f"{source}: tensor {name!r} has a malformed shape or data_offsets")
    begin, end = offsets
    # bfloat16 is the top half of a float32: read the 16-bit words, shift them up (exact)
    dtype = np.dtype("uint16" if code == "BF16" else _FROM_CODE[code]).newbyteorder("<")
    count = int(np.prod(shape, dtype=np.int64))
    if end > len(data):
        raise CheckpointError(f"{source}: tensor {name!r} lies outside the file (truncated?)")
    if end - begin != count * dtype.itemsize:
        raise CheckpointError(f"{source}: tensor {name!r} has {end - begin} bytes for shape {shape} of {code}")
    array = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
    if code == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(dtype.newbyteorder("="), copy=True)


def save_file(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write atomically: a temporary file in the same folder (so the rename cannot
    cross file systems), flushed to disk, then renamed over `path` (os.replace is
    atomic on POSIX and Windows), then the folder synced so the rename itself is
    durable. A crash at any point leaves either the previous file or the new one,
    never a mix, and no temporary file behind (unless the process itself is killed)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    blob = encode(tensors, metadata)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as out:  # created with the usual permissions (umask), unlike mkstemp's 0600
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make a rename in `folder` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def load_file(path) -> tuple[dict, dict]:
    """({name: array}, metadata) from a safetensors file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        return decode(f.read(), source=path)
