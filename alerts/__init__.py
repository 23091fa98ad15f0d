"""Alerts in the chat: the Alertmanager receiver, routing, one message per alert group, silences and
the message center for cluster events.

Kept import-light on purpose: `kobot.settings` imports `kobot.settings_alerts`, so nothing here may import the
runtime. Use `alerts.service.AlertService`.
"""
