"""Wiring of the roles: the embedded runtime now; node processes and Flight RPC later."""
