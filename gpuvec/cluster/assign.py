"""The coordinator's assignment rules, as pure functions (tested without a cluster).

Channels: each WAL channel to exactly one live streaming node, the one owning the fewest
channels; a channel whose owner's session is gone moves. Segments: each sealed segment of
a loaded collection to ``replicas`` distinct live query nodes, the ones holding the fewest
rows; holders whose sessions are gone are replaced.
"""

from __future__ import annotations


def plan_channels(
    wanted: list[str], owners: dict[str, str], live: list[str]
) -> tuple[dict[str, str], list[str]]:
    """(channel → new owner, channels to forget)."""
    drops = [ch for ch in owners if ch not in set(wanted)]
    count = {n: 0 for n in live}
    for ch, node in owners.items():
        if ch in wanted and node in count:
            count[node] += 1
    puts: dict[str, str] = {}
    if not live:
        return puts, drops
    for ch in wanted:
        if owners.get(ch) in count:
            continue
        node = min(live, key=lambda n: (count[n], n))
        puts[ch] = node
        count[node] += 1
    return puts, drops


def plan_segments(
    rows: dict[int, int],
    current: dict[int, list[str]],
    load: dict[str, int],
    replicas: int,
) -> tuple[dict[int, list[str]], list[int]]:
    """(segment → its query nodes where that changes, segments to forget). ``load`` (rows
    per live node) is updated in place as segments are placed."""
    drops = [sid for sid in current if sid not in rows]
    puts: dict[int, list[str]] = {}
    for sid in sorted(rows):
        nodes = [n for n in current.get(sid, []) if n in load]
        want = min(replicas, len(load))
        changed = nodes != current.get(sid, [])
        while len(nodes) < want:
            node = min((n for n in load if n not in nodes), key=lambda n: (load[n], n))
            nodes.append(node)
            load[node] += rows[sid]
            changed = True
        if changed and nodes:
            puts[sid] = nodes
        elif changed and not nodes and sid in current:
            drops.append(sid)
    return puts, drops
