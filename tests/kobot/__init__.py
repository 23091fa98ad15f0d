"""Tests of the ground floor (kobot/): settings, store, keys, validation, audit records, body limits."""
