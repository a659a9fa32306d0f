"""The ``aisec`` command line. It calls the Python API only; errors become one clear line.

Exit codes: 0 success, 1 an unexpected failure, 2 a usage/config/data/model error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from aisec.core.errors import AisecError


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _floats(value: str | None, name: str) -> list[float] | None:
    items = _csv(value)
    if items is None:
        return None
    out = []
    for v in items:
        try:
            out.append(float(eval_fraction(v)))
        except ValueError as exc:
            raise click.BadParameter(f"'{v}' is not a number (fractions like 8/255 are fine)", param_hint=name) from exc
    return out


def eval_fraction(v: str) -> float:
    if "/" in v:
        a, b = v.split("/", 1)
        return float(a) / float(b)
    return float(v)


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AisecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aisec")
def main() -> None:
    """aisec: measure the security of trained ML models and write audit evidence."""


@main.command()
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="YAML plan; flags override it.")
@click.option("-m", "--model", help="Model file or built-in name (digits-cnn, lenet5-mnist, lenet5-mnist-adv).")
@click.option("--arch", help="Architecture for weights files: package.module:Class or digits-cnn/lenet5.")
@click.option(
    "-d", "--data", help="Dataset: built-in name (digits, breast-cancer, fashion-mnist, mnist), folder or file."
)
@click.option("--split", help="Dataset split (train/test) where the source has them.")
@click.option("--text-column", help="Text files (.csv/.tsv/.jsonl): the column holding the texts (default: text).")
@click.option("--label-column", help="Tables and text files: the label column, by name or position (default: label).")
@click.option("--max-bytes", type=int, help="Text files: bytes kept per text (default: the longest text's).")
@click.option("-t", "--checks", default=None, help="Comma-separated checks (default: robustness).")
@click.option("-a", "--attacks", help="Comma-separated attacks, e.g. pgd,fgsm,cw,deepfool,jsma.")
@click.option("--eps", help="Linf eps grid, e.g. 0.05,0.1 or 4/255,8/255.")
@click.option("--eps-l2", help="L2 eps grid for L2 attacks (cw, deepfool, pgd with --norm l2).")
@click.option("--norm", type=click.Choice(["linf", "l2", "l1", "l0"]), help="Norm for all attacks.")
@click.option("--targeted", is_flag=True, help="Targeted attacks toward a random other class.")
@click.option("-c", "--count", type=int, help="How many samples to attack (default 500).")
@click.option("--steps", type=int, help="Iterations for iterative attacks.")
@click.option("--batch-size", type=int, help="Samples per forward pass.")
@click.option("--quantize", is_flag=True, help="Round adversarial images to 8-bit (SAFAIR rule).")
@click.option("--clever-samples", type=int, help="Samples that get a CLEVER score (0 = skip).")
@click.option("--clever-norms", help="CLEVER norms, e.g. l2,linf,l1.")
@click.option("--explainer", type=click.Choice(["lime", "kernel_shap", "saliency", "integrated_gradients"]),
              help="Explainability: which explainer to score (default lime).")
@click.option("--explain-samples", type=int, help="Explainability: how many samples to explain.")
@click.option("--num-samples", type=int, help="Explainability: LIME/SHAP perturbations per explanation.")
@click.option("--segmentation", type=click.Choice(["grid", "slic", "quickshift"]),
              help="Explainability: image segmentation for LIME.")
@click.option("--poison-rates", help="Poisoning: poisoning rates to sweep, e.g. 0.01,0.05,0.1.")
@click.option("--train-mode", type=click.Choice(["retrain", "finetune"]),
              help="Poisoning: train victims from scratch or fine-tune a copy of the model.")
@click.option("--train-epochs", type=int, help="Poisoning: training epochs per victim.")
@click.option("--train-lr", type=float, help="Poisoning: learning rate of the victims' optimiser.")
@click.option("--detect-methods", help="Backdoor: detectors, e.g. neural-cleanse,activation-clustering.")
@click.option("--nonmembers", help="Privacy: held-out records of the same distribution (a dataset like --data, read "
              "with the same --text-column/--label-column/--max-bytes; default for built-ins: the other split).")
@click.option("--nonmembers-split", help="Privacy: split of --nonmembers (e.g. test).")
@click.option("--mia-attacks", help="Privacy: membership attacks, e.g. loss,confidence,gap,lira (default: all that "
              "the target and recipe allow).")
@click.option("--seed", type=int, help="Random seed (default 0).")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--input-shape", help="Per-sample input shape, e.g. 1,28,28 (default: the data's).")
@click.option("--mean", help="Normalisation mean per channel, e.g. 0.4914,0.4822,0.4465.")
@click.option("--std", help="Normalisation std per channel.")
@click.option("--query-budget", type=int, help="Hard cap on samples sent to a black-box target.")
@click.option("--protocol", type=click.Choice(["v2", "json"]),
              help="HTTP target: Open Inference Protocol v2 or plain JSON.")
@click.option("--model-name", help="HTTP target: the model name on a v2 server.")
@click.option("--timeout", type=float, help="HTTP target: seconds per request.")
@click.option("--output-kind", type=click.Choice(["probabilities", "logits", "labels"]),
              help="HTTP/ONNX target: what it returns; 'labels' = label-only.")
@click.option("--query-log", type=click.Path(dir_okay=False), help="HTTP target: JSONL log of every query.")
@click.option("--trust-model-code", is_flag=True, help="Allow unpickling code from the model file (UNSAFE).")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Report folder (default aisec-report).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML policy of metric thresholds; a failed policy exits with code 3.")
@click.option("--store", "store_url", envvar="AISEC_STORE_URL", show_envvar=True,
              help="Evidence store URL (sqlite:///path.db or postgresql://...); records are stored as each check ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def assess(plan_file: str | None, as_json: bool, quiet: bool, out: str | None, policy_file: str | None,
           store_url: str | None, **flags: Any) -> None:
    """Assess a model: run checks, write evidence.jsonl, samples/ and report.html."""
    from aisec.api import run_plan
    from aisec.cli.progress import RichProgress

    plan = _plan_from(plan_file, flags)
    out_dir = out or "aisec-report"
    gate = None
    if policy_file or store_url:
        from aisec.policy.gate import Gate

        gate = Gate.open(policy=policy_file, store=store_url)  # fails fast on a bad policy or store
    with RichProgress(enabled=not quiet and not as_json) as progress:
        run = run_plan(plan, out=out_dir, progress=progress,
                       on_evidence=gate.recorder(plan, out_dir) if gate else None,
                       policy=gate.policy if gate else None)
    outcome = gate.finish(run) if gate else None
    if as_json:
        click.echo(json.dumps(run.summary(), default=str))
    else:
        _print_summary(run)
        if outcome is not None and outcome.policy is not None:
            click.echo(outcome.policy.text())
    if outcome is not None and outcome.exit_code:
        sys.exit(outcome.exit_code)


def _plan_from(plan_file: str | None, f: dict[str, Any]) -> Any:
    from aisec.core.plan import Plan

    raw: dict[str, Any] = {}
    if plan_file:
        raw = Plan.from_yaml(plan_file).model_dump(mode="json")
    model = dict(raw.get("model", {}))
    if f["model"]:
        model["path"] = f["model"]
    for key in ("arch", "device"):
        if f[key]:
            model[key] = f[key]
    if f["trust_model_code"]:
        model["trust_model_code"] = True
    if f["query_budget"]:
        model["query_budget"] = f["query_budget"]
    endpoint = dict(model.get("endpoint", {}))
    for flag, key in (("protocol", "protocol"), ("model_name", "model"), ("timeout", "timeout"),
                      ("query_log", "log_path"), ("output_kind", "output")):
        if f[flag] is not None:
            endpoint[key] = f[flag]
    if endpoint:
        model["endpoint"] = endpoint
    if f["input_shape"]:
        model["input_shape"] = [int(v) for v in _csv(f["input_shape"]) or []]
    if f["mean"] or f["std"]:
        if not (f["mean"] and f["std"]):
            raise click.UsageError("--mean and --std go together")
        model["normalization"] = {"mean": _floats(f["mean"], "--mean"), "std": _floats(f["std"], "--std")}
    if "path" not in model:
        raise click.UsageError("give --model (a file or a built-in such as digits-cnn) or a --plan")
    data = dict(raw.get("data", {}))
    if f["data"]:
        data = {"source": f["data"], "options": {}}
    if f["split"]:
        data.setdefault("options", {})["split"] = f["split"]
    for key in ("text_column", "label_column", "max_bytes"):
        if f.get(key) is not None:
            v = f[key]
            data.setdefault("options", {})[key] = int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v
    if "source" not in data:
        raise click.UsageError("give --data (e.g. digits, fashion-mnist, a folder) or a --plan")
    checks: dict[str, dict[str, Any]] = dict(raw.get("checks", {}) or {})
    if f["checks"]:
        checks = {c: checks.get(c, {}) for c in _csv(f["checks"]) or []}
    if not checks:
        checks = {"robustness": {}}
    if "robustness" in checks:
        checks["robustness"] = _robustness_flags(dict(checks["robustness"]), f)
    if "explainability" in checks:
        ex = dict(checks["explainability"])
        for flag, key in (("explainer", "explainer"), ("explain_samples", "samples"),
                          ("num_samples", "num_samples"), ("segmentation", "segmentation")):
            if f[flag] is not None:
                ex[key] = f[flag]
        checks["explainability"] = ex
    if "poisoning" in checks:
        checks["poisoning"] = _poisoning_flags(dict(checks["poisoning"]), f)
    if "privacy" in checks:
        checks["privacy"] = _privacy_flags(dict(checks["privacy"]), data, f)
    if "backdoor" in checks and f["detect_methods"]:
        checks["backdoor"] = {**checks["backdoor"], "methods": _csv(f["detect_methods"])}
    plan = {"model": model, "data": data, "checks": checks, "seed": raw.get("seed", 0)}
    if f["seed"] is not None:
        plan["seed"] = f["seed"]
    if raw.get("target_of_evaluation_id"):
        plan["target_of_evaluation_id"] = raw["target_of_evaluation_id"]
    return Plan.parse(plan, source=plan_file or "command line")


def _privacy_flags(p: dict[str, Any], data: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    """Non-members as a dataset source read like the members (text/table options carried over, so
    both byte tensors share a width), and the membership attacks to run."""
    if f.get("nonmembers"):
        options = {k: v for k, v in (data.get("options") or {}).items() if k != "split"}
        if f.get("nonmembers_split"):
            options["split"] = f["nonmembers_split"]
        p["nonmembers"] = {"source": f["nonmembers"], "options": options}
    elif f.get("nonmembers_split"):
        raise click.UsageError("--nonmembers-split needs --nonmembers")
    if f.get("mia_attacks"):
        p["attacks"] = _csv(f["mia_attacks"])
    return p


def _poisoning_flags(p: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    """Rates and the victims' training recipe; without a recipe in the plan, the flags adjust the
    default one (``architecture: target``: the model's own architecture)."""
    if f["poison_rates"]:
        p["rates"] = _floats(f["poison_rates"], "--poison-rates")
    recipe = dict(p.get("recipe") or {})
    for flag, key in (("train_mode", "mode"), ("train_epochs", "epochs"), ("train_lr", "lr")):
        if f[flag] is not None:
            recipe[key] = f[flag]
    if recipe:
        recipe.setdefault("architecture", "target")
        p["recipe"] = recipe
    return p


def _robustness_flags(r: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    if f["attacks"]:
        r["attacks"] = [{"name": a} for a in _csv(f["attacks"]) or []]
    attack_params: dict[str, Any] = {}
    if f["steps"]:
        attack_params["steps"] = f["steps"]
    if f["norm"] or f["targeted"] or attack_params:
        specs = [a if isinstance(a, dict) else {"name": a} for a in r.get("attacks", ["fgsm", "pgd"])]
        for a in specs:
            if f["norm"]:
                a["norm"] = f["norm"]
            if f["targeted"]:
                a["targeted"] = True
            if attack_params and a["name"] in ("pgd", "bim", "cw", "deepfool"):
                a["params"] = {**a.get("params", {}), **attack_params}
        r["attacks"] = specs
    if f["eps"]:
        r["eps"] = _floats(f["eps"], "--eps")
    if f["eps_l2"]:
        r["eps_l2"] = _floats(f["eps_l2"], "--eps-l2")
    if f["count"]:
        r["samples"] = f["count"]
    if f["batch_size"]:
        r["batch_size"] = f["batch_size"]
    if f["quantize"]:
        r["quantize"] = True
    clever = dict(r.get("clever", {}))
    if f["clever_samples"] is not None:
        if f["clever_samples"] == 0:
            clever["enabled"] = False
        else:
            clever["samples"] = f["clever_samples"]
    if f["clever_norms"]:
        clever["norms"] = _csv(f["clever_norms"])
    if clever:
        r["clever"] = clever
    return r


def _print_summary(run: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for r in run.results:
        if r.check == "robustness":
            s = r.summary
            console.print(
                f"[bold]{run.target.spec.name}[/] on [bold]{run.data.info.name}[/]: clean accuracy "
                f"{s['clean_accuracy']:.3f} ({s['clean_ci']['low']:.3f}–{s['clean_ci']['high']:.3f}, n={s['samples']})"
            )
            t = Table(title="robustness")
            for col in ("attack", "norm", "eps", "robust acc", "95% CI", "success", "SAFAIR Δ", "median ‖δ‖"):
                t.add_column(col, justify="right")
            for c in s["curves"]:
                for p in c["points"]:
                    t.add_row(c["attack"] + (" (t)" if c["targeted"] else ""), c["norm"], f"{p['eps']:g}",
                              f"{p['robust_accuracy']:.3f}", f"{p['ci']['low']:.3f}–{p['ci']['high']:.3f}",
                              f"{p['success_rate']:.3f}", f"{p['safair_delta']:.3f}",
                              f"{p['median_distance']:.4g}")
            console.print(t)
            if s.get("clever"):
                for norm, c in s["clever"].items():
                    console.print(
                        f"CLEVER-u ({norm}): median {c['median']:.4g}, min {c['min']:.4g}, max {c['max']:.4g}"
                    )
        elif r.check == "explainability":
            fa = r.summary.get("faithfulness", {})
            for kind in ("deletion", "insertion"):
                v = fa.get(kind)
                if isinstance(v, dict) and "mean" in v:
                    ci = v["ci"]
                    console.print(f"explainability faithfulness ({kind}): {v['mean']:.3f} "
                                  f"({ci['low']:.3f}–{ci['high']:.3f}); 0.5 = no better than random")
        elif r.check == "poisoning":
            s = r.summary
            console.print(f"poisoning {s['attack']} ({s['mode']}): resilience {s['resilience']:.3f}; ASR by rate "
                          + ", ".join(f"{100 * p['rate']:g}%: {p['asr']:.2f}" for p in s["points"])
                          + f"; clean accuracy {min(p['clean_accuracy'] for p in s['points']):.3f}"
                          f"–{max(p['clean_accuracy'] for p in s['points']):.3f}")
        elif r.check == "backdoor":
            for d in r.summary["methods"]:
                verdict = f"suspects class(es) {d['suspected']}" if d["alarm"] else "no alarm"
                flagged = "" if d["method"] == "neural-cleanse" else f", {d['flagged_count']} samples flagged"
                console.print(f"backdoor {d['method']}: {verdict} (max anomaly index "
                              f"{max(d['anomaly_index']):.2f}, threshold {d['threshold']:g}{flagged})")
        else:
            for m in r.measurements:
                ci = f" ({m.interval.low:.3f}–{m.interval.high:.3f})" if m.interval else ""
                console.print(f"{m.metric} {m.parameters or ''}: {m.value:.4g}{ci}")
        for w in r.warnings:
            console.print(f"[yellow]warning:[/] {w}")
    if run.out:
        console.print(f"report: {run.out / 'report.html'}   evidence: {run.out / 'evidence.jsonl'}")


@main.command()
@click.option("-o", "--out", type=click.Path(file_okay=False), default="aisec-report", show_default=True)
@click.option("-c", "--count", type=int, default=300, show_default=True, help="Samples to attack.")
@click.option("--privacy/--no-privacy", default=True, show_default=True,
              help="Compare an over-fitted and a regularised model for membership leakage (quick settings: "
              "a few seconds once the models are cached).")
@click.option("--privacy-full", is_flag=True,
              help="Run every membership attack with the check's default model counts (minutes on a CPU).")
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
def demo(out: str, count: int, privacy: bool, privacy_full: bool, as_json: bool, quiet: bool) -> None:
    """Train (cached) small CNNs on digits, assess them, write one report."""
    from aisec.cli.progress import RichProgress
    from aisec.demo.digits import run_demo

    with RichProgress(enabled=not quiet and not as_json) as progress:
        run = run_demo(out=out, samples=count, privacy=privacy or privacy_full, privacy_full=privacy_full,
                       progress=progress)
    if as_json:
        click.echo(json.dumps(run.summary(), default=str))
    else:
        _print_summary(run)
        for other in run.related:
            _print_summary(other)
        click.echo(f"open {Path(out) / 'report.html'} in a browser")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json: bool) -> None:
    """List every attack, check, built-in model and dataset with what it needs."""
    from aisec.core.registry import ATTACKS, CHECKS, PLUGIN_ERRORS, load_plugins
    from aisec.models.builtin import BUILTIN_MODELS

    load_plugins()
    attacks: list[dict[str, Any]] = [
        {"name": a.name, "kind": a.kind.value, "requires": sorted(c.value for c in a.requires),
         "labels_only": not a.requires, "norms": sorted(n.value for n in a.norms), "targeted": a.targeted,
         "summary": a.summary,
         "paper": a.paper, "params": {k: (str(v.default) if v.default is not None else None)
                                      for k, v in a.cls.Params.model_fields.items()}}
        for a in sorted(ATTACKS.values(), key=lambda a: a.name)
    ]
    from aisec.attacks.inference.base import inference_attacks

    inference: list[dict[str, Any]] = [
        {"name": a.name, "kind": "membership", "requires": sorted(c.value for c in a.requires),
         "needs_recipe": a.needs_recipe, "labels_only": a.labels_only, "summary": a.summary, "paper": a.paper,
         "params": {k: (str(v.default) if v.default is not None else None)
                    for k, v in a.cls.Params.model_fields.items()}}
        for a in inference_attacks()
    ]
    checks = [{"name": c.name, "summary": c.summary} for c in CHECKS.values()]
    models: list[dict[str, Any]] = [{"name": k, "input_shape": v[1], "summary": v[2]}
                                    for k, v in BUILTIN_MODELS.items()]
    if as_json:
        click.echo(json.dumps({"attacks": attacks, "inference_attacks": inference, "checks": checks,
                               "models": models, "errors": PLUGIN_ERRORS}))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="attacks")
    for col in ("name", "kind", "needs", "norms", "targeted", "summary"):
        t.add_column(col)
    for a in attacks:
        needs = ", ".join(a["requires"]) or ("predicted labels" if a["labels_only"] else "-")
        t.add_row(a["name"], a["kind"], needs, ", ".join(a["norms"]),
                  "yes" if a["targeted"] else "no", a["summary"])
    console.print(t)
    t = Table(title="membership-inference attacks (privacy check)")
    for col in ("name", "needs", "trains models", "summary"):
        t.add_column(col)
    for a in inference:
        needs = ", ".join(a["requires"]) or ("predicted labels" if a["labels_only"] else "-")
        t.add_row(a["name"], needs, "yes (recipe)" if a["needs_recipe"] else "no", a["summary"])
    console.print(t)
    t = Table(title="checks")
    t.add_column("name")
    t.add_column("summary")
    for c in checks:
        t.add_row(c["name"], c["summary"])
    console.print(t)
    t = Table(title="built-in models")
    for col in ("name", "input", "summary"):
        t.add_column(col)
    for m in models:
        t.add_row(m["name"], "x".join(map(str, m["input_shape"])), m["summary"])
    console.print(t)
    for name, err in PLUGIN_ERRORS.items():
        console.print(f"[red]plugin {name} failed to load:[/] {err}")


def _register_subcommands() -> None:
    from aisec.cli.evidence import evidence
    from aisec.cli.graph import graph
    from aisec.cli.poisoning import detect_backdoor
    from aisec.cli.reproduce import reproduce
    from aisec.cli.scan import scan_command

    for cmd in (evidence, graph, reproduce, detect_backdoor, scan_command):
        main.add_command(cmd)


_register_subcommands()

if __name__ == "__main__":
    main()
