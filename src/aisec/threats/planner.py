"""From a threat model to the plan that tests it, with the reason for every choice.

The rules, in the order the plan lists them (each becomes a :class:`~aisec.core.plan.Rationale`):

- **evasion** (goals ``evasion-untargeted``/``evasion-targeted``): the eps grid climbs to the
  attacker's perturbation budget (a quarter, half and all of it) and the reference budget *is* that budget, so
  the number quoted is measured at it. White-box knowledge (or the weights) → gradient attacks (FGSM +
  PGD; JSMA for L0). Scores access → Square + HopSkipJump, labels only → HopSkipJump, each with the
  attacker's query budget per input. Grey-box knowledge, or no query access → a transfer attack from a
  surrogate. A targeted goal runs the attacks targeted too. Word swaps → HotFlip up to that many
  words. Patches → not tested (aisec has no patch attack).
- **poisoning**: the poisoning check with rates up to the share of training data the attacker
  controls (0, an eighth, a quarter, half and all of it).
- **membership**: the privacy check with the membership attacks the access allows (scores: loss,
  confidence and gap thresholds; labels only: gap and label-only); none without query access.
- **extraction**: the extraction check with the attacker's query budget, soft labels only with scores.
- **model-tampering**: backdoor detection on the model, and a scan of the model file.
- **inversion**, **availability**, and the threats the file declares out of scope: not tested, and why.
"""

from __future__ import annotations

from typing import Any

from aisec.core.errors import ConfigError
from aisec.core.plan import DataRef, ModelRef, Plan, Rationale
from aisec.threats.kb import load_kb
from aisec.threats.model import EVASION_GOALS, ThreatModel

#: the norm each Lp-like perturbation domain is attacked in
_LP_NORMS = {"linf": "linf", "l2": "l2", "l0": "l0", "tabular-rows": "linf"}


def plan_for(tm: ThreatModel, *, model: ModelRef | str | None = None, data: DataRef | str | None = None,
             samples: int | None = None) -> Plan:
    """The plan that tests ``tm``: its checks, attacks, budgets and a rationale per choice.

    ``model``/``data`` (the system under test) override the threat model's own; ``samples`` its
    ``assessment.samples``. Raises :class:`ConfigError` when neither names a model or data, or when the
    goals leave nothing aisec can test.
    """
    model_ref = _ref(model, ModelRef, "path") if model is not None else tm.model
    data_ref = _ref(data, DataRef, "source") if data is not None else tm.data
    if model_ref is None:
        raise ConfigError(f"threat model '{tm.name}' names no model under test: add model: to it or give -m")
    if data_ref is None:
        raise ConfigError(f"threat model '{tm.name}' names no data: add data: to it or give -d")
    n = samples if samples is not None else tm.assessment.samples
    why: list[Rationale] = []
    checks: dict[str, dict[str, Any]] = {}
    model_ref = _defences(tm, model_ref, why)
    goals = set(tm.attacker.goals)
    if goals & EVASION_GOALS:
        entry = _evasion(tm, n, why)
        if entry is not None:
            checks["robustness"] = entry
    if "poisoning" in goals:
        checks["poisoning"] = _poisoning(tm, why)
    if "membership" in goals:
        entry = _privacy(tm, n, why)
        if entry is not None:
            checks["privacy"] = entry
    if "extraction" in goals:
        entry = _extraction(tm, why)
        if entry is not None:
            checks["extraction"] = entry
    if "model-tampering" in goals:
        checks.update(_tampering(model_ref, why))
    for goal in ("inversion", "availability"):
        if goal in goals:
            for t in load_kb().for_goal(goal):
                why.append(Rationale(choice="not tested", because=f"goal {goal}: {t.untested}", threats=[t.id]))
    for o in tm.out_of_scope:
        why.append(Rationale(choice="not tested", because=f"out of scope in the threat model: {o.why}",
                             threats=[o.threat]))
    if not checks:
        raise ConfigError(f"threat model '{tm.name}': none of its goals ({', '.join(tm.attacker.goals)}) leaves "
                          "anything aisec can test with this access and these capabilities")
    return Plan(model=model_ref, data=data_ref, checks=checks, seed=tm.assessment.seed,
                threat_model=tm.model_dump(mode="json", exclude_none=True), rationale=why)


def _ref(v: Any, cls: type[Any], key: str) -> Any:
    return cls(**{key: v}) if isinstance(v, str) else v


def _defences(tm: ThreatModel, model: ModelRef, why: list[Rationale]) -> ModelRef:
    """Put the preprocessing defence in place in front of the model; record the training defences declared."""
    pre = [d for d in tm.system.defences if not d.startswith("training:")]
    trained = [d for d in tm.system.defences if d.startswith("training:")]
    if len(pre) > 1:
        raise ConfigError(f"system.defences: aisec puts one preprocessing defence in front of a model, got "
                          f"{', '.join(pre)}")
    if pre:
        from aisec.defences.preprocess import parse_defence

        try:
            parse_defence(pre[0])
        except ConfigError as exc:
            raise ConfigError(f"system.defences {pre[0]}: {exc}") from None
        if model.defence and model.defence != pre[0]:
            raise ConfigError(f"the model is already behind {model.defence}; system.defences says {pre[0]}")
        model = model.model_copy(update={"defence": pre[0]})
        why.append(Rationale(choice=f"model assessed behind {pre[0]}",
                             because="system.defences: the deployed system applies it in front of the model"))
    for d in trained:
        why.append(Rationale(choice=f"{d} declared in place",
                             because="system.defences: the model was trained with it (declared, not re-checked)"))
    return model


def _eps_grid(budget: float) -> list[float]:
    return [round(budget * f, 6) for f in (0.25, 0.5, 1.0)]


def _evasion(tm: ThreatModel, n: int, why: list[Rationale]) -> dict[str, Any] | None:
    s, a = tm.system, tm.attacker
    p = a.capabilities.perturbation
    assert p is not None  # the model's validator requires it for an evasion goal
    q = a.capabilities.query_budget
    goals = set(a.goals)
    if p.domain == "patch":
        why.append(Rationale(check="robustness", choice="not tested",
                             because=f"perturbation domain patch ({p.budget:g} px): aisec has no adversarial-patch "
                             "attack yet", threats=["AML.T0043.000", "AML.T0043.001"]))
        return None
    if p.domain == "word-swaps":
        words = int(p.budget)
        why.append(Rationale(check="robustness", choice=f"hotflip, budgets 1..{words} words",
                             because=f"text inputs, the attacker swaps up to {words} word(s)",
                             threats=["AML.T0043.000"]))
        return {"attacks": [{"name": "hotflip", "eps": [float(k) for k in range(1, words + 1)]}], "samples": n}
    norm = _LP_NORMS[p.domain]
    grid = _eps_grid(p.budget)
    attacks: list[dict[str, Any]] = []
    threats: list[str] = []
    white = a.knowledge == "white"
    if white:
        names = ["jsma"] if norm == "l0" else ["fgsm", "pgd"]
        attacks += [{"name": x, "norm": norm} for x in names]
        threats.append("AML.T0043.000")
        why.append(Rationale(check="robustness", choice=" + ".join(names),
                             because=f"{'the weights are exposed' if s.access == 'weights' else 'white-box knowledge'}"
                             f": gradient attacks at the {norm} budget", threats=["AML.T0043.000"]))
    elif s.access in ("scores", "labels"):
        assert q is not None  # required by the model's validator for this case
        if norm == "l0":
            why.append(Rationale(check="robustness", choice="not tested",
                                 because="aisec has no black-box L0 attack", threats=["AML.T0043.001"]))
        else:
            names = ["square", "hopskipjump"] if s.access == "scores" else ["hopskipjump"]
            attacks += [{"name": x, "norm": norm, "params": {"max_queries": q}} for x in names]
            threats.append("AML.T0043.001")
            why.append(Rationale(check="robustness", choice=" + ".join(names) + f", {q:,} queries per input",
                                 because=f"black-box {s.access} access"
                                 + ("" if s.access == "scores" else " (labels only: a decision-based attack)")
                                 + f"; query budget {q:,} from the threat model", threats=["AML.T0043.001"]))
    if not white and norm != "l0" and (a.knowledge == "grey" or s.access == "none"):
        attacks.append({"name": "transfer", "norm": norm})
        threats.append("AML.T0043.002")
        because = ("grey-box knowledge: the attacker trains a surrogate and transfers its examples"
                   if a.knowledge == "grey" else "no query access: transfer from a surrogate is the attacker's path")
        why.append(Rationale(check="robustness", choice="transfer", because=because
                             + " (aisec extracts the surrogate from the model's answers)", threats=["AML.T0043.002"]))
    if not attacks:
        return None
    if "evasion-targeted" in goals:
        targeted = [{**x, "targeted": True} for x in attacks if x["name"] != "transfer"]
        attacks = (attacks if "evasion-untargeted" in goals else [x for x in attacks if x["name"] == "transfer"]) \
            + targeted
        why.append(Rationale(check="robustness", choice="targeted runs",
                             because="goal evasion-targeted: each attack also aims at a random other class"))
    grid_key = {"linf": "eps", "l2": "eps_l2", "l0": "eps_l0"}[norm]
    why.append(Rationale(check="robustness", choice=f"{norm} eps grid {', '.join(f'{e:g}' for e in grid)}",
                         because=f"perturbation budget {p.budget:g} ({p.domain}) from the threat model: a quarter, "
                         "half and all of it; the reference budget is the attacker's", threats=threats))
    if p.domain == "tabular-rows":
        why.append(Rationale(check="robustness", choice="linf on the scaled features",
                             because="valid tabular rows: aisec assess does not project onto valid rows, so the "
                             "attack may use rows the system never sees (an upper bound); `aisec scan "
                             "--constraints` projects onto them"))
    entry: dict[str, Any] = {"attacks": attacks, grid_key: grid, "samples": n}
    if not white:
        entry["clever"] = {"enabled": False}
        why.append(Rationale(check="robustness", choice="no CLEVER score",
                             because=f"CLEVER estimates from gradients, which a {a.knowledge}-box attacker lacks"))
    if norm in ("linf", "l2"):
        entry["reference_eps"] = {norm: p.budget}
    return entry


def _poisoning(tm: ThreatModel, why: list[Rationale]) -> dict[str, Any]:
    share = tm.attacker.capabilities.training_data_share
    assert share is not None
    rates = sorted({0.0, *(round(share * f, 6) for f in (0.125, 0.25, 0.5, 1.0))})
    why.append(Rationale(check="poisoning", choice=f"badnets, rates {', '.join(f'{r:g}' for r in rates)}",
                         because=f"the attacker controls {share:.1%} of the training data: rates up to {share:g}",
                         threats=["AML.T0020", "AML.T0043.004"]))
    if tm.system.modality != "image":
        why.append(Rationale(check="poisoning", choice="patch trigger on the feature vector",
                             because=f"{tm.system.modality} inputs: BadNets sets a block of features as its trigger"))
    return {"attack": "badnets", "rates": rates}


def _privacy(tm: ThreatModel, n: int, why: list[Rationale]) -> dict[str, Any] | None:
    access = tm.system.access
    if access == "none" or tm.training_data is None:
        because = ("no query access: membership inference needs the model's answers" if access == "none" else
                   "the threat model names no training_data: the members an attacker would pick out")
        why.append(Rationale(check="privacy", choice="not tested", because=because, threats=["AML.T0024.000"]))
        return None
    names = ["gap", "label_only"] if access == "labels" else ["loss", "confidence", "gap"]
    why.append(Rationale(check="privacy", choice=" + ".join(names),
                         because=f"goal membership with {access} access: "
                         + ("label-only attacks" if access == "labels" else "score-threshold attacks")
                         + " (shadow models and LiRA: add them to the plan, they train reference models)",
                         threats=["AML.T0024.000"]))
    members = {"source": tm.training_data.source, "options": dict(tm.training_data.options)}
    return {"attacks": names, "samples": n, "members": members}


def _extraction(tm: ThreatModel, why: list[Rationale]) -> dict[str, Any] | None:
    access = tm.system.access
    if access in ("none", "weights"):
        reason = ("no query access: the model cannot be copied through its answers" if access == "none"
                  else "the attacker already holds the weights: nothing to extract")
        why.append(Rationale(check="extraction", choice="not tested", because=reason,
                             threats=["AML.T0024.002", "AML.T0005.001"]))
        return None
    q = tm.attacker.capabilities.query_budget
    assert q is not None
    soft = access == "scores"
    why.append(Rationale(check="extraction", choice=f"surrogate from {q:,} queries, "
                         f"{'soft' if soft else 'hard'} labels",
                         because=f"goal extraction with {access} access; query budget {q:,} from the threat model",
                         threats=["AML.T0024.002", "AML.T0005.001"]))
    return {"query_budget": q, "soft_labels": soft}


def _tampering(model: ModelRef, why: list[Rationale]) -> dict[str, dict[str, Any]]:
    from aisec.models.builtin import BUILTIN_MODELS

    out: dict[str, dict[str, Any]] = {"backdoor": {}}
    why.append(Rationale(check="backdoor", choice="backdoor detection on the model",
                         because="goal model-tampering: a model that arrives poisoned carries a backdoor",
                         threats=["AML.T0018.000"]))
    if model.path in BUILTIN_MODELS or model.path.startswith(("http://", "https://")):
        why.append(Rationale(check="model-scan", choice="not tested",
                             because=f"model {model.path} has no file of its own to scan",
                             threats=["AML.T0011.000"]))
    else:
        out["model-scan"] = {}
        why.append(Rationale(check="model-scan", choice="scan of the model file",
                             because="goal model-tampering: a model file can carry code that runs when it loads",
                             threats=["AML.T0011.000"]))
    return out


def plan_yaml(plan: Plan) -> str:
    """The plan as YAML, headed by comments that give the reason for each choice (also kept in ``rationale``)."""
    tm = plan.threat_model or {}
    lines = [f"# aisec plan for the threat model '{tm.get('name', '?')}' (aisec plan --threat-model).",
             "# Run it: aisec assess --plan THIS_FILE. Why each choice was made:"]
    for r in plan.rationale:
        where = f"{r.check}: " if r.check else ""
        ids = f" [{', '.join(r.threats)}]" if r.threats else ""
        lines.append(f"#   {where}{r.choice} <- {r.because}{ids}")
    return "\n".join(lines) + "\n" + plan.to_yaml()
