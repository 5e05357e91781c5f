"""Index types on sealed segments (FLAT reference now; faiss CPU and GPU types later)."""
