"""gpuvec's page on the Dask scheduler's dashboard: ``http://<dashboard>/gpuvec``.

Dask's scheduler dashboard is a bokeh server whose pages are the functions in
``distributed.dashboard.scheduler.applications`` (route → ``fn(scheduler, extra, doc)``),
read when the scheduler starts its dashboard; its navigation bar lists the names in the
``pages`` template variable. :func:`register` adds the ``/gpuvec`` page to both, so it must
run before the scheduler starts:

* embedded (:class:`gpuvec.datanode.runtime.DataNodeRuntime`): called before the in-process
  ``LocalCluster`` is created; the page shows the live engines of the process
  (:func:`gpuvec.observability.engines.live`);
* cluster: ``dask scheduler --preload gpuvec.observability.dashboard --gpuvec-config FILE``
  (the launcher passes both). Importing this module registers the page (Dask imports preload
  modules before it starts the dashboard), and :func:`dask_setup` opens the cluster's catalog
  in etcd, which is then what the page shows, with the nodes' reports there
  (``cluster/reports/``, :mod:`gpuvec.observability.reports`): where each sealed segment is
  held (GPU / host, bytes), each query node's GPU memory, per WAL channel its owner and the
  query nodes' consumer lag, and request rates and latency from the proxies' counters.

The page refreshes every :data:`REFRESH_MS`: collections, segments and where they live, GPU
memory against the residency budget, running and recent index builds (per-batch progress
from the data-node tasks' scheduler events) and compactions, and request rates and p50 /
p99 latency over time, and the data nodes (Dask workers) with their GPU utilisation and
memory (:mod:`gpuvec.observability.workers`). The data comes from
:func:`gpuvec.observability.snapshot.snapshot`, gathered off the scheduler's event loop so
a slow meta store never stalls the scheduler.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import time
from typing import Any

import click

from gpuvec.observability.pageformat import (
    TABLES,
    _bar,
    _elapsed,
    _ms,
    build_status,
    device_html,
    gpu_memory,
    human_bytes,
    import_status,
    node_counts,
    worker_gpu,
)
from gpuvec.observability.reports import read_reports
from gpuvec.observability.snapshot import RequestMeter, snapshot
from gpuvec.observability.workers import worker_rows
from gpuvec.pipelines.common import PROGRESS_TOPIC

log = logging.getLogger(__name__)

PAGE = "gpuvec"  # the page's route and its name in the navigation bar
ROUTE = "/" + PAGE
REFRESH_MS = 1000
HISTORY = 600  # points kept on the request plots (10 minutes at one a second)
SERIES = ("Search", "Query", "Insert")  # request functions plotted over time
COLORS = {"Search": "#1f77b4", "Query": "#2ca02c", "Insert": "#d62728"}
WIDTH = 1360

ROW_PX, HEADER_PX = 25, 32  # a table is as tall as its rows, up to its limit above

_catalogs: list[Any] = []  # cluster mode: catalogs opened by dask_setup
_min_rows = 1024  # cluster mode: the engine's index_min_rows


# --- registration -------------------------------------------------------------------------
def register() -> bool:
    """Add the gpuvec page to the Dask scheduler dashboard (idempotent). Schedulers started
    afterwards in this process serve it; False when Dask's dashboard (bokeh) is missing."""
    try:
        from distributed.dashboard import scheduler as dashboard
    except ImportError as e:  # bokeh missing or too old: Dask runs without a dashboard
        log.info("no gpuvec dashboard page: %s", e)
        return False
    dashboard.applications.setdefault(ROUTE, gpuvec_doc)
    listed = dashboard.template_variables
    if not getattr(listed, "lists_gpuvec", False):

        def with_gpuvec(scheduler: Any) -> dict[str, Any]:
            """Dask's template variables with gpuvec in the navigation bar."""
            variables = listed(scheduler)
            pages = variables.setdefault("pages", [])
            if PAGE not in pages:
                pages.insert(pages.index("info") if "info" in pages else len(pages), PAGE)
            return variables

        with_gpuvec.lists_gpuvec = True  # type: ignore[attr-defined]
        dashboard.template_variables = with_gpuvec
    return True


def page_link(dashboard_link: str | None) -> str | None:
    """The gpuvec page's URL from a dashboard link such as ``http://host:8787/status``."""
    if not dashboard_link:
        return None
    base = dashboard_link.rstrip("/")
    if base.rsplit("/", 1)[-1] == "status":
        base = base.rsplit("/", 1)[0]
    return f"{base}{ROUTE}"


@click.command()
@click.option(
    "--gpuvec-config",
    default=None,
    help="the cluster's gpuvec.toml (default: GPUVEC_CONFIG); the page reads its catalog",
)
def dask_setup(scheduler: Any, gpuvec_config: str | None) -> None:
    """Preload hook of ``dask scheduler``: open the cluster's catalog for the page."""
    global _min_rows
    from gpuvec.cluster.settings import ClusterSettings
    from gpuvec.coord.catalog import Catalog

    settings = ClusterSettings.load(gpuvec_config)
    _catalogs.append(Catalog(settings.open_meta()))
    _min_rows = settings.engine.index_min_rows
    log.info("gpuvec dashboard page reads the catalog at %s/%s", settings.etcd, settings.etcd_root)


def dask_teardown(scheduler: Any) -> None:
    """Close the meta stores :func:`dask_setup` opened."""
    while _catalogs:
        _catalogs.pop().meta.close()


# --- the page -----------------------------------------------------------------------------
def _title(text: str) -> Any:
    from bokeh.models import Div

    return Div(text=f"<h3 style='margin:8px 0 2px'>{text}</h3>")


class GpuvecPage:
    """The bokeh models of one browser session of the page and their refresh."""

    def __init__(self, scheduler: Any) -> None:
        from bokeh.layouts import column, row
        from bokeh.models import ColumnDataSource, Div

        self.scheduler = scheduler
        self.meter = RequestMeter()
        self._busy = False
        self.header = Div(text=device_html(None, []), width=WIDTH)
        self.summary = Div(text="", width=WIDTH)
        self.sources = {
            name: ColumnDataSource({c: [] for c in cols})
            for name, cols in {
                "collections": ("name", "rows", "growing", "sealed", "indexed", "index",
                                "load_state"),
                "builds": ("state", "collection", "segment", "field", "index_type", "rows",
                           "progress", "status", "elapsed", "error"),
                "compactions": ("job", "collection", "state", "plans", "rows", "progress",
                                "status", "elapsed"),
                "segments": ("collection", "segment", "state", "where", "rows", "bytes"),
                "requests": ("function", "count", "rate", "errors", "p50", "p99"),
                "query_nodes": tuple(c for c, _, _ in TABLES["query_nodes"][0]),
                "channels": tuple(c for c, _, _ in TABLES["channels"][0]),
                "workers": tuple(c for c, _, _ in TABLES["workers"][0]),
                "imports": tuple(c for c, _, _ in TABLES["imports"][0]),
            }.items()
        }  # fmt: skip
        cols = {"time": []} | {f"{f}_{k}": [] for f in SERIES for k in ("rate", "p50", "p99")}
        self.history = ColumnDataSource(cols)
        self.requests_note = Div(text="", width=WIDTH)
        self.tables = {name: self._table(name, spec) for name, spec in TABLES.items()}
        tables = self.tables
        self.root = column(
            self.header,
            self.summary,
            _title("Collections"),
            tables["collections"],
            row(
                column(_title("Index builds"), tables["builds"]),
                column(_title("Compactions"), tables["compactions"]),
            ),
            _title("Bulk-import jobs"),
            tables["imports"],
            _title("Segments (GPU / host)"),
            tables["segments"],
            _title("Data nodes: index builds and compactions run here"),
            tables["workers"],
            self._cluster_box(column),
            _title("Requests"),
            self.requests_note,
            row(*self._request_figures()),
            tables["requests"],
        )

    def _cluster_box(self, column: Any) -> Any:
        """Query nodes and WAL channels: shown once nodes report (cluster page)."""
        self.cluster_box = column(_title("Query nodes"), self.tables["query_nodes"],
                                  _title("WAL channels"), self.tables["channels"],
                                  visible=False)  # fmt: skip
        return self.cluster_box

    def _table(self, name: str, spec: tuple[list[tuple[str, str, int]], int]) -> Any:
        from bokeh.models import DataTable, HTMLTemplateFormatter, TableColumn

        columns, _ = spec
        bar = HTMLTemplateFormatter(
            template="<div style='background:#e5e5e5;height:14px;margin-top:3px'>"
            "<div style='background:#4c9a2a;height:14px;width:<%= value %>%'></div></div>"
        )
        cols = [
            TableColumn(field=f, title=t, width=w, formatter=bar)
            if f == "progress"
            else TableColumn(field=f, title=t, width=w)
            for f, t, w in columns
        ]
        return DataTable(source=self.sources[name], columns=cols, height=HEADER_PX + ROW_PX,
                         width=sum(w for _, _, w in columns) + 30, index_position=None)  # fmt: skip

    def _request_figures(self) -> list[Any]:
        from bokeh.models import DatetimeTickFormatter
        from bokeh.plotting import figure

        rate = figure(title="requests / s", x_axis_type="datetime", height=220, width=660,
                      toolbar_location=None)  # fmt: skip
        latency = figure(title="latency (ms): p50 solid, p99 dashed", x_axis_type="datetime",
                         height=220, width=660, toolbar_location=None)  # fmt: skip
        for fn in SERIES:
            color = COLORS[fn]
            rate.line("time", f"{fn}_rate", source=self.history, color=color, legend_label=fn)
            latency.line("time", f"{fn}_p50", source=self.history, color=color, legend_label=fn)
            latency.line("time", f"{fn}_p99", source=self.history, color=color,
                         line_dash="dashed")  # fmt: skip
        ticks = DatetimeTickFormatter(milliseconds="%H:%M:%S", seconds="%H:%M:%S",
                                      minsec="%H:%M:%S", minutes="%H:%M")  # fmt: skip
        for fig in (rate, latency):
            fig.xaxis.formatter = ticks
            fig.legend.border_line_alpha = 0.0
            fig.add_layout(fig.legend[0], "right")  # beside the plot, off the lines
        return [rate, latency]

    # --- refresh --------------------------------------------------------------------------
    def _scheduler_state(self) -> tuple[list[Any], dict[str, str], list[dict[str, Any]]]:
        """Progress events, gpuvec task states and the workers (read on the scheduler's
        event loop)."""
        events = list(self.scheduler.get_events(PROGRESS_TOPIC))
        tasks = {
            str(k): ts.state
            for k, ts in list(self.scheduler.tasks.items())
            if str(k).startswith("gpuvec-")
        }
        return events, tasks, worker_rows(self.scheduler)

    def gather(self, events: list[Any], tasks: dict[str, str]) -> dict[str, Any]:
        """One snapshot for the page (runs in a worker thread)."""
        catalogs = list(_catalogs)
        reports = [r for c in catalogs for r in read_reports(c.meta)] if catalogs else None
        return snapshot(catalogs=catalogs, events=events, tasks=tasks, meter=self.meter,
                        min_rows=_min_rows, reports=reports)  # fmt: skip

    async def update(self) -> None:
        """Periodic callback: gather off the event loop, then update the models."""
        if self._busy:
            return
        self._busy = True
        try:
            events, tasks, workers = self._scheduler_state()
            loop = asyncio.get_running_loop()
            snap = await loop.run_in_executor(None, self.gather, events, tasks)
            self.show(snap)
            self._show_workers(workers)
        except Exception as e:  # shown on the page; the next refresh tries again
            log.debug("gpuvec dashboard refresh failed", exc_info=True)
            why = html.escape(f"{type(e).__name__}: {e}")
            self.summary.text = f"<div style='color:#b00'>refresh failed: {why}</div>"
        finally:
            self._busy = False

    def show(self, snap: dict[str, Any]) -> None:
        """Put one snapshot into the page's models."""
        now = snap["time"]
        self.header.text = device_html(snap["device"], snap["engines"])
        builds, comps = snap["builds"], snap["compactions"]
        running = [b for b in builds if b["state"] == "Running"]
        self.summary.text = (
            f"<div>{len(snap['collections'])} collections · {len(snap['segments'])} segments · "
            f"index builds: {len(running)} running, "
            f"{sum(b['state'] == 'Finished' for b in builds)} finished, "
            f"{sum(b['state'] == 'Failed' for b in builds)} failed · compactions: "
            f"{sum(c['state'] == 'Executing' for c in comps)} running · "
            f"{node_counts(snap['nodes'])}"
            f"updated {time.strftime('%H:%M:%S', time.localtime(now))}</div>"
        )
        colls = snap["collections"]
        self._set("collections", {
            "name": [c["name"] for c in colls],
            "rows": [f"{c['rows']:,}" for c in colls],
            "growing": ["–" if c["growing"] is None else c["growing"] for c in colls],
            "sealed": [c["sealed"] for c in colls],
            "indexed": ["–" if c["indexed"] is None else f"{100 * c['indexed']:.0f}%"
                        for c in colls],
            "index": [c["index"] or "(none)" for c in colls],
            "load_state": [c["load_state"] for c in colls],
        })  # fmt: skip
        self._set("builds", {
            "state": [b["state"] for b in builds],
            "collection": [b["collection"] for b in builds],
            "segment": [str(b["segment"]) for b in builds],
            "field": [b["field"] for b in builds],
            "index_type": [b["index_type"] for b in builds],
            "rows": [b["rows"] or 0 for b in builds],
            "progress": [_bar(b["progress"]) for b in builds],
            "status": [build_status(b) for b in builds],
            "elapsed": [_elapsed(b, now) for b in builds],
            "error": [b.get("error") or "" for b in builds],
        })  # fmt: skip
        comps = list(reversed(comps))
        self._set("compactions", {
            "job": [str(c["job"]) for c in comps],
            "collection": [c["collection"] for c in comps],
            "state": [c["state"] for c in comps],
            "plans": [c["plans"] for c in comps],
            "rows": [c["rows"] or 0 for c in comps],
            "progress": [_bar(c["progress"]) for c in comps],
            "status": [f"{c['state']} ({c['plans']} rewrites, {c['rows'] or 0:,} rows)"
                       for c in comps],
            "elapsed": [_elapsed(c, now) for c in comps],
        })  # fmt: skip
        imps = snap.get("imports", [])
        self._set("imports", {
            "status": [import_status(j) for j in imps],
            "progress": [_bar(j["progress"]) for j in imps],
            "collection": [j["collection"] for j in imps],
            "elapsed": [_elapsed(j, now) for j in imps],
        })  # fmt: skip
        segs = snap["segments"]
        self._set("segments", {
            "collection": [s["collection"] for s in segs],
            "segment": [str(s["segment"]) for s in segs],
            "state": [s["state"] for s in segs],
            "where": [s["where"] for s in segs],
            "rows": [f"{s['rows']:,}" for s in segs],
            "bytes": [human_bytes(s["bytes"]) for s in segs],
        })  # fmt: skip
        self._show_cluster(snap)
        self._show_requests(snap["requests"], now, local=bool(snap["engines"]))

    def _show_cluster(self, snap: dict[str, Any]) -> None:
        qns, chans = snap["query_nodes"], snap["channels"]
        self.cluster_box.visible = bool(snap["nodes"])
        self._set("query_nodes", {
            "node_id": [q["node_id"] for q in qns],
            "gpu_segments": [q["gpu_segments"] for q in qns],
            "gpu_bytes": [human_bytes(q["gpu_bytes"]) for q in qns],
            "host_segments": [q["host_segments"] for q in qns],
            "host_bytes": [human_bytes(q["host_bytes"]) for q in qns],
            "memory": [gpu_memory(q) for q in qns],
        })  # fmt: skip
        self._set("channels", {
            "channel": [c["channel"] for c in chans],
            "collection": [c["collection"] for c in chans],
            "owner": [c["owner"] or "–" for c in chans],
            "position": ["–" if c["position"] is None else c["position"] for c in chans],
            "unsealed": ["–" if c["position"] is None or c["checkpoint"] is None
                         else c["position"] - c["checkpoint"] for c in chans],
            "growing_rows": [f"{c['growing_rows']:,}" for c in chans],
            "lag": ["–" if c["lag"] is None else c["lag"] for c in chans],
        })  # fmt: skip

    def _show_workers(self, workers: list[dict[str, Any]]) -> None:
        self._set("workers", {
            "worker": [w["worker"] for w in workers],
            "threads": [w["threads"] for w in workers],
            "tasks": [f"{w['processing']} ({w['gpuvec_tasks']})" for w in workers],
            "cpu": ["–" if w["cpu"] is None else f"{w['cpu']:.0f}%" for w in workers],
            "memory": [human_bytes(w["memory"]) for w in workers],
            "gpu": [worker_gpu(w) for w in workers],
        })  # fmt: skip

    def _show_requests(self, reqs: dict[str, dict[str, Any]], now: float, local: bool) -> None:
        if reqs:
            self.requests_note.text = ""
        elif local:
            self.requests_note.text = (
                "<i>no requests recorded in this process yet (gpuvec_proxy_req_count)</i>"
            )
        else:
            self.requests_note.text = (
                "<i>no proxy has reported requests yet (each proxy's report in etcd carries "
                "its gpuvec_proxy_req_count and latency buckets)</i>"
            )
        names = sorted(reqs)
        self._set("requests", {
            "function": names,
            "count": [reqs[n]["count"] for n in names],
            "rate": [f"{reqs[n]['rate']:.1f}" for n in names],
            "errors": [f"{reqs[n]['errors']:.1f}" for n in names],
            "p50": ["–" if reqs[n]["p50"] is None else f"{1e3 * reqs[n]['p50']:.2f}"
                    for n in names],
            "p99": ["–" if reqs[n]["p99"] is None else f"{1e3 * reqs[n]['p99']:.2f}"
                    for n in names],
        })  # fmt: skip
        by_lower = {n.lower(): reqs[n] for n in names}
        point: dict[str, list[float]] = {"time": [now * 1e3]}
        for fn in SERIES:
            r = by_lower.get(fn.lower(), {})
            point[f"{fn}_rate"] = [r.get("rate", 0.0)]
            point[f"{fn}_p50"] = [_ms(r.get("p50"))]
            point[f"{fn}_p99"] = [_ms(r.get("p99"))]
        self.history.stream(point, rollover=HISTORY)

    def _set(self, name: str, data: dict[str, list[Any]]) -> None:
        """Replace a table's rows (only when they changed) and fit its height to them."""
        source = self.sources[name]
        if dict(source.data) != data:
            source.data = data
        rows = len(next(iter(data.values()), []))
        height = HEADER_PX + ROW_PX * min(max(rows, 1), TABLES[name][1])
        if self.tables[name].height != height:
            self.tables[name].height = height


def gpuvec_doc(scheduler: Any, extra: dict[str, Any], doc: Any) -> None:
    """The bokeh document of one session of ``/gpuvec`` (Dask's page signature)."""
    import distributed
    from bokeh.themes import Theme
    from jinja2 import Environment, FileSystemLoader

    page = GpuvecPage(scheduler)
    doc.title = "Dask: gpuvec"
    doc.add_root(page.root)
    doc.add_periodic_callback(page.update, REFRESH_MS)
    doc.add_next_tick_callback(page.update)
    here = os.path.dirname(distributed.__file__)
    templates = Environment(loader=FileSystemLoader(os.path.join(here, "http", "templates")))
    doc.template = templates.get_template("simple.html")  # Dask's page frame and navigation
    doc.template_variables.update(extra)
    doc.theme = Theme(filename=os.path.join(here, "dashboard", "theme.yaml"))


register()  # on import: a `dask scheduler --preload` imports this before its dashboard starts
