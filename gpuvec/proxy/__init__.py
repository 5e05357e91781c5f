"""The proxy role (DESIGN §1): validation, routing, scatter/gather and top-k reduce."""
