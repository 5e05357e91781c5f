"""The one error tree of gpuvec.

Every error raised on purpose by gpuvec is a :class:`GpuvecError`. Each class carries a
Milvus-compatible numeric ``code`` (the ``merr`` codes Milvus 2.4+ returns) so the gRPC
endpoint can translate errors without a lookup table, and a message that names the field,
value, key, channel or position at fault.
"""

from __future__ import annotations


class GpuvecError(Exception):
    """Root of all gpuvec errors. ``code`` follows Milvus's error codes."""

    code: int = 65535  # Milvus "unexpected error"

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


# --- input -------------------------------------------------------------------------------
class InvalidArgumentError(GpuvecError, ValueError):
    """A caller passed a value gpuvec refuses (bad name, key, size, type...)."""

    code = 1100  # ParameterInvalid


class InvalidKeyError(InvalidArgumentError):
    """A meta-storage key is empty, too long, or contains forbidden bytes."""


class InvalidChannelError(InvalidArgumentError):
    """A WAL channel name does not match the allowed pattern."""


class RecordTooLargeError(InvalidArgumentError):
    """A WAL record exceeds the configured maximum size."""


# --- storage -----------------------------------------------------------------------------
class StorageError(GpuvecError):
    """A storage layer failed."""

    code = 2000


class UnavailableError(StorageError):
    """A server (etcd, Kafka, S3) could not be reached within the bounded timeout."""

    code = 2001


class NotFoundError(StorageError, KeyError):
    """A channel, segment or object does not exist."""

    code = 2002

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class AlreadyExistsError(StorageError):
    """Something written once (a sealed segment, a channel) is already there."""

    code = 2003


class CorruptDataError(StorageError):
    """Stored bytes failed a checksum or structural check."""

    code = 2004


class FencedError(StorageError):
    """A newer writer (or leader) took over; this one may no longer write."""

    code = 2005


class CompactedError(StorageError):
    """A meta revision or WAL position was removed by compaction/retention."""

    code = 2006


class LeaseExpiredError(StorageError):
    """A lease is gone (expired or revoked)."""

    code = 2007


class NotLeaderError(FencedError):
    """An election participant lost (or never had) leadership."""


class DeadlineExceededError(StorageError, TimeoutError):
    """A bounded wait ran out (campaign, WAL poll with a deadline...)."""

    code = 2009


class ClosedError(StorageError):
    """The object was closed."""

    code = 2008


# --- catalog, schema and data (Milvus merr codes) ----------------------------------------
class CollectionNotFoundError(GpuvecError):
    """The named collection does not exist."""

    code = 100


class CollectionNotLoadedError(GpuvecError):
    """A search/query hit a collection that is not loaded."""

    code = 101


class CollectionAlreadyExistsError(GpuvecError):
    """create_collection with a name in use and a different schema."""

    code = 105


class PartitionNotFoundError(GpuvecError):
    """The named partition does not exist."""

    code = 200


class PartitionNotLoadedError(GpuvecError):
    """A search/query named a partition that is not loaded (``load_partitions`` it)."""

    code = 201


class IndexNotFoundError(GpuvecError):
    code = 700


class IndexBuildError(GpuvecError):
    """An index build failed on the data nodes (``describe_index`` says ``Failed``)."""

    code = 5  # merr ErrServiceInternal: the build, not the request, went wrong


class ImportJobError(GpuvecError):
    """A bulk-import job failed (the message names the file, row and field when a row was
    the cause)."""

    code = 2100  # merr ErrImportFailed


class NotSupportedYetError(GpuvecError):
    """A Milvus feature gpuvec does not implement yet (the message says which)."""

    code = 10  # ErrServiceUnimplemented


class DatabaseNotFoundError(GpuvecError):
    """The named database does not exist."""

    code = 800


class DatabaseLimitExceededError(GpuvecError):
    """create_database beyond the maximum number of databases."""

    code = 801


class DatabaseAlreadyExistsError(GpuvecError):
    """create_database with a name in use (Milvus answers "database already exist")."""

    code = 1100  # ParameterInvalid, as Milvus answers it


class ResourceGroupNotFoundError(GpuvecError):
    """The named resource group does not exist (gpuvec has only Milvus's default one)."""

    code = 300


class AliasNotFoundError(GpuvecError):
    """The named alias does not exist in the database."""

    code = 1600


class AliasCollectionConflictError(GpuvecError):
    """An alias would share its name with a collection of the same database, or the
    reverse."""

    code = 1601


class AliasAlreadyExistsError(GpuvecError):
    """create_alias with an alias that already points at another collection."""

    code = 1602


class SchemaError(InvalidArgumentError):
    """A schema (fields, types, names, limits) is invalid."""


class DataError(InvalidArgumentError):
    """Rows passed to insert/upsert/delete do not fit the schema; the message names the
    field and the row index."""


class FieldNotFoundError(InvalidArgumentError):
    """An output field, filter field or anns_field is not in the schema."""

    code = 1700


class DeviceUnavailableError(GpuvecError):
    """A GPU was required (``GPUVEC_DEVICE=gpu``) but none is usable; says why."""

    code = 2010


class NotOwnerError(FencedError):
    """A cluster node was asked for a WAL channel or segment it does not hold (any more);
    the caller re-reads the assignment and retries."""

    code = 2011
