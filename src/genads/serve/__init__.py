"""Serving: the HTTP ad service (FastAPI), its bundle format, the budget ledger (SQLite / PostgreSQL) and auth.

``genads serve RUN_DIR`` = :func:`genads.serve.server.run`. Modules: ``bundle`` (what a run
exports for serving), ``ledger`` / ``ledger_pg`` (campaigns, keys, atomic charges), ``engine``
(live ads, decoding, auction, slot tokens), ``tokens`` (signed slot tokens), ``creatives`` (titles
and banners), ``schemas`` + ``app`` (the API), ``server`` (start-up), ``synthetic`` (bundles of
any size for tests and benchmarks), ``demo_step`` (exports the demo run's bundle).
"""
