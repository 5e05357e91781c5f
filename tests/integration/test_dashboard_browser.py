"""The gpuvec page on the embedded Dask dashboard, rendered by a real headless Chromium.

An embedded client opens with a fixed dashboard port (so the dashboard is up at open),
inserts 30k vectors and starts a slow HNSW build; while it runs, Chromium loads
``/gpuvec`` and the test reads the *rendered* DOM. Bokeh draws every model inside shadow
roots, which ``chromium --dump-dom`` leaves out, and a bokeh server page only renders once
its websocket has delivered the document, which ``--virtual-time-budget`` does not wait
for; so the test drives Chromium over the DevTools protocol instead (``--remote-debugging-
port``, tornado's websocket client): it polls the DOM serialised with its shadow roots until
the collection and a build appear, then takes a screenshot.

``make test`` installs Chromium (``deploy/local/chromium.sh ensure``) and sets
``GPUVEC_REQUIRE_SERVICES=1``, under which a missing Chromium fails the test; elsewhere the
test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.schema import DataType

DIM, ROWS = 32, 30_000
WINDOW = (1400, 1000)
# the document with every (open) shadow root serialised in place, as the browser renders it
DUMP_JS = """(() => {
  const roots = [];
  const walk = (node) => node.querySelectorAll('*').forEach((el) => {
    if (el.shadowRoot) { roots.push(el.shadowRoot); walk(el.shadowRoot); }
  });
  walk(document);
  return document.documentElement.getHTML({serializableShadowRoots: true, shadowRoots: roots});
})()"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        why = "chromium is not installed (deploy/local/chromium.sh ensure installs it)"
        if os.environ.get("GPUVEC_REQUIRE_SERVICES") == "1":
            pytest.fail(why + "; GPUVEC_REQUIRE_SERVICES=1: not skipping")
        print(f"SKIP: {why}")
        pytest.skip(why)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevTools:
    """A minimal Chrome DevTools Protocol session on one page target."""

    def __init__(self, ws: Any, session: str) -> None:
        self.ws, self.session, self._id = ws, session, 0

    @classmethod
    async def open(cls, endpoint: str, url: str) -> DevTools:
        """Connect to the browser at ``endpoint``, open a tab of the test's window size and
        navigate it to ``url``."""
        from tornado.websocket import websocket_connect

        tools = cls(await websocket_connect(endpoint, max_message_size=64 << 20), "")
        target = await tools.call("Target.createTarget", url="about:blank")
        attached = await tools.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        tools.session = attached["sessionId"]
        await tools.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0],
                         height=WINDOW[1], deviceScaleFactor=1, mobile=False)  # fmt: skip
        await tools.call("Page.navigate", url=url)
        return tools

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        await self.ws.write_message(json.dumps(msg))
        while True:  # events (no id) are not needed here
            raw = await asyncio.wait_for(self.ws.read_message(), 60)
            assert raw is not None, "the DevTools connection closed"
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply["error"]
                return dict(reply.get("result", {}))

    async def rendered_dom(self) -> str:
        out = await self.call("Runtime.evaluate", expression=DUMP_JS, returnByValue=True)
        return str(out.get("result", {}).get("value", ""))


def page_shows_build(dom: str, collection: str) -> bool:
    """The collection is listed and a build of it is running (with its progress) or done."""
    text = re.sub(r"<[^>]+>", " ", dom)
    return collection in text and bool(
        re.search(r"Running \d+% \([\d,]+ / 30,000 rows\)|Finished \(30,000 rows\)", text)
    )


async def launch(profile: Path) -> tuple[Any, str, asyncio.Task[None]]:
    """Start headless Chromium with a DevTools port; returns the process, the browser's
    websocket endpoint and the task that keeps draining its stderr."""
    proc = await asyncio.create_subprocess_exec(
        chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    stderr = proc.stderr

    async def drain() -> None:  # a full pipe would stall the browser
        while await stderr.readline():
            pass

    try:
        endpoint = None
        while endpoint is None:
            line = (await asyncio.wait_for(stderr.readline(), 60)).decode()
            assert line, "chromium exited before it opened the DevTools endpoint"
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            endpoint = found.group(1) if found else None
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, endpoint, asyncio.create_task(drain())


async def render(url: str, shot: Path, profile: Path, ready: Callable[[str], bool]) -> str:
    """Load ``url`` until ``ready(rendered DOM)`` (or 60 s), screenshot it, return the DOM."""
    proc, endpoint, draining = await launch(profile)
    try:
        tools = await DevTools.open(endpoint, url)
        try:
            deadline = time.monotonic() + 60
            dom = ""
            while time.monotonic() < deadline:
                dom = await tools.rendered_dom()
                if ready(dom):
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(0.5)  # one more refresh painted
            png = await tools.call("Page.captureScreenshot", format="png")
            shot.write_bytes(base64.b64decode(png["data"]))
            return dom
        finally:
            tools.ws.close()
    finally:
        proc.kill()
        await proc.wait()
        draining.cancel()


def test_embedded_page_shows_a_running_build(tmp_path: Path) -> None:
    chromium()  # skip (or fail under make test) before starting anything
    port = free_port()
    cfg = Config(seal_idle_s=3600, dashboard_address=f"127.0.0.1:{port}", index_min_rows=100)
    client = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        url = client._engine.dashboard_link
        assert url == f"http://127.0.0.1:{port}/gpuvec"  # up at open: a fixed port was asked
        s = MilvusClient.create_schema()
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        idx = client.prepare_index_params()
        idx.add_index(
            "vector", index_type="HNSW", metric_type="L2", params={"M": 32, "efConstruction": 200}
        )  # a build of several seconds
        client.create_collection("browser_demo", schema=s, index_params=idx)
        vec = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
        for s0 in range(0, ROWS, 10_000):
            client.insert(
                "browser_demo", [{"id": i, "vector": vec[i]} for i in range(s0, s0 + 10_000)]
            )
        client.search("browser_demo", data=vec[:3], limit=3)
        client.flush("browser_demo")  # seals: the build starts within a second
        shot = tmp_path / "gpuvec-dashboard.png"
        shows = functools.partial(page_shows_build, collection="browser_demo")
        dom = asyncio.run(render(url, shot, tmp_path / "profile", shows))
        text = re.sub(r"<[^>]+>", " ", dom)
        assert "browser_demo" in text, text[:2000]
        assert page_shows_build(dom, "browser_demo"), text[:4000]
        assert 'href="gpuvec"' in dom  # listed in the dashboard's navigation bar
        assert "Data nodes" in text  # the Dask workers, each with its GPU or why none
        assert ("no GPU (Dask" in text) or ("% busy" in text), text[:6000]
        assert shot.exists() and shot.stat().st_size > 20_000
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert client._engine.wait_for_indexes("browser_demo", timeout=240)
    finally:
        client.close()


def test_cluster_scheduler_page_reads_the_catalog(tmp_path: Path, etcd_endpoint: str) -> None:
    """Cluster mode: ``dask scheduler --preload gpuvec.observability.dashboard`` (as the
    launcher starts it) serves the page from the cluster's catalog in etcd."""
    from gpuvec.cluster.launcher import PAGE_PRELOAD
    from gpuvec.coord.catalog import Catalog
    from gpuvec.records import SegmentMeta
    from gpuvec.storage.meta.etcd import EtcdMetaStore

    chromium()
    root = f"gpuvec-dash-{os.getpid()}-{time.monotonic_ns()}"
    config = tmp_path / "gpuvec.toml"
    config.write_text(f'[cluster]\netcd = "{etcd_endpoint}"\netcd_root = "{root}"\n')
    meta = EtcdMetaStore(etcd_endpoint, root=root + "/")
    try:
        catalog = Catalog(meta)
        s = MilvusClient.create_schema()
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        index = {"field_name": "vector", "index_name": "vector", "index_type": "HNSW",
                 "metric_type": "L2", "params": {"M": 16}}  # fmt: skip
        coll = catalog.create("cluster_demo", s, num_shards=1, consistency_level="Bounded",
                              index_params=[index])  # fmt: skip
        seg = SegmentMeta(424242, coll.id, coll.partitions["_default"], coll.channels[0],
                          "collections/x/segments/424242/v1", 5000, 1, 2, 10)  # fmt: skip
        catalog.commit_seal(coll.id, coll.channels[0], 10, [seg], None)
        port, dash = free_port(), free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--dashboard-address", f"127.0.0.1:{dash}",
             "--preload", PAGE_PRELOAD, "--gpuvec-config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{dash}/gpuvec"
            deadline = time.monotonic() + 60
            while not _answers(url):
                assert proc.poll() is None and time.monotonic() < deadline, "no scheduler page"
                time.sleep(0.2)
            shot = tmp_path / "cluster.png"
            dom = asyncio.run(render(url, shot, tmp_path / "profile", lambda d: "424242" in d))
            text = re.sub(r"<[^>]+>", " ", dom)
            assert "cluster_demo" in text and "424242" in text, text[:3000]
            assert "cluster catalog (etcd)" in text
            assert "5,000" in text and "vector: HNSW" in text
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        meta.delete_prefix("")
        meta.close()


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
