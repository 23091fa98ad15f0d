"""Expiry read back from real certificates (made with `cryptography`), as the renewal job reads the
copies cluster_cert_renew.yml fetches: `<dir>/<node>/<file>`."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kobot.errors import StepFailedError
from tests.certs.certificates import certificate_pem
from workers.day2_ops.cert_renew_expiry import expiry_lines, read_expiry, read_report

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_expiry_is_the_certificates_not_after_as_openssl_reads_it(tmp_path: Path) -> None:
    not_after = datetime(2027, 11, 29, 8, 30, 15, tzinfo=UTC)
    path = tmp_path / "apiserver.crt"
    path.write_bytes(certificate_pem(common_name="kube-apiserver", not_after=not_after))

    expiry = read_expiry(path, node="master-1")

    assert (expiry.node, expiry.file, expiry.not_after) == ("master-1", "apiserver.crt", not_after)
    openssl = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-in", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert openssl.stdout.strip() == "notAfter=Nov 29 08:30:15 2027 GMT"


def test_each_node_shows_its_earliest_certificate_and_the_days_left(tmp_path: Path) -> None:
    files = {
        "master-1/apiserver.crt": NOW + timedelta(days=365),
        "master-1/front-proxy-client.crt": NOW + timedelta(days=364, hours=23),
        "master-2/apiserver.crt": NOW + timedelta(days=5, hours=1),
        "master-2/server.crt": NOW + timedelta(days=300),
    }
    for name, not_after in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(certificate_pem(common_name=name, not_after=not_after))

    expiries = read_report(tmp_path)

    assert [(e.node, e.file) for e in expiries] == [
        ("master-1", "apiserver.crt"),
        ("master-1", "front-proxy-client.crt"),
        ("master-2", "apiserver.crt"),
        ("master-2", "server.crt"),
    ]
    assert expiry_lines(expiries, now=NOW) == [
        "master-1: earliest front-proxy-client.crt 2027-11-29 (364 days left)",
        "master-2: earliest apiserver.crt 2026-12-04 (5 days left)",
    ]


def test_an_expired_certificate_shows_negative_days(tmp_path: Path) -> None:
    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "apiserver.crt").write_bytes(
        certificate_pem(common_name="old", not_after=NOW - timedelta(days=3))
    )
    assert expiry_lines(read_report(tmp_path), now=NOW) == [
        "m1: earliest apiserver.crt 2026-11-26 (-3 days left)"
    ]


def test_a_file_that_is_no_certificate_is_a_clear_failure_naming_node_and_file(tmp_path: Path) -> None:
    (tmp_path / "master-1").mkdir()
    (tmp_path / "master-1" / "apiserver.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")

    with pytest.raises(StepFailedError) as caught:
        read_report(tmp_path)

    assert caught.value.user_message == "apiserver.crt read back from master-1 is not a PEM certificate"


def test_nothing_read_back_is_an_empty_report(tmp_path: Path) -> None:
    assert read_report(tmp_path / "absent") == []
    assert read_report(tmp_path) == []
