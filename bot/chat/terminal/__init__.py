"""The terminal chat: the first platform, and the one `make run` starts."""
