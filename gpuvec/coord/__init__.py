"""The coordinator role (DESIGN §1): catalog, TSO, channel and segment assignment."""
