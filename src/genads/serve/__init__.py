"""Serving: the HTTP ad service (FastAPI), its bundle format, the budget ledger (SQLite / PostgreSQL) and auth.

``genads serve RUN_DIR`` = :func:`genads.serve.server.run`. Modules: ``bundle`` (what a run
exports for serving), ``ledger`` / ``ledger_pg`` (campaigns, atomic charges, migrations), ``keys``
(API keys: lookup, revocation, rotation), ``engine`` (live ads, decoding, auction, slot tokens),
``tokens`` (signed slot tokens, the secret file), ``creatives`` (titles and banners), ``schemas`` +
``app`` (the API), ``limits`` (body/header sizes, timeouts, strict JSON), ``server`` (start-up, key
and secret files), ``synthetic`` (bundles of any size for tests and benchmarks), ``demo_step``
(exports the demo run's bundle).
"""
