"""BIN_IVF_FLAT's lists and the packed binary codes they hold: the input check
(:func:`as_codes`), seeded k-majority training of the centroids (binary k-means: nearest
centroid by Hamming distance, each bit the majority bit of its members, empty clusters
re-seeded from the largest; :func:`train_centroids`), the CSR inverted lists
(:class:`Lists`) and the index payload's array packing (:func:`pack_arrays`: a JSON table
of contents and the raw arrays, byte-identical for identical input; no pickle)."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.ops import binary_knn
from gpuvec.ops.backend import is_cupy_array

__all__ = ["KMAJORITY_ITERS", "SEED", "Lists", "as_codes", "pack_arrays", "train_centroids",
           "unpack_arrays"]  # fmt: skip

KMAJORITY_ITERS = 10
MAX_POINTS_PER_LIST = 256  # training sample: at most this many rows per centroid
SEED = 1234
_MAJORITY_CHUNK = 1 << 14  # sample rows unpacked to bits at a time
_PAYLOAD_MAGIC = b"GVBIN\x00\x01\x00"


def as_codes(a: Any, name: str = "vectors") -> Any:
    """``a`` as packed binary vectors, uint8 [rows, bytes] (NumPy, memory-mapped or CuPy;
    no copy), or InvalidArgumentError naming what is wrong."""
    m = a if is_cupy_array(a) else np.asarray(a)
    if m.ndim != 2 or m.shape[1] < 1:
        raise InvalidArgumentError(
            f"{name} must be packed binary vectors, uint8 [rows, dim/8], got shape {tuple(m.shape)}"
        )
    if str(m.dtype) != "uint8":
        raise InvalidArgumentError(
            f"{name} must be packed binary vectors of dtype uint8 [rows, dim/8], got dtype "
            f"{m.dtype}"
        )
    return m


# --- payload ----------------------------------------------------------------------------------
def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """``magic | u32 toc length | toc (JSON: name, dtype, shape per array) | raw arrays``."""
    toc = [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]
    head = json.dumps(toc).encode()
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())
    return _PAYLOAD_MAGIC + struct.pack("<I", len(head)) + head + body


def unpack_arrays(payload: bytes) -> dict[str, np.ndarray]:
    """The arrays of :func:`pack_arrays` (read-only views of ``payload``); ValueError when
    the payload is not one."""
    if not payload.startswith(_PAYLOAD_MAGIC):
        raise ValueError("not a binary index payload (bad magic)")
    (hlen,) = struct.unpack_from("<I", payload, len(_PAYLOAD_MAGIC))
    pos = len(_PAYLOAD_MAGIC) + 4
    toc = json.loads(payload[pos : pos + hlen].decode())
    pos += hlen
    out = {}
    for name, dtype, shape in toc:
        dt = np.dtype(dtype)
        count = math.prod(shape)
        if pos + count * dt.itemsize > len(payload):
            raise ValueError(f"binary index payload is truncated (array {name!r})")
        out[name] = np.frombuffer(payload, dt, count, pos).reshape(shape)
        pos += count * dt.itemsize
    if pos != len(payload):
        raise ValueError("binary index payload has trailing bytes")
    return out


# --- training ---------------------------------------------------------------------------------
def _majority(sample: np.ndarray, labels: np.ndarray, nlist: int) -> tuple[np.ndarray, Any]:
    """Centroids whose bits are the majority bits of their members (ties and empty: 0), and
    the cluster sizes."""
    ones = np.zeros((nlist, sample.shape[1] * 8), np.int64)
    order = np.argsort(labels, kind="stable")
    for s in range(0, order.size, _MAJORITY_CHUNK):
        idx = order[s : s + _MAJORITY_CHUNK]
        lab = labels[idx]
        starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
        bits = np.unpackbits(sample[idx], axis=1)
        ones[lab[starts]] += np.add.reduceat(bits, starts, axis=0, dtype=np.int64)
    sizes = np.bincount(labels, minlength=nlist)
    return np.packbits(2 * ones > sizes[:, None], axis=1), sizes


def _reseed(cent: np.ndarray, sizes: np.ndarray, sample: np.ndarray, labels: np.ndarray,
            dist: np.ndarray) -> None:  # fmt: skip
    """Give each empty cluster the member farthest from its centroid in the largest
    cluster (ties: the lower sample row), in place."""
    dist = dist.copy()
    for c in np.flatnonzero(sizes == 0):
        big = int(np.argmax(sizes))
        if sizes[big] < 2:
            return
        members = np.flatnonzero(labels == big)
        row = int(members[np.argmax(dist[members])])
        cent[c] = sample[row]
        labels[row], dist[row] = c, -1.0
        sizes[big] -= 1
        sizes[c] = 1


def train_centroids(codes: np.ndarray, nlist: int, *, seed: int = SEED) -> np.ndarray:
    """``nlist`` binary centroids (uint8 [nlist, bytes]) of ``codes`` by k-majority
    (module docstring); deterministic under ``seed``."""
    n = codes.shape[0]
    rng = np.random.default_rng(seed)
    m = min(n, MAX_POINTS_PER_LIST * nlist)
    pick = np.arange(n) if m == n else np.sort(rng.choice(n, m, replace=False))
    sample = np.ascontiguousarray(codes[pick])
    cent = np.ascontiguousarray(sample[np.sort(rng.choice(m, nlist, replace=False))])
    for _ in range(KMAJORITY_ITERS):
        dist, lab = binary_knn(cent, sample, 1, "HAMMING")
        labels = lab[:, 0].copy()
        new, sizes = _majority(sample, labels, nlist)
        _reseed(new, sizes, sample, labels, dist[:, 0])
        if np.array_equal(new, cent):
            break
        cent = new
    return cent


@dataclass
class Lists:
    """Inverted lists, CSR: list ``j`` holds rows ``ids[offsets[j]:offsets[j + 1]]`` with
    codes ``codes[offsets[j]:offsets[j + 1]]``."""

    centroids: np.ndarray  # uint8 [nlist, bytes]
    offsets: np.ndarray  # int64 [nlist + 1]
    ids: np.ndarray  # int64 [n]
    codes: np.ndarray  # uint8 [n, bytes]

    @classmethod
    def build(cls, codes: np.ndarray, centroids: np.ndarray) -> Lists:
        _, lab = binary_knn(centroids, codes, 1, "HAMMING")
        labels = lab[:, 0]
        order = np.argsort(labels, kind="stable").astype(np.int64)
        sizes = np.bincount(labels, minlength=centroids.shape[0])
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return cls(centroids, offsets, order, np.ascontiguousarray(codes[order]))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], rows: int, nbytes: int) -> Lists:
        """Lists from :func:`unpack_arrays`, checked for consistency (ValueError)."""
        c, off, ids, codes = (arrays[k] for k in ("centroids", "offsets", "ids", "codes"))
        nlist = c.shape[0] if c.ndim == 2 else -1
        ok = (
            c.dtype == np.uint8 and c.ndim == 2 and c.shape[1] == nbytes and nlist >= 1
            and off.dtype == np.int64 and off.shape == (nlist + 1,)
            and ids.dtype == np.int64 and ids.shape == (rows,)
            and codes.dtype == np.uint8 and codes.shape == (rows, nbytes)
            and off[0] == 0 and off[-1] == rows and bool((np.diff(off) >= 0).all())
            and (rows == 0 or (int(ids.min()) >= 0 and int(ids.max()) < rows))
        )  # fmt: skip
        if not ok:
            raise ValueError("binary index payload arrays do not match each other or the header")
        return cls(c, off, ids, codes)

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    def positions(self, probes: np.ndarray) -> np.ndarray:
        """Storage positions of the rows of lists ``probes`` (in probe order)."""
        lo, hi = self.offsets[probes], self.offsets[probes + 1]
        lens = hi - lo
        return np.repeat(lo - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.centroids, self.offsets, self.ids, self.codes)))


# --- the index --------------------------------------------------------------------------------
