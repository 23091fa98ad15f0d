"""Chat: the platform-neutral message model, the adapter contract and one subpackage per platform."""
