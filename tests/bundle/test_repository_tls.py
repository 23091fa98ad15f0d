"""kobot's repository CA and the repository host's server certificate: what they name, how long they
last, that a second setup reuses them, and when the certificate is reissued. The store is a real Valkey."""

from __future__ import annotations

import datetime
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError
from redis import Redis

from kobot import keys
from kobot.cluster_spec import OfflineRepository
from kobot.errors import StepFailedError
from workers.bundle import defaults
from workers.bundle.repository_job import REPOSITORY_SCOPE, tls_ca, tls_certificate
from workers.bundle.repository_tls import (
    RepositoryCa,
    ServerCertificate,
    certificate_fits,
    issue_server_certificate,
    new_ca,
    repository_ca,
    server_certificate,
)
from workers.cluster_inputs import offline_vars
from workers.cluster_secrets import ClusterSecrets

SECRET = b"k" * 32
HOST_ADDRESS = "192.0.2.7"
"""A documentation address (TEST-NET-1): only written into certificates, never connected to."""
NOW = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)


@pytest.fixture
def secrets(redis: Redis) -> ClusterSecrets:
    return ClusterSecrets(redis=redis, secret=SECRET)


@pytest.fixture(scope="module")
def ca() -> RepositoryCa:
    return new_ca(now=NOW)


def _certificate(server: ServerCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(server.certificate_pem.encode())


def _sans(server: ServerCertificate) -> list[x509.GeneralName]:
    return list(_certificate(server).extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


def test_the_ca_signs_server_certificates_only_and_lasts_ten_years(ca: RepositoryCa) -> None:
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and not usage.digital_signature
    lifetime = ca.certificate.not_valid_after_utc - NOW
    assert lifetime == datetime.timedelta(days=defaults.REPOSITORY_CA_VALIDITY_DAYS)
    assert "PRIVATE" not in repr(ca) and "key=" not in repr(ca)


def test_server_certificate_names_an_address_as_ip_and_a_name_as_dns_and_chains_to_the_ca(
    ca: RepositoryCa,
) -> None:
    server = issue_server_certificate(ca, names=[HOST_ADDRESS, "Repo.Example."], now=NOW)
    assert _sans(server) == [
        x509.IPAddress(ipaddress.ip_address(HOST_ADDRESS)),
        x509.DNSName("repo.example"),
    ]
    certificate = _certificate(server)
    certificate.verify_directly_issued_by(ca.certificate)
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.not_valid_before_utc < NOW
    assert certificate.not_valid_after_utc - NOW == datetime.timedelta(
        days=defaults.REPOSITORY_CERT_VALIDITY_DAYS
    )
    assert "PRIVATE" not in repr(server)


def test_a_server_certificate_never_outlives_its_ca(ca: RepositoryCa) -> None:
    late = ca.certificate.not_valid_after_utc - datetime.timedelta(days=10)
    server = issue_server_certificate(ca, names=[HOST_ADDRESS], now=late)
    assert _certificate(server).not_valid_after_utc == ca.certificate.not_valid_after_utc


@pytest.mark.parametrize(
    ("names", "days_later", "fits"),
    [
        ([HOST_ADDRESS], 0, True),
        (
            [HOST_ADDRESS],
            defaults.REPOSITORY_CERT_VALIDITY_DAYS - defaults.REPOSITORY_CERT_RENEW_BEFORE_DAYS - 1,
            True,
        ),
        (
            [HOST_ADDRESS],
            defaults.REPOSITORY_CERT_VALIDITY_DAYS - defaults.REPOSITORY_CERT_RENEW_BEFORE_DAYS,
            False,
        ),
        (["192.0.2.8"], 0, False),
        ([HOST_ADDRESS, "repo.example"], 0, False),
    ],
    ids=["same-host", "before-renewal", "in-renewal-window", "host-moved", "name-added"],
)
def test_certificate_fits_only_the_same_names_with_time_left(
    ca: RepositoryCa, names: list[str], days_later: int, fits: bool
) -> None:
    server = issue_server_certificate(ca, names=[HOST_ADDRESS], now=NOW)
    later = NOW + datetime.timedelta(days=days_later)
    assert certificate_fits(server, ca=ca, names=names, now=later) is fits


def test_certificate_of_another_ca_or_with_another_key_does_not_fit(ca: RepositoryCa) -> None:
    foreign = issue_server_certificate(new_ca(now=NOW), names=[HOST_ADDRESS], now=NOW)
    assert not certificate_fits(foreign, ca=ca, names=[HOST_ADDRESS], now=NOW)
    ours = issue_server_certificate(ca, names=[HOST_ADDRESS], now=NOW)
    swapped = ServerCertificate(certificate_pem=ours.certificate_pem, key_pem=foreign.key_pem)
    assert not certificate_fits(swapped, ca=ca, names=[HOST_ADDRESS], now=NOW)
    assert not certificate_fits(
        ServerCertificate(certificate_pem="garbage", key_pem=ours.key_pem),
        ca=ca,
        names=[HOST_ADDRESS],
        now=NOW,
    )


def test_the_ca_is_made_once_and_its_key_kept_encrypted(secrets: ClusterSecrets, redis: Redis) -> None:
    first = repository_ca(secrets, scope=REPOSITORY_SCOPE, now=NOW)
    again = repository_ca(secrets, scope=REPOSITORY_SCOPE, now=NOW)
    assert again.certificate == first.certificate
    assert again.key.private_numbers() == first.key.private_numbers()
    stored = redis.hgetall(keys.cluster_secrets(REPOSITORY_SCOPE))
    assert stored, "the CA is in the store"
    assert not any(b"PRIVATE KEY" in value or b"CERTIFICATE" in value for value in stored.values())


def test_an_expired_ca_issues_nothing_and_says_why(secrets: ClusterSecrets) -> None:
    repository_ca(secrets, scope=REPOSITORY_SCOPE, now=NOW)
    expired = NOW + datetime.timedelta(days=defaults.REPOSITORY_CA_VALIDITY_DAYS + 1)
    with pytest.raises(StepFailedError) as refused:
        repository_ca(secrets, scope=REPOSITORY_SCOPE, now=expired)
    assert "expired" in refused.value.user_message


def test_second_setup_reuses_the_certificate_and_a_moved_host_gets_a_new_one(secrets: ClusterSecrets) -> None:
    first = tls_certificate(secrets, host=HOST_ADDRESS)
    assert tls_certificate(secrets, host=HOST_ADDRESS) == first, "a re-run keeps a valid certificate"
    moved = tls_certificate(secrets, host="192.0.2.8")
    assert moved.key_pem != first.key_pem
    assert _sans(moved) == [x509.IPAddress(ipaddress.ip_address("192.0.2.8"))]
    _certificate(moved).verify_directly_issued_by(tls_ca(secrets).certificate)
    assert tls_certificate(secrets, host="192.0.2.8") == moved


def test_a_certificate_in_its_renewal_window_is_reissued(secrets: ClusterSecrets) -> None:
    ca = repository_ca(secrets, scope=REPOSITORY_SCOPE, now=NOW)
    first = server_certificate(secrets, scope=REPOSITORY_SCOPE, ca=ca, names=[HOST_ADDRESS], now=NOW)
    renewal = NOW + datetime.timedelta(days=defaults.REPOSITORY_CERT_VALIDITY_DAYS - 1)
    renewed = server_certificate(secrets, scope=REPOSITORY_SCOPE, ca=ca, names=[HOST_ADDRESS], now=renewal)
    assert renewed != first
    assert _certificate(renewed).not_valid_after_utc > _certificate(first).not_valid_after_utc


def test_the_recorded_repository_carries_the_public_ca_to_the_roles(ca: RepositoryCa) -> None:
    repository = OfflineRepository(
        package_repo_url="http://192.0.2.7:8080/packages",
        image_registry="192.0.2.7:5000",
        files_url="http://192.0.2.7:8080",
        ca_certificate=ca.certificate_pem,
    )
    variables = offline_vars(repository)
    assert variables["offline_registry_ca"] == ca.certificate_pem
    assert "PRIVATE" not in repository.model_dump_json()
    plain = offline_vars(repository.model_copy(update={"ca_certificate": None}))
    assert "offline_registry_ca" not in plain


@pytest.mark.parametrize(
    "value",
    [
        "not a certificate",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "{{ lookup('pipe', 'id') }}",
    ],
    ids=["text", "a-key", "a-template"],
)
def test_a_ca_certificate_that_is_no_pem_certificate_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="one PEM certificate"):
        OfflineRepository(
            package_repo_url="http://192.0.2.7:8080/packages",
            image_registry="192.0.2.7:5000",
            files_url="http://192.0.2.7:8080",
            ca_certificate=value,
        )


HOSTS_TOML = Path(__file__).resolve().parents[2] / "playbooks/roles/containerd/templates/hosts.toml.j2"


def _hosts_toml(**variables: Any) -> dict[str, Any]:
    """The containerd role's hosts.toml as Ansible renders it (trim_blocks on), parsed as containerd would."""
    environment = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined, autoescape=False)  # nosec B701  # TOML, not HTML
    environment.filters["regex_replace"] = lambda value, pattern, repl: re.sub(pattern, repl, value)
    text = environment.from_string(HOSTS_TOML.read_text()).render(ansible_managed="managed", **variables)
    return tomllib.loads(text)


def test_hosts_toml_names_the_ca_for_the_offline_registry_endpoint_and_server(ca: RepositoryCa) -> None:
    common = {
        "offline_registry": "192.0.2.7:5000",
        "containerd_insecure_registries": [],
        "containerd_offline_registry_ca_file": "/etc/containerd/offline-registry-ca.crt",
    }
    endpoint = "https://192.0.2.7:5000"
    verified = _hosts_toml(
        item={"key": "registry.k8s.io", "value": endpoint}, offline_registry_ca=ca.certificate_pem, **common
    )
    assert verified["server"] == endpoint and verified["ca"] == "/etc/containerd/offline-registry-ca.crt"
    assert verified["host"][endpoint]["ca"] == "/etc/containerd/offline-registry-ca.crt"
    plain = _hosts_toml(
        item={"key": "registry.k8s.io", "value": "http://192.0.2.7:5000"}, offline_registry_ca="", **common
    )
    assert "ca" not in plain and "ca" not in plain["host"]["http://192.0.2.7:5000"]
