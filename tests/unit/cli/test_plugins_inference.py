from __future__ import annotations

import json

from click.testing import CliRunner

from aisec.attacks.inference.base import INFERENCE_ATTACKS, inference_attacks
from aisec.cli.main import main


def test_plugins_lists_membership_inference_attacks_with_needs():
    res = CliRunner().invoke(main, ["plugins", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    rows = {a["name"]: a for a in data["inference_attacks"]}
    # Every registered attack is listed, and nothing else (the registry is the source of truth).
    assert set(rows) == {a.name for a in inference_attacks()} == set(INFERENCE_ATTACKS)
    assert {"loss", "confidence", "gap", "label_only", "shadow", "lira", "rmia"} <= set(rows)
    assert rows["lira"]["needs_recipe"] and rows["shadow"]["needs_recipe"] and not rows["loss"]["needs_recipe"]
    assert rows["gap"]["labels_only"] and rows["gap"]["requires"] == []
    assert rows["loss"]["requires"] == ["probabilities"]
    assert "online" in rows["lira"]["params"] and rows["lira"]["paper"].startswith("https://")
    # Membership attacks are not mixed into the evasion list.
    assert not set(rows) & {a["name"] for a in data["attacks"]}


def test_plugins_table_shows_membership_attacks():
    res = CliRunner().invoke(main, ["plugins"])
    assert res.exit_code == 0, res.output
    assert "membership-inference attacks" in res.output and "rmia" in res.output
