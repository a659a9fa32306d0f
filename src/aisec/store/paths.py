"""Where the evidence store and the signing keys live by default.

- data dir: ``$AISEC_HOME``, else ``$XDG_DATA_HOME/aisec``, else the platform's user data folder
  (``~/.local/share/aisec`` on Linux, ``~/Library/Application Support/aisec`` on macOS,
  ``%LOCALAPPDATA%\\aisec`` on Windows), as platformdirs would choose;
- store URL: ``$AISEC_STORE_URL``, else ``sqlite:///<data dir>/evidence.db``;
- key dir: ``$AISEC_KEY_DIR``, else ``<data dir>/keys``.

Nothing is created here; the store and the key loader create what they need on first use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_dir() -> Path:
    if os.environ.get("AISEC_HOME"):
        return Path(os.environ["AISEC_HOME"]).expanduser()
    if os.environ.get("XDG_DATA_HOME"):
        return Path(os.environ["XDG_DATA_HOME"]).expanduser() / "aisec"
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "aisec"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "aisec"
    return home / ".local" / "share" / "aisec"


def default_store_url() -> str:
    return os.environ.get("AISEC_STORE_URL") or f"sqlite:///{data_dir() / 'evidence.db'}"


def key_dir() -> Path:
    if os.environ.get("AISEC_KEY_DIR"):
        return Path(os.environ["AISEC_KEY_DIR"]).expanduser()
    return data_dir() / "keys"
