"""The query-node role (DESIGN §1): serves sealed segments from GPU memory (CPU fallback)."""
