"""Value checks on their own: what passes, how it is normalized, and the message when it does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kobot import validation
from kobot.validation import ArgValueError


@pytest.mark.parametrize("name", ["prod", "prod-1", "a", "a" * 63, "dev2"])
def test_cluster_names_that_pass(name: str) -> None:
    assert validation.cluster_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("-prod", "not a valid name"),
        ("prod-", "not a valid name"),
        ("prod_1", "not a valid name"),
        ("prod.eu", "not a valid name"),
        ("", "not a valid name"),
        ("1prod", "must start with a letter"),
        ("a" * 64, "at most 63"),
    ],
)
def test_cluster_names_that_fail(name: str, message: str) -> None:
    with pytest.raises(ArgValueError, match=message):
        validation.cluster_name(name)


def test_node_names_may_start_with_a_digit() -> None:
    assert validation.node_name("10-0-0-1") == "10-0-0-1"
    assert validation.node_name("Worker-3") == "worker-3"


@pytest.mark.parametrize(
    ("count", "ok"), [(1, True), (3, True), (5, True), (0, False), (2, False), (7, False)]
)
def test_master_counts(count: int, ok: bool) -> None:
    if ok:
        assert validation.masters(count) == count
    else:
        with pytest.raises(ArgValueError, match=f"got {count}"):
            validation.masters(count)


@pytest.mark.parametrize(
    ("given", "normal"), [("1.31.4", "1.31.4"), ("v1.29.0", "1.29.0"), ("1.32.8", "1.32.8")]
)
def test_supported_versions(given: str, normal: str) -> None:
    assert validation.kubernetes_version(given) == normal


@pytest.mark.parametrize("given", ["1.28.15", "1.33.0", "1.32.9", "2.0.0"])
def test_unsupported_versions_name_the_supported_ones(given: str) -> None:
    with pytest.raises(ArgValueError) as caught:
        validation.kubernetes_version(given)
    assert (
        str(caught.value)
        == f"version {given} is not supported; supported: {validation.supported_versions_text()}"
    )


def test_default_version_is_the_newest_supported() -> None:
    assert validation.DEFAULT_KUBERNETES_VERSION == "1.32.8"


@pytest.mark.parametrize(
    ("pods", "services", "overlap"),
    [
        ("10.244.0.0/16", "10.96.0.0/12", False),
        ("10.0.0.0/8", "10.96.0.0/12", True),
        ("10.96.0.0/16", "10.96.0.0/12", True),
        ("fd10::/64", "10.96.0.0/12", False),
        ("fd10::/48", "fd10::/108", True),
    ],
)
def test_cidr_overlap(pods: str, services: str, overlap: bool) -> None:
    if overlap:
        with pytest.raises(ArgValueError, match="overlaps"):
            validation.cidrs_disjoint(pod_cidr=pods, service_cidr=services)
    else:
        validation.cidrs_disjoint(pod_cidr=pods, service_cidr=services)


def test_cidr_canonical_form_and_host_bits() -> None:
    assert validation.cidr("FD10:0::/64", what="pod_cidr") == "fd10::/64"
    with pytest.raises(ArgValueError) as caught:
        validation.cidr("10.244.1.0/16", what="pod_cidr")
    assert caught.value.suggestions == ["10.244.0.0/16"]


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("FD00::1", "fd00::1"),
        ("[fd00::2]", "fd00::2"),
        ("Node-1.Example.com.", "node-1.example.com"),
        ("node7", "node7"),
    ],
)
def test_hosts_that_pass(host: str, normal: str) -> None:
    assert validation.host_address(host) == normal


@pytest.mark.parametrize(
    "host", ["10.0.0.256", "1.2.3", "-node.example.com", "node_1", "a..b", "", "a" * 254]
)
def test_hosts_that_fail(host: str) -> None:
    with pytest.raises(ArgValueError, match=r"is not an IPv4/IPv6 address or a DNS name|legacy spelling"):
        validation.host_address(host)


def test_job_ids() -> None:
    assert validation.job_id("#42") == 42
    assert validation.job_id(7) == 7
    for bad in ("0", "-1", "#", "4 2", "x"):
        with pytest.raises(ArgValueError, match="not a job number"):
            validation.job_id(bad)


def test_since_spans_and_dates() -> None:
    now = datetime(2025, 2, 1, 12, 0, tzinfo=UTC)
    assert validation.since("1H") == "1h"
    assert validation.since_start("1h", now=now) == now - timedelta(hours=1)
    assert validation.since_start("2w", now=now) == now - timedelta(weeks=2)
    assert validation.since("2025-01-31") == "2025-01-31"
    assert validation.since_start("2025-01-31", now=now) == datetime(2025, 1, 31, tzinfo=UTC)
    assert validation.since("2025-01-31T10:00:00+08:00") == "2025-01-31T10:00:00+08:00"
    for bad in ("0h", "367d", "soon", "2025-13-01"):
        with pytest.raises(ArgValueError):
            validation.since(bad)


def test_break_glass_reason() -> None:
    assert validation.break_glass("  outage\n in  eu ") == "outage in eu"
    for bad in ("", "   ", "true", "x" * (validation.BREAK_GLASS_MAX_CHARS + 1)):
        with pytest.raises(ArgValueError):
            validation.break_glass(bad)


@pytest.mark.parametrize("backup", ["prod-20250131-0200", "snap_1.db", "2025-01-31T02:00:00Z"])
def test_backup_ids_that_pass(backup: str) -> None:
    assert validation.backup_id(backup) == backup


@pytest.mark.parametrize("backup", ["../x", "/etc/passwd", "a b", "a..b", "-rf"])
def test_backup_ids_that_fail(backup: str) -> None:
    with pytest.raises(ArgValueError, match="is not a backup id"):
        validation.backup_id(backup)


def test_lone_surrogates_are_found_and_dropped_and_pairs_kept() -> None:
    assert validation.has_surrogates("list\udfff clusters")
    assert not validation.has_surrogates("list clusters 🚀 扩容")
    assert validation.without_surrogates("list\udfff clusters \ud83d") == "list clusters "
    assert validation.without_surrogates("🚀 ok") == "🚀 ok"
    scrubbed = validation.scrub_surrogates({"k\udfff": ["a\ud800", {"b": "c\udfff"}], "n": 1})
    assert scrubbed == {"k": ["a", {"b": "c"}], "n": 1}
