"""The CLI's side of the broker: HTTP client, durations, and the session operations.

Imports requests (through `jitkube.client.broker`): never on the `jitkube kubectl` hot
path, which uses the stdlib-only `jitkube.session_cache` instead.
"""
