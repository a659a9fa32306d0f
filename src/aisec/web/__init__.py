"""``aisec serve``: a token-protected web server (JSON API under ``/api/v1``) that runs assessments in worker processes.

The browser pages (``aisec.web.pages``) build only on the public API in :mod:`aisec.web.api`.
"""
