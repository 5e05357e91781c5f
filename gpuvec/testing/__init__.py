"""Contract test suites reused by ``tests/contract``: each runs against every
implementation of a storage Protocol (DESIGN §2)."""
