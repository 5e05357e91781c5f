"""Shared fixtures: endpoints of the real services started by ``deploy/local``.

When ``GPUVEC_REQUIRE_SERVICES=1`` (set by ``make test``), an unreachable etcd or Kafka is
a test *error*, and any skipped test marked ``etcd``/``kafka`` fails the session: CI must
run those tests, not skip them. Otherwise they skip with the reason printed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from gpuvec.testing.services import reachable

REQUIRE = os.environ.get("GPUVEC_REQUIRE_SERVICES") == "1"
ETCD = os.environ.get("GPUVEC_ETCD_ENDPOINT", "127.0.0.1:23790")
KAFKA = os.environ.get("GPUVEC_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def _need(hostport: str, what: str, script: str) -> str:
    if reachable(hostport):
        return hostport
    msg = f"{what} not reachable at {hostport}; start it with deploy/local/{script} start"
    if REQUIRE:
        pytest.fail(msg + " (GPUVEC_REQUIRE_SERVICES=1: not skipping)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def etcd_endpoint() -> str:
    return _need(ETCD, "etcd", "etcd.sh")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _need(KAFKA, "Kafka", "kafka.sh")


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    """A moto S3 server's URL (module scope); tests make their buckets with
    :func:`gpuvec.testing.s3.make_bucket`."""
    pytest.importorskip("boto3", reason="boto3 (moto[server]) missing: pip install .[test]")
    pytest.importorskip("s3fs", reason="s3fs missing: pip install .[test]")
    from gpuvec.testing.s3 import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def unique() -> str:
    """A short unique name for keys, channels and topics of one test."""
    return "t" + uuid.uuid4().hex[:12]


_skipped_service_tests: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and any(m in report.keywords for m in ("etcd", "kafka")):
        _skipped_service_tests.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE and _skipped_service_tests:
        print(
            f"\nERROR: {len(_skipped_service_tests)} etcd/Kafka test(s) were skipped, "
            "but GPUVEC_REQUIRE_SERVICES=1:\n  " + "\n  ".join(_skipped_service_tests)
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _gpu_missing() -> str | None:
    """Why GPU tests cannot run here, or None when a CUDA device is usable."""
    try:
        import cupy
    except ImportError:
        return "cupy is not installed (pip install .[gpu] on a CUDA host)"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as e:  # CUDA driver missing or broken
        return f"no usable CUDA device: {e}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    gpu_items = [i for i in items if "gpu" in i.keywords]
    reason = _gpu_missing() if gpu_items else None
    for item in gpu_items:
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"GPU test skipped: {reason}"))
    # fixtures imply markers, so the skip accounting above sees every service test
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "etcd_endpoint" in names:
            item.add_marker(pytest.mark.etcd)
        if "kafka_bootstrap" in names:
            item.add_marker(pytest.mark.kafka)
