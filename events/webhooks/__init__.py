"""Outgoing webhooks (docs/webhooks.md): a Django app inside `events` (label `webhooks`), so its
models, migrations and admin stay beside the EventLog without touching `events.models`.

Each active endpoint is an independent subscriber of the relay (`webhook_subscriptions`), sent
the CloudEvent of each event it asked for, signed per the Standard Webhooks specification.
"""
