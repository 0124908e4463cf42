"""The Vault / OpenBao backend: settings, the client, and the failover transport.

Modules: :mod:`~ekm.backends.vault.settings` (the ``[vault]`` table, no network),
:mod:`~ekm.backends.vault.client` (KV v2 and status through hvac's high-level API),
:mod:`~ekm.backends.vault.transit` (Transit wrap/unwrap, mixed into the client),
:mod:`~ekm.backends.vault.transport` (hvac adapter over every node, urllib3 Retry),
:mod:`~ekm.backends.vault.util` (answer-shape checks, credential files). Nothing here imports
hvac or requests at import time.
"""
