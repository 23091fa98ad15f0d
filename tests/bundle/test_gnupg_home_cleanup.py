"""The throwaway GnuPG home holds the signing key in the clear: it is removed even when its agent cannot
be stopped (gpgconf missing here, by an empty PATH)."""

from __future__ import annotations

import pytest

from workers.bundle.apt_signing import gnupg_home


def test_the_home_goes_even_when_gpgconf_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    with gnupg_home() as home:
        (home / "private-keys-v1.d").mkdir()
        (home / "private-keys-v1.d" / "key.key").write_text("(private-key …)")
        monkeypatch.setenv("PATH", "")
    assert not home.exists()
