"""``aisec assess``: run a plan's checks on a model and write report, evidence and samples.

The command knows the model, data and output options; every check brings its own flags
(:attr:`aisec.core.check.Check.flags`) and turns their values into its plan entry
(:meth:`~aisec.core.check.Check.from_flags`), so a new check needs no change here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from aisec.cli.params import csv_list, float_list
from aisec.cli.summary import print_summary
from aisec.core.errors import AisecError, ConfigError
from aisec.core.flags import Flag
from aisec.core.plan import Plan
from aisec.core.registry import CHECKS, get_check, load_plugins
from aisec.core.safety import validation_lines

if TYPE_CHECKING:
    from aisec.api import Existing

_CLICK_TYPES: dict[str, Any] = {"int": int, "float": float}


def _check_flags() -> list[tuple[str, Flag]]:
    """(check name, flag) for every registered check's flags, in registration order; a flag two checks
    declare is an error here rather than a silently shadowed option."""
    load_plugins()
    seen: dict[str, str] = {}
    out = []
    for name, info in CHECKS.items():
        for flag in getattr(info.cls, "flags", ()):
            if flag.name in seen:
                raise RuntimeError(f"checks '{seen[flag.name]}' and '{name}' both declare the flag {flag.name}")
            seen[flag.name] = name
            out.append((name, flag))
    return out


def _option(flag: Flag) -> Callable[[Any], Any]:
    decls = [flag.short, flag.name] if flag.short else [flag.name]
    if flag.kind == "switch":
        return click.option(*decls, flag.dest, is_flag=True, default=None, help=flag.help)
    if flag.kind == "choice":
        return click.option(*decls, flag.dest, type=click.Choice(list(flag.options())), help=flag.help)
    return click.option(*decls, flag.dest, type=_CLICK_TYPES.get(flag.kind, str), help=flag.help)


def _value(flag: Flag, raw: Any) -> Any:
    """The flag's value as the check reads it: lists split, number grids parsed, a switch left off is None."""
    if raw is None or raw is False:
        return None
    if flag.kind == "floats":
        return float_list(raw, flag.name)
    if flag.kind == "list":
        return csv_list(raw)
    return raw


def check_flags(name: str, entry: dict[str, Any], f: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Check ``name``'s plan entry with its own flags from ``f`` applied (unchanged for a check without flags).

    The result is validated against the check's ``Params`` here, before anything runs or is written;
    a value a flag brought is reported as one line naming that flag (``--count 0: ...``).
    """
    info = get_check(name)  # an unknown check is refused here, before the model is loaded
    flags: tuple[Flag, ...] = tuple(getattr(info.cls, "flags", ()))
    values = {fl.dest: _value(fl, f.get(fl.dest)) for fl in flags}
    result: dict[str, Any] = info.cls.from_flags(copy.deepcopy(entry), values, data) if flags else entry
    try:
        info.cls.Params.model_validate(result)
    except ValidationError as exc:
        for fl in flags:  # blame the first flag whose value alone makes the entry invalid
            if values[fl.dest] is None:
                continue
            alone = {d: (v if d == fl.dest else None) for d, v in values.items()}
            try:
                info.cls.Params.model_validate(info.cls.from_flags(copy.deepcopy(entry), alone, data))
            except ValidationError as one:
                raise ConfigError(f"{fl.name} {f.get(fl.dest)}: {_first_error(one, where=False)}") from one
            except ConfigError:
                continue
        raise ConfigError(f"invalid parameters for check '{name}': {_first_error(exc)}") from exc
    return result


def _first_error(exc: ValidationError, *, where: bool = True) -> str:
    """The first errors of ``exc`` on one line: ``loc: message (got value)``. ``where=False`` (the error is blamed
    on a flag, which the message names): the plan locations and values are left out and repeats said once, so
    ``--eot 0`` on two attacks reads ``--eot 0: Input should be greater than or equal to 1``."""
    if where:
        return "; ".join(validation_lines(exc, limit=3))
    return "; ".join(dict.fromkeys(str(e["msg"]).removeprefix("Value error, ")
                                   for e in exc.errors(include_url=False)[:3]))


def _with_check_flags(cmd: Callable[..., Any]) -> Callable[..., Any]:
    for _, flag in reversed(_check_flags()):
        cmd = _option(flag)(cmd)
    return cmd


@click.command("assess")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="YAML plan; flags override it.")
@click.option("--threat-model", "threat_model", type=click.Path(dir_okay=False),
              help="Threat-model YAML: run the plan that tests it (see `aisec plan --threat-model`); the report "
              "adds the residual risk per threat. Flags override it.")
@click.option("-m", "--model", help="Model file or built-in name (digits-cnn, lenet5-mnist, lenet5-mnist-adv).")
@click.option("--arch", help="Architecture for weights files: package.module:Class or digits-cnn/lenet5.")
@click.option(
    "-d", "--data", help="Dataset: built-in name (digits, breast-cancer, fashion-mnist, mnist), folder or file."
)
@click.option("--split", help="Dataset split (train/test) where the source has them.")
@click.option("--text-column", help="Text files (.csv/.tsv/.jsonl): the column holding the texts (default: text).")
@click.option("--label-column", help="Tables and text files: the label column, by name or position (default: label).")
@click.option("--max-bytes", type=int, help="Text files: bytes kept per text (default: the longest text's).")
@click.option("--scale", type=click.Choice(["auto", "minmax", "standard", "none"]),
              help="CSV tables: the feature scaling the model was trained on: minmax (to [0, 1]), standard "
              "(z-scores) or none (raw values). Default auto: none for .pkl/.onnx/HTTP models, minmax for torch "
              "models. eps and distances are in the units it gives; the statistics go into the evidence.")
@click.option("-t", "--checks", default=None,
              help="Comma-separated checks (default: robustness); the seed tools' names work too (poison, explain).")
@click.option("--seed", type=int, help="Random seed (default 0).")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--input-shape", help="Per-sample input shape, e.g. 1,28,28 (default: the data's).")
@click.option("--classes", "classes", type=int,
              help="The model's number of classes (the seed's --classes); checked against the data's labels and "
              "the model's output (default: the data's).")
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
@click.option("--defence", help="Assess the model behind a preprocessing defence (the file is not modified): jpeg, "
              "bit-depth, median, gaussian-blur, gaussian-noise, tv-min, with parameters as name:key=value,... "
              "e.g. jpeg:quality=75. See docs/defences.md.")
@click.option("--trust-model-code", is_flag=True, help="Allow unpickling code from the model file (UNSAFE).")
@click.option("--allow-module", "allow_module", multiple=True, metavar="PACKAGE",
              help="Let --arch and plan recipes import nn.Module classes from PACKAGE (repeatable). Without it only "
              "aisec's zoo and modules in the current folder are imported; a plan file can never allow one.")
@click.option("--allow-outside-paths", is_flag=True,
              help="Let image folders read files outside their folder (../, absolute paths, symlinks in labels.csv).")
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Report folder (default aisec-report); one that holds a run is refused, see --resume/--overwrite.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, exists=True),
              help="Finish the run in this folder (killed or stopped): its plan, run id and finished checks are "
              "kept, only the missing checks run.")
@click.option("--overwrite", is_flag=True, help="Replace the run already in -o (its evidence, samples and reports).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML policy of metric thresholds; a failed policy exits with code 3.")
@click.option("--store", "store_url", envvar="AISEC_STORE_URL", show_envvar=True,
              help="Evidence store URL (sqlite:///path.db or postgresql://...); records are stored as each check ends. "
              "Default: evidence.db in the aisec data folder ($AISEC_HOME).")
@click.option("--no-store", is_flag=True, help="Keep the evidence only in the report folder (no store record).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@_with_check_flags
def assess(plan_file: str | None, threat_model: str | None, as_json: bool, quiet: bool, out: str | None,
           policy_file: str | None,
           store_url: str | None, no_store: bool, allow_module: tuple[str, ...], allow_outside_paths: bool,
           resume_dir: str | None, overwrite: bool, **flags: Any) -> None:
    """Assess a model: run checks, write evidence.jsonl, samples/ and report.html."""
    from aisec.api import previous_run_id, run_plan
    from aisec.cli.progress import RichProgress
    from aisec.core.safety import allow_modules
    from aisec.core.safety import allow_outside_paths as outside_ok

    if resume_dir is not None:
        if plan_file or out or overwrite or any(v not in (None, False, ()) for v in flags.values()):
            raise click.UsageError("--resume DIR takes the run's own plan (DIR/plan.yaml): give it alone "
                                   "(with --store/--no-store/--policy/--json/-q if needed)")
        plan_file, out = str(Path(resume_dir) / "plan.yaml"), resume_dir
    if threat_model and plan_file:
        raise click.UsageError("--threat-model writes its own plan: give it or --plan, not both "
                               "(`aisec plan --threat-model` writes that plan to a file you can edit)")
    if no_store and store_url and os.environ.get("AISEC_STORE_URL") != store_url:
        raise click.UsageError("--store and --no-store contradict each other; give one")
    with allow_modules(allow_module):  # recipes are resolved while the plan is validated
        plan = _plan_from(plan_file, flags, threat_model=threat_model)
    data_warnings = _data_warnings(plan)  # said once the run has worked (an error stays one clear line)
    out_dir = out or "aisec-report"
    _check_writable(out_dir)
    existing: Existing = "resume" if resume_dir is not None else "overwrite" if overwrite else "refuse"
    run_id = (previous_run_id(Path(out_dir)) if resume_dir is not None else None) or str(uuid.uuid4())
    gate = None
    defaulted = not no_store and not store_url
    if defaulted:
        from aisec.store.paths import default_store_url

        store_url = default_store_url()  # every run is evidence: `aisec evidence list` and `reproduce` find it
    if no_store:
        store_url = None
    if policy_file or store_url:
        from aisec.policy.gate import Gate

        try:
            gate = Gate.open(policy=policy_file, store=store_url)  # fails fast on a bad policy or store
        except (AisecError, OSError) as exc:
            if not defaulted:
                raise  # a store the user named must work
            # the default store is a convenience: a read-only home must not stop an assessment (a bad policy
            # still does: it fails here again, on its own, as the one error line)
            gate = Gate.open(policy=policy_file, store=None) if policy_file else None
            click.echo(f"warning: the default evidence store could not be opened ({exc}); the evidence stays in "
                       "the report folder (`aisec evidence import` adds it later; --no-store silences this)", err=True)
    # SIGTERM ends the run like Ctrl-C (kept, marked aborted); only the main thread may set a handler
    # (the command also runs inside threads: tests, a future web worker)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        with RichProgress(enabled=not quiet and not as_json) as progress, allow_modules(allow_module), \
                outside_ok(allow_outside_paths):
            run = run_plan(plan, out=out_dir, progress=progress,
                           on_evidence=gate.recorder(plan, out_dir) if gate else None,
                           policy=gate.policy if gate else None, existing=existing, run_id=run_id)
    except (KeyboardInterrupt, _Terminated):
        _mark_aborted(Path(out_dir), run_id, gate)
        click.echo(f"aborted: the finished checks are kept; 'aisec assess --resume {out_dir}' runs the rest", err=True)
        sys.exit(130)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    for w in data_warnings:
        click.echo(f"warning: {w}", err=True)
    outcome = gate.finish(run) if gate else None
    if as_json:
        click.echo(json.dumps(run.summary(), default=str))
    else:
        print_summary(run)
        if outcome is not None and outcome.policy is not None:
            click.echo(outcome.policy.text())
        if outcome is not None and outcome.stored is not None:
            click.echo(f"stored run {run.run_id} in {outcome.store_url} ({len(run.evidence)} record(s); "
                       "see `aisec evidence list --run RUN`)")
    if outcome is not None and outcome.exit_code:
        sys.exit(outcome.exit_code)


class _Terminated(Exception):
    """SIGTERM arrived: end the run the way Ctrl-C does (kept, marked aborted)."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _mark_aborted(out: Path, run_id: str, gate: Any) -> None:
    """Say in ``result.json`` and in the store that the run was stopped (a resumed run completes it)."""
    from aisec.store import EvidenceNotFound

    result = out / "result.json"
    if result.is_file():
        doc = json.loads(result.read_text(encoding="utf-8"))
        doc["status"] = "aborted"
        tmp = result.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
        tmp.replace(result)
    if gate is not None and gate.store is not None:
        # stopped before its first check ended: nothing was stored, there is no run to mark
        with contextlib.suppress(EvidenceNotFound):
            gate.store.finish_run(run_id, status="aborted", error="stopped before its checks ended")


#: built-in datasets whose whole set includes the training split of aisec's built-in models
_SPLIT_DATASETS = frozenset({"digits"})


def _data_warnings(plan: Plan) -> list[str]:
    """Things about the data a user should know before the numbers arrive (nothing here stops the run)."""
    from aisec.data.loading import BUILTIN_NAMES
    from aisec.models.builtin import BUILTIN_MODELS

    src = str(plan.data.source)
    out = []
    if src in _SPLIT_DATASETS and not plan.data.options.get("split"):
        out.append(f"-d {src} without --split uses every record, including the training split of aisec's built-in "
                   f"{src} models: their accuracy and robustness are then partly measured on data they were trained "
                   "on. Give --split test to measure on unseen data.")
    key = src.strip().lower().replace("_", "-")
    if key in BUILTIN_NAMES and Path(src).exists():
        out.append(f"-d {src} is aisec's built-in dataset; the {_kind(Path(src))} '{src}' in the current folder "
                   f"was not read (give -d ./{src} for it)")
    model = str(plan.model.path)
    if model in BUILTIN_MODELS and Path(model).exists():
        out.append(f"-m {model} is aisec's built-in model; the {_kind(Path(model))} '{model}' in the current "
                   f"folder was not loaded (give -m ./{model} for it)")
    return out


def _kind(p: Path) -> str:
    return "folder" if p.is_dir() else "file"


def _check_writable(out: str) -> None:
    """Fail before any work when the report folder cannot be created or written (nothing is created here)."""
    p = Path(out).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a folder; give a folder for the report")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"-o {out}: cannot create a folder under '{parent}', which is a file; choose another -o")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"-o {out}: '{parent}' is not writable; choose a folder you can write to")


#: the seed tools' check names (AI-SEC's ``-t poison``, ``-t explain``) as aliases of aisec's
CHECK_ALIASES: dict[str, str] = {"poison": "poisoning", "explain": "explainability", "evasion": "robustness",
                                 "membership": "privacy", "steal": "extraction"}

#: plan fields the assess flags set, for naming the flag in a validation error
_FIELD_FLAGS: dict[tuple[str, ...], tuple[str, str]] = {
    ("model", "path"): ("--model", "model"), ("model", "arch"): ("--arch", "arch"),
    ("model", "device"): ("--device", "device"), ("model", "query_budget"): ("--query-budget", "query_budget"),
    ("model", "input_shape"): ("--input-shape", "input_shape"),
    ("model", "num_classes"): ("--classes", "classes"), ("model", "normalization"): ("--mean/--std", "std"),
    ("model", "endpoint"): ("--timeout", "timeout"), ("seed",): ("--seed", "seed"),
}


def _parse_plan(plan: dict[str, Any], f: dict[str, Any], source: str) -> Plan:
    """``Plan.parse`` whose errors name the flag that brought the bad value, on one line."""
    try:
        return Plan.model_validate(plan)
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            loc = tuple(str(x) for x in e["loc"])
            for prefix, (flag, dest) in _FIELD_FLAGS.items():
                given = f.get(dest) if dest != "std" else (f.get("std") or f.get("mean"))
                if loc[: len(prefix)] == prefix and given is not None and given is not False:
                    value = f"{f.get('mean')} / {f.get('std')}" if dest == "std" else given
                    msg = str(e["msg"]).removeprefix("Value error, ")
                    raise ConfigError(f"{flag} {value}: {msg}") from exc
    return Plan.parse(plan, source=source)


def _check_defence(spec: str, where: str) -> None:
    """Refuse an unknown defence or a bad parameter before anything loads: one line naming ``where``."""
    from aisec.defences.preprocess import parse_defence

    try:
        parse_defence(spec)
    except ConfigError as exc:
        raise ConfigError(f"{where} {spec}: {exc}") from None


def _ints(text: str, flag: str) -> list[int]:
    """Comma-separated integers for ``flag``; a one-line error otherwise."""
    try:
        return [int(v) for v in csv_list(text) or []]
    except ValueError as exc:
        raise ConfigError(f"{flag} {text}: expected comma-separated whole numbers, e.g. 1,28,28") from exc


def _finite(values: list[float] | None, flag: str) -> list[float] | None:
    if values is not None and not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{flag} {','.join(f'{v:g}' for v in values)}: NaN and infinity are not allowed")
    return values


def _plan_from(plan_file: str | None, f: dict[str, Any], *, threat_model: str | None = None) -> Plan:
    """The plan the flags ``f`` describe, on top of ``plan_file`` or the plan of ``threat_model`` (flags win)."""
    raw: dict[str, Any] = {}
    if plan_file:
        raw = Plan.from_yaml(plan_file).model_dump(mode="json")
    elif threat_model:
        from aisec.threats.model import ThreatModel
        from aisec.threats.planner import plan_for

        raw = plan_for(ThreatModel.from_yaml(threat_model), model=f["model"] or None,
                       data=f["data"] or None).model_dump(mode="json")
    model = dict(raw.get("model", {}))
    if f["model"]:
        model["path"] = f["model"]
    for key in ("arch", "device"):
        if f[key]:
            model[key] = f[key]
    if f["trust_model_code"]:
        model["trust_model_code"] = True
    if f["query_budget"] is not None:
        model["query_budget"] = f["query_budget"]
    if f.get("defence") is not None:
        model["defence"] = f["defence"]
    if model.get("defence") is not None:
        _check_defence(str(model["defence"]), "--defence" if f.get("defence") is not None else "model.defence")
    endpoint = dict(model.get("endpoint", {}))
    for flag, key in (("protocol", "protocol"), ("model_name", "model"), ("timeout", "timeout"),
                      ("query_log", "log_path"), ("output_kind", "output")):
        if f[flag] is not None:
            endpoint[key] = f[flag]
    if endpoint:
        model["endpoint"] = endpoint
    if f.get("classes") is not None:
        model["num_classes"] = f["classes"]
    if f["input_shape"] is not None:
        model["input_shape"] = _ints(f["input_shape"], "--input-shape")
    if f["mean"] or f["std"]:
        if not (f["mean"] and f["std"]):
            raise click.UsageError("--mean and --std go together")
        model["normalization"] = {"mean": _finite(float_list(f["mean"], "--mean"), "--mean"),
                                  "std": _finite(float_list(f["std"], "--std"), "--std")}
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
    if f.get("scale"):
        data["scale"] = f["scale"]
    if "source" not in data:
        raise click.UsageError("give --data (e.g. digits, fashion-mnist, a folder) or a --plan")
    checks: dict[str, dict[str, Any]] = dict(raw.get("checks", {}) or {})
    if f["checks"]:
        names = [CHECK_ALIASES.get(c.lower(), c) for c in csv_list(f["checks"]) or []]
        checks = {c: checks.get(c, {}) for c in names}
    if not checks:
        checks = {"robustness": {}}
    if f.get("detector") and not f["checks"] and "detection" not in checks:
        checks["detection"] = {}  # --detector alone asks for the detection check next to the others
    for name in list(checks):
        checks[name] = check_flags(name, dict(checks[name]), f, data)
    plan = {"model": model, "data": data, "checks": checks, "seed": raw.get("seed", 0)}
    if f["seed"] is not None:
        plan["seed"] = f["seed"]
    if raw.get("target_of_evaluation_id"):
        plan["target_of_evaluation_id"] = raw["target_of_evaluation_id"]
    for key in ("threat_model", "rationale"):  # a threat-model plan keeps what it answers, and why
        if raw.get(key):
            plan[key] = raw[key]
    return _parse_plan(plan, f, source=plan_file or threat_model or "command line")
