"""The serving plan of the faiss-served index types: which faiss structure serves a
requested Milvus type on this host, with which effective parameters (:class:`Plan`,
:func:`plan`; :class:`~gpuvec.index.faiss_index.FaissIndex` builds and serves it).

Like knowhere, ``nlist`` shrinks to ``max(1, n // 40)`` when a segment has fewer than 40
rows per list, PQ ``nbits`` to ``floor(log2(n))`` when there are fewer rows than codes, and
GPU_IVF_PQ's ``m = 0`` becomes the largest divisor of dim that is <= dim / 2. The plan's
``note`` says how a GPU type, AUTOINDEX or HNSW_SQ is served here (``describe_index``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpuvec.errors import InvalidArgumentError
from gpuvec.index import cagra, spec, validate

__all__ = ["MIN_POINTS_PER_LIST", "Plan", "plan"]

MIN_POINTS_PER_LIST = 40  # knowhere MatchNlist


@dataclass
class Plan:
    """How a requested index type is served: the faiss kind and effective parameters."""

    kind: str  # "IVF_FLAT" | "IVF_SQ8" | "IVF_PQ" | "HNSW"
    nlist: int = 0
    m: int = 0
    nbits: int = 0
    M: int = 0
    efConstruction: int = 0
    note: str = ""
    graph: str = ""  # "cagra": a CAGRA graph as the base layer (index/cagra.py)
    sq: str = ""  # HNSW_SQ: the faiss scalar quantizer of the stored rows (SQ8, SQ6, ...)

    def factory(self) -> str:
        """The faiss ``index_factory`` string of this plan (a CAGRA graph: its name)."""
        if self.graph == "cagra":
            return f"HNSWCagra{2 * self.M},Flat"
        if self.kind == "HNSW":
            return f"HNSW{self.M},{self.sq or 'Flat'}"
        tail = {"IVF_FLAT": "Flat", "IVF_SQ8": "SQ8", "IVF_PQ": f"PQ{self.m}x{self.nbits}np"}
        return f"IVF{self.nlist},{tail[self.kind]}"


def _auto_m(dim: int) -> int:
    return max(d for d in range(1, max(1, dim // 2) + 1) if dim % d == 0)


_SQ = {"SQ8": "SQ8", "SQ6": "SQ6", "FP16": "SQfp16", "BF16": "SQbf16"}  # HNSW_SQ's sq_type


def plan(index_type: str, params: dict[str, Any], n: int, dim: int) -> Plan:
    """The serving plan of ``index_type`` with resolved build ``params`` for ``n`` rows."""
    notes: list[str] = []
    if index_type in ("HNSW", "AUTOINDEX", "GPU_CAGRA"):
        if index_type == "AUTOINDEX":
            auto = spec.AUTOINDEX_BUILD
            p = Plan("HNSW", M=auto["M"], efConstruction=auto["efConstruction"])
            notes.append(
                f"AUTOINDEX resolves to HNSW (M={p.M}, efConstruction={p.efConstruction}) "
                "on this host"
            )
        elif index_type == "GPU_CAGRA":  # a segment too small for a CAGRA graph
            p = Plan(
                "HNSW",
                M=max(2, params["graph_degree"] // 2),
                efConstruction=params["intermediate_graph_degree"],
            )
            notes.append(
                f"GPU_CAGRA on fewer than {cagra.MIN_ROWS} rows: faiss HNSW with M = "
                f"graph_degree/2 = {p.M}, efConstruction = intermediate_graph_degree"
            )
        else:
            p = Plan("HNSW", M=params["M"], efConstruction=params["efConstruction"])
        p.note = "; ".join(notes)
        return p
    if index_type == "HNSW_SQ":
        sq = _SQ[params["sq_type"]]
        note = f"HNSW_SQ: faiss HNSW{params['M']},{sq}"
        if params["refine"]:
            note += "; refine_k > 1 re-scores the ceil(limit * refine_k) best on the raw rows"
        return Plan("HNSW", M=params["M"], efConstruction=params["efConstruction"], sq=sq,
                    note=note)  # fmt: skip
    kind = {"GPU_IVF_FLAT": "IVF_FLAT", "GPU_IVF_PQ": "IVF_PQ"}.get(index_type, index_type)
    if index_type == "GPU_IVF_FLAT":
        notes.append(
            "GPU_IVF_FLAT trained by gpuvec's balanced k-means and filled into gpuvec's IVF "
            "lists (on the GPU where there is one), served by faiss-cpu IndexIVFFlat with the "
            "same centroids and lists"
        )
    elif index_type == "GPU_IVF_PQ":
        notes.append(
            "GPU_IVF_PQ trained by gpuvec's k-means (coarse and per sub-space) and encoded by "
            "gpuvec (on the GPU where there is one), served by faiss-cpu IndexIVFPQ with the "
            "same centroids, codebooks and codes; refine_ratio > 1 re-scores the "
            "ceil(limit * refine_ratio) best on the segment's raw vectors"
        )
    elif index_type.startswith("GPU_"):
        notes.append(f"{index_type} served by the CPU {kind} equivalent (faiss-gpu is not used)")
    nlist = params["nlist"]
    if nlist * MIN_POINTS_PER_LIST > n:
        nlist = max(1, n // MIN_POINTS_PER_LIST)
        notes.append(f"nlist {params['nlist']} reduced to {nlist} for {n} rows")
    p = Plan(kind, nlist=nlist)
    if kind == "IVF_PQ":
        m = params["m"] or _auto_m(dim)
        validate.check_dim(index_type, {"m": m}, dim)
        if n < 2:
            raise InvalidArgumentError(f"index type {index_type} needs at least 2 vectors, got {n}")
        nbits = min(params["nbits"], math.floor(math.log2(n)))
        if nbits != params["nbits"]:
            notes.append(f"nbits {params['nbits']} reduced to {nbits} for {n} rows")
        p.m, p.nbits = m, nbits
    p.note = "; ".join(notes)
    return p
