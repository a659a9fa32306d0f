"""Extract the MITRE ATLAS ids and names aisec ships, from a release's ``dist/ATLAS.yaml``.

aisec's threat knowledge base (``src/aisec/threats/data/``) names ATLAS techniques and mitigations;
``atlas-release.yaml``, written by this script, is the trimmed release they are checked against
(``tests/unit/threats/test_kb.py``): every tactic, technique and mitigation with its id and name, a
technique's tactics and parent, a mitigation's techniques — nothing else (no descriptions, no case
studies). Run it on a checkout of https://github.com/mitre-atlas/atlas-data at the release to cite:

    git -C atlas-data rev-parse HEAD        # the commit recorded below
    python scripts/atlas_extract.py atlas-data/dist/ATLAS.yaml --commit <sha> --tag v5.6.1 \
        > src/aisec/threats/data/atlas-release.yaml

The ATLAS data is Copyright 2021-2025 The MITRE Corporation, licensed under the Apache License 2.0;
the header written says so and names the modification (trimmed to ids, names and links).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HEADER = """\
# MITRE ATLAS release {version} (tag {tag}, commit {commit} of github.com/mitre-atlas/atlas-data),
# dist/ATLAS.yaml trimmed by scripts/atlas_extract.py to ids, names and links (descriptions, dates,
# references and case studies removed). Do not edit by hand: re-run the script on a newer release.
#
# Copyright 2021-2025 The MITRE Corporation. Licensed under the Apache License, Version 2.0
# (https://www.apache.org/licenses/LICENSE-2.0). Modified by the aisec authors as said above; no
# endorsement by MITRE is implied.
"""


def extract(atlas: dict[str, Any], *, commit: str, tag: str) -> dict[str, Any]:
    """The trimmed release: version, provenance, tactics, techniques and mitigations (ids, names, links)."""
    matrix = atlas["matrices"][0]
    techniques = []
    for t in matrix["techniques"]:
        row: dict[str, Any] = {"id": t["id"], "name": t["name"]}
        if t.get("subtechnique-of"):
            row["parent"] = t["subtechnique-of"]
        if t.get("tactics"):
            row["tactics"] = list(t["tactics"])
        techniques.append(row)
    mitigations = [{"id": m["id"], "name": m["name"],
                    "techniques": sorted({x["id"] for x in m.get("techniques", [])})}
                   for m in matrix["mitigations"]]
    return {
        "release": str(atlas["version"]), "tag": tag, "commit": commit,
        "source": "https://github.com/mitre-atlas/atlas-data/blob/" + commit + "/dist/ATLAS.yaml",
        "license": "Apache-2.0",
        "tactics": [{"id": t["id"], "name": t["name"]} for t in matrix["tactics"]],
        "techniques": techniques,
        "mitigations": mitigations,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("atlas_yaml", type=Path, help="dist/ATLAS.yaml of an atlas-data checkout")
    ap.add_argument("--commit", required=True, help="the checkout's commit (git rev-parse HEAD)")
    ap.add_argument("--tag", required=True, help="the release tag, e.g. v5.6.1")
    args = ap.parse_args(argv)
    atlas = yaml.safe_load(args.atlas_yaml.read_text(encoding="utf-8"))
    out = extract(atlas, commit=args.commit, tag=args.tag)
    sys.stdout.write(HEADER.format(version=out["release"], tag=args.tag, commit=args.commit))
    sys.stdout.write(yaml.safe_dump(out, sort_keys=False, width=120, allow_unicode=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
