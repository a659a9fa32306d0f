"""Model-file scanners side by side on the corpus of :mod:`aisec.testing.model_files`.

Compares, per file: aisec's scanner (allow-list + restricted unpickling + fickling), fickling alone
(``fickling.loader.scan_file`` / ``scan_zip_archive``, flagged at "likely overtly malicious" or worse)
and, when ``--modelscan`` names its CLI (modelscan 0.8.8 pins rich<15, so it lives in its own venv:
``python -m venv /tmp/ms && /tmp/ms/bin/pip install modelscan==0.8.8``), modelscan (flagged at any
issue). Prints the table and, per scanner, payloads found / false alarms / seconds.

    python bench/bench_model_scan.py [--modelscan /tmp/ms/bin/modelscan]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

from aisec.targets.file_scan import scan_model_path
from aisec.testing.model_files import CorpusFile, build_corpus

_SKIP = {".json", ".txt", ".md", ".py", ".safetensors", ".onnx"}


def fickling_flags(path: Path) -> bool:
    from fickling.analysis import Severity
    from fickling.loader import scan_file, scan_zip_archive

    files = [q for q in path.rglob("*") if q.is_file()] if path.is_dir() else [path]
    worst = Severity.LIKELY_SAFE
    for q in files:
        if q.suffix in _SKIP or q.name.startswith("."):
            continue
        try:
            results = list(scan_zip_archive(str(q), graceful=True).values()) if zipfile.is_zipfile(q) \
                else [scan_file(str(q), graceful=True)]
        except Exception:
            continue
        for r in results:
            worst = max(worst, r.severity)
    return worst >= Severity.LIKELY_OVERTLY_MALICIOUS


def modelscan_flags(cli: str, path: Path) -> bool | None:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o.json"
        subprocess.run([cli, "-p", str(path), "-r", "json", "-o", str(out)], capture_output=True, text=True)
        if not out.exists():
            return None
        return bool(json.loads(out.read_text())["issues"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modelscan", help="path to the modelscan CLI (optional)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as root:
        files = build_corpus(root)
        cols: dict[str, list[bool | None]] = {"aisec": [], "fickling": []}
        secs = {"aisec": 0.0, "fickling": 0.0, "modelscan": 0.0}
        if args.modelscan:
            cols["modelscan"] = []
        for f in files:
            t0 = time.perf_counter()
            cols["aisec"].append(scan_model_path(f.path).count("high") > 0)
            t1 = time.perf_counter()
            cols["fickling"].append(fickling_flags(f.path))
            t2 = time.perf_counter()
            secs["aisec"] += t1 - t0
            secs["fickling"] += t2 - t1
            if args.modelscan:
                cols["modelscan"].append(modelscan_flags(args.modelscan, f.path))
                secs["modelscan"] += time.perf_counter() - t2
        print(f"{'file':30s} {'truth':9s} " + " ".join(f"{c:9s}" for c in cols))
        for i, f in enumerate(files):
            print(f"{f.name:30s} {'MALICIOUS' if f.malicious else 'benign':9s} "
                  + " ".join(f"{_mark(cols[c][i]):9s}" for c in cols))
        _totals(files, cols, secs)
        assert not (Path(root) / "marker").exists(), "a scanner executed a payload"


def _mark(v: bool | None) -> str:
    return "error" if v is None else "FLAG" if v else "-"


def _totals(files: list[CorpusFile], cols: dict[str, list[bool | None]], secs: dict[str, float]) -> None:
    mal = sum(f.malicious for f in files)
    ben = len(files) - mal
    for c, flags in cols.items():
        tp = sum(1 for f, v in zip(files, flags, strict=True) if f.malicious and v)
        fp = sum(1 for f, v in zip(files, flags, strict=True) if not f.malicious and v)
        print(f"{c:10s}: payloads found {tp}/{mal}, false alarms {fp}/{ben}, {secs[c]:.2f} s for {len(files)} files")


if __name__ == "__main__":
    main()
