"""``aisec demo``: the embedded default, trained on shipped data and assessed end to end (see :mod:`aisec.demo`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from aisec.cli.summary import print_summary


@click.command("demo")
@click.option("-o", "--out", type=click.Path(file_okay=False), default="aisec-report", show_default=True)
@click.option("-c", "--count", type=int, default=300, show_default=True, help="Samples to attack.")
@click.option("--privacy/--no-privacy", default=True, show_default=True,
              help="Compare an over-fitted and a regularised model for membership leakage (quick settings: "
              "a few seconds once the models are cached).")
@click.option("--privacy-full", is_flag=True,
              help="Run every membership attack with the check's default model counts (minutes on a CPU).")
@click.option("--poison-rates", default=None, metavar="R1,R2,...",
              help="Shares of a copy's training data the poisoning check poisons on purpose (default 0.01,0.03,0.1: "
              "at 10 % the planted backdoor always succeeds, so the poisoning rule fails by design).")
@click.option("--store", "store_url", envvar="AISEC_STORE_URL", show_envvar=True,
              help="Evidence store URL; default: evidence.db in the aisec data folder ($AISEC_HOME).")
@click.option("--no-store", is_flag=True, help="Keep the evidence only in the report folder.")
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.option("--serve", is_flag=True, help="Then open the results in the web UI (aisec serve on 127.0.0.1:8000).")
@click.option("--port", default=8000, show_default=True, type=int, help="With --serve: the port.")
def demo(out: str, count: int, privacy: bool, privacy_full: bool, poison_rates: str | None, store_url: str | None,
         no_store: bool, as_json: bool, quiet: bool, serve: bool, port: int) -> None:
    """Train (cached) small CNNs on digits, assess them, write one report (and store its evidence)."""
    from aisec.cli.progress import RichProgress
    from aisec.demo.digits import POISON_RATES, demo_plan, run_demo

    rates = _rates(poison_rates) if poison_rates is not None else POISON_RATES
    demo_plan(count, rates)  # a bad rate is one error line now, before any work

    store = None
    if not no_store:
        from aisec.core.errors import AisecError
        from aisec.store import open_store

        try:
            store = open_store(store_url)  # before the work: a bad store URL fails now, not after the attacks
        except (AisecError, OSError) as exc:
            if store_url:
                raise  # a store the user named must work
            click.echo(f"warning: the default evidence store could not be opened ({exc}); the evidence stays in "
                       f"{out} (--no-store silences this)", err=True)
    with RichProgress(enabled=not quiet and not as_json) as progress:
        run = run_demo(out=out, samples=count, privacy=privacy or privacy_full, privacy_full=privacy_full,
                       poison_rates=rates, progress=progress)
    stored = ""
    if store is not None:
        for r in [run, *run.related]:  # the privacy sub-runs are runs of their own, stored next to the main one
            store.save_run(r)
        stored = (f"stored {1 + len(run.related)} run(s) in {store.display_url}; "
                  f"`aisec evidence list --run {run.run_id}` lists them")
    if as_json:
        click.echo(json.dumps(run.summary(), default=str))
    else:
        print_summary(run)
        for other in run.related:
            print_summary(other)
        if stored:
            click.echo(stored)
        click.echo(f"open {Path(out) / 'report.html'} in a browser")
    if serve:
        from aisec.cli.serve import make_settings, start
        from aisec.web.runs import adopt

        settings = make_settings(host="127.0.0.1", port=port, store_url=store_url, work_dir=None, token=None,
                                 trust_model_code=False, workers=1, allow_remote=False)
        assert run.plan is not None
        rid = adopt(settings, Path(out), run.plan, run.run_id)  # type: ignore[arg-type]
        start(settings, path=f"/runs/{rid}")


def _rates(text: str) -> tuple[float, ...]:
    """``0.01,0.03`` (or ``1%,3%``) as rates; anything else is a ConfigError naming the flag."""
    from aisec.core.errors import ConfigError

    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(float(part[:-1]) / 100 if part.endswith("%") else float(part))
        except ValueError:
            raise ConfigError(f"--poison-rates: '{part}' is not a number (give e.g. 0.01,0.03)") from None
    if not out:
        raise ConfigError("--poison-rates: no rate given (give e.g. 0.01,0.03)")
    return tuple(out)
