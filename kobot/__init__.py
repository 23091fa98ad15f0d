"""kobot's ground floor: the vocabulary every other package shares, and nothing else.

Settings models, the store connection, Redis keys, errors, defaults, job and event records, cluster
records, chat message and conversation types, the chat adapter protocols, risk and the policy's
answers, the audit record, and the checks on values that reach automation. It imports nothing of
kobot's own packages; `workers`, `commands`, `alerts` and `bot` build on it (see README, "How it fits
together", and the import contract in pyproject.toml).
"""
