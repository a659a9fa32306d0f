"""Alembic migrations of the evidence store, shipped in the package.

They run programmatically when a store is opened (:func:`aisec.store.open_store`); no
``alembic.ini`` is needed. To add a revision while developing::

    alembic -x url=sqlite:///dev.db -c /dev/null revision -m "what changed"  # or copy 0001 by hand

then write ``upgrade()``/``downgrade()`` with ``op`` calls (keep them working on SQLite via batch mode).
"""
