"""Milvus's naming rules: which collection, alias, database, partition, field and index
names are valid, with Milvus's messages (field names may not be filter keywords or system
column names). :func:`validate_name` is re-exported by :mod:`gpuvec.schema`."""

from __future__ import annotations

import re
from typing import Any

from gpuvec.errors import InvalidArgumentError, SchemaError

MAX_NAME_LENGTH = 255
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PARTITION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*\Z")
# Words the filter language owns, plus Milvus's system columns: not usable as field names.
_KEYWORD_TEXT = (
    "$meta RowID Timestamp like exists EXISTS and or not in json_contains JSON_CONTAINS "
    "json_contains_all JSON_CONTAINS_ALL json_contains_any JSON_CONTAINS_ANY array_contains "
    "ARRAY_CONTAINS array_contains_all ARRAY_CONTAINS_ALL array_contains_any "
    "ARRAY_CONTAINS_ANY array_length ARRAY_LENGTH true True TRUE false False FALSE "
    "text_match TEXT_MATCH phrase_match PHRASE_MATCH random_sample RANDOM_SAMPLE"
)
_KEYWORDS = frozenset(_KEYWORD_TEXT.split())


def validate_name(kind: str, name: Any) -> str:
    """Check a collection/alias/database/partition/field/index name; return it unchanged.

    Milvus's rules: ASCII letters, digits and underscores, first character a letter or an
    underscore, at most 255 characters. As in Milvus, partition names may also start with a
    digit and contain ``-``, and field names may not be filter keywords or system names.
    Raises SchemaError for fields, InvalidArgumentError for the other kinds.
    """
    err = SchemaError if kind == "field" else InvalidArgumentError
    if not isinstance(name, str):
        raise err(f"{kind} name must be a string, got {type(name).__name__} ({name!r})")
    if not name:
        raise err(f"{kind} name should not be empty")
    invalid = f"Invalid {kind} name: {name if len(name) <= 64 else name[:64] + '...'}."
    if len(name) > MAX_NAME_LENGTH:  # Milvus's wording, here and below
        raise err(f"{invalid} the length of a {kind} name must be less than "
                  f"{MAX_NAME_LENGTH + 1} characters (got {len(name)})")  # fmt: skip
    if not (_PARTITION_RE if kind == "partition" else _NAME_RE).match(name):
        first_ok = name[0] == "_" or (name[0].isascii() and name[0].isalpha()) or (
            kind == "partition" and name[0].isascii() and name[0].isdigit())  # fmt: skip
        if not first_ok:
            raise err(f"{invalid} the first character of a {kind} name must be an underscore "
                      "or letter")  # fmt: skip
        raise err(f"{invalid} {kind} name can only contain numbers, letters and underscores")
    if kind == "field" and (name in _KEYWORDS or name.lower() == "null"):
        raise err(f"invalid field name {name!r}: it is a reserved keyword")
    return name
