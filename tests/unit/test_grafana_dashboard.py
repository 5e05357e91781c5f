"""``deploy/grafana/gpuvec.json`` only plots series gpuvec exports.

Every PromQL expression of every panel is reduced to the metric names it selects (label
matchers, ``by``/``without`` groupings, ranges, strings and functions removed); each must
be a series name of a family in ``prometheus_client``'s default registry once gpuvec's
metric modules are imported and its collector registered: a counter ``x`` is exposed as
``x_total``, a histogram ``h`` as ``h_bucket`` / ``h_sum`` / ``h_count``, a gauge under its
own name — so a panel using a name Prometheus would never see fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gpuvec.json"

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("_sum", "_count", ""),
}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
             "and", "or", "unless", "inf", "nan"}  # fmt: skip


def exported_series() -> dict[str, str]:
    """Series name → family name, for every gpuvec family in the default registry."""
    import gpuvec.observability.internals
    import gpuvec.observability.metrics  # noqa: F401
    from gpuvec.observability.collector import register_collector

    register_collector()
    out = {}
    for family in REGISTRY.collect():
        if family.name.startswith("gpuvec_"):
            for suffix in _SUFFIXES.get(family.type, ("",)):
                out[family.name + suffix] = family.name
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or m.group().lower() in _KEYWORDS:
            continue  # a function or aggregation, or a keyword
        names.add(m.group())
    return names


def panel_exprs(node: Any) -> list[tuple[str, str]]:
    """(panel title, expr) of every target, rows' nested panels included."""
    out = []
    for panel in node.get("panels", []):
        out += [(panel.get("title", ""), t["expr"]) for t in panel.get("targets", [])]
        out += panel_exprs(panel)
    return out


def test_metric_names_are_extracted_from_promql() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, function_name) (rate('
            'gpuvec_proxy_req_latency_seconds_bucket{instance=~"$instance", status="x"}'
            '[$__rate_interval]))) / on (job) group_left max(up)')  # fmt: skip
    assert metric_names(expr) == {"gpuvec_proxy_req_latency_seconds_bucket", "up"}


def test_the_dashboard_is_valid_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"]
    exprs = panel_exprs(dash)
    assert len(exprs) >= 20
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["type"] == "prometheus", panel["title"]
            assert panel["targets"], panel["title"]


def test_every_plotted_metric_is_exported() -> None:
    exported = exported_series()
    used: dict[str, str] = {}
    for title, expr in panel_exprs(json.loads(DASHBOARD.read_text())):
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        for name in names:
            used[name] = title
    unknown = {name: title for name, title in used.items() if name not in exported}
    assert not unknown, f"panels plot series gpuvec does not export: {unknown}"


@pytest.mark.parametrize(
    "family",
    [
        "gpuvec_proxy_req_count",
        "gpuvec_proxy_req_latency_seconds",
        "gpuvec_proxy_insert_vectors_count",
        "gpuvec_proxy_delete_vectors_count",
        "gpuvec_querynode_segment_num",
        "gpuvec_datacoord_index_build_latency_seconds",
        "gpuvec_datacoord_index_task_num",
        "gpuvec_streaming_wal_append_latency_seconds",
        "gpuvec_querynode_gpu_memory_used_bytes",
    ],
)
def test_the_dashboard_covers_the_main_families(family: str) -> None:
    used = {n for _, e in panel_exprs(json.loads(DASHBOARD.read_text())) for n in metric_names(e)}
    assert any(exported_series().get(name) == family for name in used), family
