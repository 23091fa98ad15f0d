"""Imports every platform adapter module so each registers its factory. Add a platform here."""

from __future__ import annotations
