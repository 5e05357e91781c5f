"""The streaming-node role (DESIGN §1): one writer per WAL channel, growing segments."""
