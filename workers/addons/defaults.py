"""Limits and timeouts of the addon mechanism, each named once."""

from __future__ import annotations

RENDER_TIMEOUT_SECONDS = 120.0
"""One chart render in the child process; a template that loops is stopped here."""

CHART_FETCH_TIMEOUT_SECONDS = 30.0
"""One request to the chart repository (index or archive)."""

CHART_ARCHIVE_MAX_BYTES = 20 * 1024 * 1024
"""Largest chart archive kobot downloads; kube-prometheus-stack is under 1 MiB."""

RENDER_OUTPUT_MAX_BYTES = 64 * 1024 * 1024
"""Largest render the child may hand back (CRDs included)."""

APPLY_REQUEST_TIMEOUT_SECONDS = 30.0
"""One server-side apply or delete request to the cluster's API."""

FIELD_MANAGER = "kobot"
"""The field manager kobot's server-side applies are recorded under."""

RELEASE_LABEL = "kobot.io/addon"
"""Label on every object an addon applies: which release owns it."""

USER_VALUE_MAX_CHARS = 256
"""Longest value a person may set for an addon from chat."""

HEALTH_WAIT_SECONDS = 600.0
"""Longest the health step waits for an addon's workloads to be ready (images pulled from the mirror,
pods started) before the job fails naming the ones that are not."""

HEALTH_POLL_SECONDS = 5.0
"""How often the health step reads the addon's workloads while it waits."""
