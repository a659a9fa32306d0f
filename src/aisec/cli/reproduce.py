"""``aisec reproduce EVIDENCE_ID``: re-run the recorded plan and check the value against its interval.

Exit codes: 0 reproduced (new value inside the recorded interval); 4 not reproduced; 2 refused
(record or plan unsigned, edited or signed by an untrusted key; model or data changed; no recorded
plan) or another error.
"""

from __future__ import annotations

import sys

import click

from aisec.cli.store_options import AisecCommand, key_dir_option, open_store, store_option

EXIT_NOT_REPRODUCED = 4


@click.command(cls=AisecCommand)
@store_option
@key_dir_option
@click.argument("evidence_id")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Write the re-run's report and evidence here.")
@click.option("--save", is_flag=True, help="Store the re-run's evidence as a new run.")
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--trust-model-code", is_flag=True,
              help="Allow unpickling the model file (after its sha256 matched the signed record). A stored plan's "
              "trust_model_code is always ignored.")
def reproduce(store_url: str | None, key_dir: str | None, evidence_id: str, out: str | None, save: bool,
              as_json: bool, quiet: bool, trust_model_code: bool) -> None:
    """Re-run the plan behind EVIDENCE_ID (same model, data, seed, parameters) and compare.

    The record and its plan must be signed by a trusted key and unchanged, and the model file's
    sha256 must match the record, before anything is loaded.
    """
    from aisec.campaigns.reproduce import reproduce as do_reproduce
    from aisec.cli.progress import RichProgress

    store = open_store(store_url, key_dir, create=False)
    with RichProgress(enabled=not quiet and not as_json) as progress:
        result = do_reproduce(store, evidence_id, out=out, progress=progress, save=save,
                              trust_model_code=trust_model_code)
    click.echo(result.model_dump_json(indent=2) if as_json else result.text())
    if not result.within:
        sys.exit(EXIT_NOT_REPRODUCED)
