"""The lab fixtures for the tests of the lab itself (the whole suite gets them from tests/conftest.py)."""

from tests.hosts.fixtures import host_lab, lab_hosts

__all__ = ["host_lab", "lab_hosts"]
