"""aisec serve: the web UI (pages, static files) and its JSON API."""
