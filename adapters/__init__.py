"""Provider adapters: one module per provider, one shared engine.

``base.py`` holds ``BaseAdapter`` (what an adapter declares, and the fetch/push/discover/health-check loop) and the
``AdapterRegistry``; ``engine.py`` the HTTP loop every request goes through (rate limiter, auth, resolution table,
retries); ``pagination.py``, ``cursors.py``, ``resolution.py`` and ``backoff.py`` the strategies it is built from;
``providers.py`` the registry of the five adapters. Adapters never import storage (STYLE.md: meltano/airbyte).
"""
