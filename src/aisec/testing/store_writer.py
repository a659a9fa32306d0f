"""A tiny evidence writer process, for crash and concurrency tests of a store backend.

``python -m aisec.testing.store_writer URL RUN_ID N [--go FILE] [--delay S]`` opens the store,
prints ``ready``, waits for ``--go`` to exist (so several writers start together), then writes N
deterministic records (ids derived from RUN_ID) one transaction each, printing ``wrote I``. Run it
again with the same arguments after killing it: it adds only what is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("run_id")
    ap.add_argument("n", type=int)
    ap.add_argument("--go", default=None)
    ap.add_argument("--delay", type=float, default=0.0)
    a = ap.parse_args(argv)

    from aisec.store import open_store
    from aisec.testing.evidence import fake_evidence

    store = open_store(a.url)
    print("ready", flush=True)
    if a.go:
        while not Path(a.go).exists():
            time.sleep(0.01)
    for i in range(a.n):
        e = fake_evidence("robustness.robust_accuracy", 0.5 + i / (10 * a.n), run_id=a.run_id, index=i,
                          parameters={"attack": "pgd", "norm": "linf", "eps": round(0.01 * (i + 1), 4)})
        store.add_evidence([e])
        print(f"wrote {i}", flush=True)
        if a.delay:
            time.sleep(a.delay)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
