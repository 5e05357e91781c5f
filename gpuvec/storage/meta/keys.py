"""Every key gpuvec keeps in meta storage (SQLite embedded, etcd in a cluster), in one place.

Modules build keys only through these names, so the layout below is the whole of it (all
values JSON unless noted)::

    catalog/next_id                          id allocator (collections, partitions, segments)
    catalog/collections/<name>               CollectionMeta
    catalog/segments/<cid>/<sid>             SegmentMeta: a committed sealed segment
    catalog/indexes/<cid>/<sid>/<field>      a committed index build of a segment's field
    catalog/deltas/<cid>/<channel>/<pos>     path of a delta log covering the WAL up to <pos>
    catalog/checkpoints/<channel>            WAL position below which the channel's data is
                                             in sealed segments and delta logs (text)
    catalog/databases/<name>                 DatabaseMeta
    catalog/aliases/<db>/<alias>             AliasMeta
    imports/jobs/<job id>                    a bulk-import job: state, progress, segments
    imports/keys/<idempotency key>           the job id a key was submitted as (text)
    tso/window                               the timestamp oracle's reserved window (text)
    auth/users/<name>                        a user's salted password hash
    auth/roles/<role>                        a custom role (admin, public are built in)
    auth/user-roles/<user>/<role>            a user holds a role
    auth/grants/<role>/<type>/<db>/<obj>/<p> a grant (value: the grantor)
    auth/privilege-groups/<group>            a custom privilege group's privileges (JSON)
    election/<name>                          the leader's token (under its lease)
    election-terms/<name>                    the last leader's term (reclaim after a lapse)
    cluster/sessions/<role>/<node id>        a live node's address (under its lease)
    cluster/channels/<channel>               the streaming node owning a WAL channel
    cluster/segments/<cid>/<sid>             the query nodes assigned a sealed segment
    cluster/served/<cid>/<sid>/<node id>     a query node serves that segment (leased)
    cluster/reports/<role>/<node id>         a node's dashboard report (leased)

The catalog, import, namespace and cluster-assignment keys are written only by the leader (through
its guarded transactions); sessions, ``served`` and reports by the node they name.
"""

from __future__ import annotations

CATALOG = "catalog/"
NEXT_ID = f"{CATALOG}next_id"
COLLECTIONS = f"{CATALOG}collections/"
SEGMENTS = f"{CATALOG}segments/"
INDEXES = f"{CATALOG}indexes/"
DELTAS = f"{CATALOG}deltas/"
CHECKPOINTS = f"{CATALOG}checkpoints/"
DATABASES = f"{CATALOG}databases/"
ALIASES = f"{CATALOG}aliases/"

IMPORTS = "imports/"
IMPORT_JOBS = f"{IMPORTS}jobs/"
IMPORT_KEYS = f"{IMPORTS}keys/"
TSO_WINDOW = "tso/window"
USERS = "auth/users/"
ROLES = "auth/roles/"
USER_ROLES = "auth/user-roles/"
GRANTS = "auth/grants/"
PRIVILEGE_GROUPS = "auth/privilege-groups/"
ELECTION = "election/"
ELECTION_TERMS = "election-terms/"
COORDINATOR_ELECTION = f"{ELECTION}coordinator"

CLUSTER = "cluster/"
SESSIONS = f"{CLUSTER}sessions/"
CHANNELS = f"{CLUSTER}channels/"
ASSIGNED = f"{CLUSTER}segments/"
SERVED = f"{CLUSTER}served/"
REPORTS = f"{CLUSTER}reports/"


def collection_key(name: str) -> str:
    return f"{COLLECTIONS}{name}"


def segment_key(collection_id: int, segment_id: int) -> str:
    return f"{SEGMENTS}{collection_id}/{segment_id}"


def segments_of(collection_id: int) -> str:
    return f"{SEGMENTS}{collection_id}/"


def index_key(collection_id: int, segment_id: int, field: str) -> str:
    return f"{INDEXES}{collection_id}/{segment_id}/{field}"


def indexes_of(collection_id: int, segment_id: int | None = None) -> str:
    """The prefix of a collection's (or one of its segments') index records."""
    tail = "" if segment_id is None else f"{segment_id}/"
    return f"{INDEXES}{collection_id}/{tail}"


def delta_key(collection_id: int, channel: str, position: int) -> str:
    return f"{DELTAS}{collection_id}/{channel}/{position:020d}"


def deltas_of(collection_id: int) -> str:
    return f"{DELTAS}{collection_id}/"


def checkpoint_key(channel: str) -> str:
    return f"{CHECKPOINTS}{channel}"


def database_key(name: str) -> str:
    return f"{DATABASES}{name}"


def alias_key(db: str, alias: str) -> str:
    return f"{ALIASES}{db}/{alias}"


def aliases_of(db: str) -> str:
    return f"{ALIASES}{db}/"


def import_job_key(job_id: int) -> str:
    return f"{IMPORT_JOBS}{job_id:020d}"


def import_idempotency_key(key: str) -> str:
    return f"{IMPORT_KEYS}{key}"


def user_key(name: str) -> str:
    return f"{USERS}{name}"


def session_key(role: str, node_id: str) -> str:
    return f"{SESSIONS}{role}/{node_id}"


def sessions_of(role: str) -> str:
    return f"{SESSIONS}{role}/"


def channel_key(channel: str) -> str:
    return f"{CHANNELS}{channel}"


def assigned_key(collection_id: int, segment_id: int) -> str:
    return f"{ASSIGNED}{collection_id}/{segment_id}"


def served_key(collection_id: int, segment_id: int, node_id: str) -> str:
    return f"{SERVED}{collection_id}/{segment_id}/{node_id}"


def served_of(collection_id: int, segment_id: int | None = None) -> str:
    """The prefix of a collection's (or one segment's) ``served`` markers."""
    tail = "" if segment_id is None else f"{segment_id}/"
    return f"{SERVED}{collection_id}/{tail}"


def report_key(role: str, node_id: str) -> str:
    return f"{REPORTS}{role}/{node_id}"
