"""Object storage: sealed segments as immutable Zarr v3 groups (DESIGN §4)."""
