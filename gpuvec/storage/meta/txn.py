"""Transaction helpers shared by meta-store implementations: op validation (before any
I/O, so a bad op leaves nothing applied) and etcd's compare semantics."""

from __future__ import annotations

from collections.abc import Sequence

from gpuvec.errors import InvalidArgumentError
from gpuvec.storage.meta.base import (
    Compare,
    Delete,
    DeletePrefix,
    Get,
    KeyValue,
    Op,
    Put,
    check_key,
    check_prefix,
    check_value,
)

_TARGETS = {"value", "version", "create_revision", "mod_revision", "lease"}
_OPS = {"==", "!=", "<", ">"}


def validate_ops(compare: Sequence[Compare], *branches: Sequence[Op]) -> None:
    """Check every compare and op of a transaction; raise naming the first bad one."""
    for i, c in enumerate(compare):
        if not isinstance(c, Compare):
            raise InvalidArgumentError(f"txn compare[{i}] must be a Compare, got {c!r}")
        check_key(c.key)
        if c.target not in _TARGETS:
            raise InvalidArgumentError(f"txn compare[{i}] has unknown target {c.target!r}")
        if c.op not in _OPS:
            raise InvalidArgumentError(f"txn compare[{i}] has unknown operator {c.op!r}")
        want = bytes if c.target == "value" else int
        if not isinstance(c.value, want) or isinstance(c.value, bool):
            raise InvalidArgumentError(
                f"txn compare[{i}] on {c.target} needs a {want.__name__} value, got {c.value!r}"
            )
    for name, ops in zip(("success", "failure"), branches, strict=False):
        for i, op in enumerate(ops):
            if isinstance(op, Put):
                check_key(op.key)
                check_value(op.key, op.value)
            elif isinstance(op, Delete | Get):
                check_key(op.key)
            elif isinstance(op, DeletePrefix):
                check_prefix(op.prefix)
            else:
                raise InvalidArgumentError(f"txn {name}[{i}] is not a meta op: {op!r}")


def compare_holds(c: Compare, kv: KeyValue | None) -> bool:
    """Evaluate one compare against the key's current state (None: missing key)."""
    if c.target == "value":
        if kv is None:
            return False
        actual: int | bytes = kv.value
    elif kv is None:
        actual = 0
    else:
        actual = {
            "version": kv.version,
            "create_revision": kv.create_revision,
            "mod_revision": kv.mod_revision,
            "lease": kv.lease,
        }[c.target]
    if c.op == "==":
        return actual == c.value
    if c.op == "!=":
        return actual != c.value
    if c.op == "<":
        return actual < c.value  # type: ignore[operator]
    return actual > c.value  # type: ignore[operator]
