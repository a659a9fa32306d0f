"""``aisec defend``: train a defended copy of a model and write it as a safetensors file.

It calls :func:`aisec.api.defend`. The output loads with ``aisec assess -m OUT`` right away (the
architecture is in the file's metadata); the record (``OUT.defence.json``) holds the recipe, the
data digests, clean accuracy before and after, and the time. A plan file (``--plan``) holds the
same as the flags, which override it::

    model: digits-cnn            # or {path: m.safetensors, arch: digits-cnn}
    data: {source: digits, options: {split: train}}
    eval: {source: digits, options: {split: test}}
    recipe: {name: pgd-at, eps: 0.1, epochs: 5}
    out: defended.safetensors
    seed: 0

:mod:`aisec.cli.main` lists it in ``COMMANDS`` and imports this module only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aisec.core.errors import ConfigError
from aisec.core.plan import DataRef, ModelRef

_NONE = ("none", "")


class DefendPlan(BaseModel):
    """What ``aisec defend --plan`` reads (flags override it)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelRef
    data: DataRef
    eval: DataRef | None = Field(
        default=None, description="Held-out data for clean accuracy (default: the training data).")
    recipe: dict[str, Any] | str = Field(description="name:key=value,... or {name: ..., key: value}.")
    out: str | None = None
    seed: int = 0

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, str) else v

    @field_validator("data", "eval", mode="before")
    @classmethod
    def _data(cls, v: Any) -> Any:
        return {"source": v} if isinstance(v, str) else v


def _read_plan(path: str) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read plan {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"plan {path} must be a mapping (model:, data:, recipe:, out:), got {type(raw).__name__}")
    return raw


def _plan(plan_file: str | None, f: dict[str, Any]) -> DefendPlan:
    raw: dict[str, Any] = _read_plan(plan_file) if plan_file else {}
    if f["model"]:
        raw["model"] = {**({} if isinstance(raw.get("model"), str) else raw.get("model") or {}), "path": f["model"]}
    if f["arch"]:
        raw.setdefault("model", {})
        if isinstance(raw["model"], str):
            raw["model"] = {"path": raw["model"]}
        raw["model"]["arch"] = f["arch"]
    if f["device"]:
        if isinstance(raw.get("model"), str):
            raw["model"] = {"path": raw["model"]}
        raw.setdefault("model", {})["device"] = f["device"]
    if f["data_name"] or "data" not in raw:
        raw["data"] = {"source": f["data_name"] or "digits"}
    data = raw["data"] if isinstance(raw["data"], dict) else {"source": raw["data"]}
    opts = dict(data.get("options") or {})
    split = f["split"] if f["split"] is not None else (opts.get("split") if plan_file else "train")
    if split is None or str(split).lower() in _NONE:
        opts.pop("split", None)
    else:
        opts["split"] = split
    if f["count"] is not None:
        opts["limit"] = f["count"]
    raw["data"] = {**data, "options": opts}
    eval_split = f["eval_split"] if f["eval_split"] is not None else (None if plan_file else "test")
    if eval_split is not None:
        if str(eval_split).lower() in _NONE:
            raw["eval"] = None
        else:
            eval_opts = {k: v for k, v in opts.items() if k not in ("split", "limit")}
            raw["eval"] = {"source": raw["data"]["source"], "options": {**eval_opts, "split": eval_split}}
    if f["recipe"]:
        raw["recipe"] = f["recipe"]
    if f["out"]:
        raw["out"] = f["out"]
    if f["seed"] is not None:
        raw["seed"] = f["seed"]
    for need, flag in (("model", "--model"), ("recipe", "--recipe")):
        if need not in raw:
            raise click.UsageError(f"give {flag} (or a --plan that has '{need}:')")
    try:
        plan = DefendPlan.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in e["loc"])
        raise ConfigError(f"invalid defend plan: {loc}: {str(e['msg']).removeprefix('Value error, ')}") from None
    if not plan.out:
        raise click.UsageError("give -o/--out FILE.safetensors (or out: in the plan)")
    return plan


@click.command("defend")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False, exists=True),
              help="YAML plan (model, data, eval, recipe, out, seed); flags override it.")
@click.option("-m", "--model", help="Model file or built-in name (digits-cnn, lenet5-mnist).")
@click.option("--arch", help="Architecture for weights files: package.module:Class or digits-cnn/lenet5.")
@click.option("-d", "--data", "data_name", help="Training data: built-in name, folder or file (default: digits).")
@click.option("--split", help="Split to train on (default: train; 'none' for a source without splits).")
@click.option("--eval-split", help="Split to measure clean accuracy on (default: test; 'none': the training data).")
@click.option("-r", "--recipe", help="Training defence and parameters, e.g. pgd-at:eps=0.1,epochs=5 "
              "(pgd-at, fast-fgsm, trades, gaussian-augment, denoiser; `aisec plugins` lists their parameters).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="The defended model to write (*.safetensors).")
@click.option("--force", is_flag=True, help="Replace OUT (and its record) if they exist; never the input model.")
@click.option("-c", "--count", type=click.IntRange(min=1), help="Train on at most this many samples.")
@click.option("--seed", type=int, help="Random seed (default 0).")
@click.option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--allow-module", "allow_module", multiple=True, metavar="PACKAGE",
              help="Let --arch import nn.Module classes from PACKAGE (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def defend(plan_file: str | None, allow_module: tuple[str, ...], force: bool, as_json: bool, quiet: bool,
           **flags: Any) -> None:
    """Train a defended copy of a model (adversarial training, TRADES, noise) and write it."""
    from aisec.api import defend as run_defend
    from aisec.api import load_data
    from aisec.cli.progress import RichProgress
    from aisec.core.safety import allow_modules
    from aisec.defences.training import check_out, parse_recipe

    plan = _plan(plan_file, flags)
    out = plan.out or ""  # _plan refuses a plan without one
    with allow_modules(allow_module):
        recipe = parse_recipe(plan.recipe)
        check_out(out, force=force, inputs=(plan.model.path,))  # before the data is read or anything trained
        train = load_data(plan.data.source, plan.data.options)
        held = load_data(plan.eval.source, plan.eval.options) if plan.eval is not None else None
        with RichProgress(enabled=not quiet and not as_json) as progress:
            rec = run_defend(plan.model.path, train, recipe, out, arch=plan.model.arch,
                             arch_kwargs=plan.model.arch_kwargs or None, eval_data=held, seed=plan.seed, force=force,
                             device=plan.model.device, progress=progress)
    if as_json:
        click.echo(rec.model_dump_json())
        return
    from aisec.defences.training.defend import record_path

    click.echo(f"defended model: {rec.output} ({rec.recipe}; {len(rec.epoch_loss)} epochs in {rec.seconds:.1f} s, "
               f"{rec.epochs_per_minute:.1f} epochs/min)")
    click.echo(f"clean accuracy on {rec.eval_data.name} ({rec.eval_data.samples}): "
               f"{rec.clean_accuracy_before:.3f} -> {rec.clean_accuracy_after:.3f}")
    click.echo(f"record: {record_path(rec.output)}")
    source = plan.eval.source if plan.eval is not None else plan.data.source
    split = (plan.eval.options.get("split") if plan.eval is not None else None)
    click.echo(f"assess it: aisec assess -m {rec.output} -d {source}" + (f" --split {split}" if split else ""))
