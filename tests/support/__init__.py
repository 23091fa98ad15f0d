"""Helpers the tests share: ports, waiting, kobot's alert server, Alertmanager, settings for the peers.

Fixtures live in conftest.py files; what they are built from lives here, importable by tests,
benchmarks and fixtures alike. The platform peers themselves live in tests/peers/.
"""
