"""``aisec serve``: the web UI and JSON API, bound to loopback, protected by a token printed at start."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (loopback only unless --allow-remote).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--store", "store_url", envvar="AISEC_STORE_URL", help="Evidence store URL (default: aisec's).")
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Run folders and uploads (default: <data dir>/serve).")
@click.option("--token", envvar="AISEC_SERVE_TOKEN", help="Access token (default: a random one, printed).")
@click.option("--trust-model-code", is_flag=True, help="Let runs unpickle uploaded model files (UNSAFE).")
@click.option("--workers", default=1, type=click.IntRange(1, 2), show_default=True, help="Runs at a time.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (put TLS in front of it).")
@click.option("--campaigns", "campaigns_dir", type=click.Path(file_okay=False, exists=True),
              help="A folder of campaign outputs (aisec campaign run): their leaderboards on the compare page.")
def serve(host: str, port: int, store_url: str | None, work_dir: str | None, token: str | None,
          trust_model_code: bool, workers: int, allow_remote: bool, campaigns_dir: str | None) -> None:
    """Serve the web UI and JSON API (runs execute in worker processes)."""
    settings = make_settings(host=host, port=port, store_url=store_url, work_dir=work_dir, token=token,
                             trust_model_code=trust_model_code, workers=workers, allow_remote=allow_remote,
                             campaigns_dir=campaigns_dir)
    start(settings)


def make_settings(*, host: str, port: int, store_url: str | None, work_dir: str | None, token: str | None,
                  trust_model_code: bool, workers: int, allow_remote: bool,
                  campaigns_dir: str | None = None) -> object:
    from aisec.web.settings import ServeSettings

    kw: dict[str, object] = {"host": host, "port": port, "trust_model_code": trust_model_code,
                             "max_workers": workers, "allow_remote": allow_remote}
    if store_url:
        kw["store_url"] = store_url
    if work_dir:
        kw["work_dir"] = Path(work_dir)
    if token:
        kw["token"] = token
    if campaigns_dir:
        kw["campaigns_dir"] = Path(campaigns_dir)
    settings = ServeSettings.model_validate(kw)
    settings.check_host()
    if allow_remote:
        click.echo(f"warning: serving {host} to other machines; the token is the only protection", err=True)
    return settings


def start(settings: object, *, path: str = "/") -> None:
    import uvicorn

    from aisec.web.app import create_app
    from aisec.web.settings import ServeSettings

    assert isinstance(settings, ServeSettings)
    app = create_app(settings)
    click.echo(f"aisec serve: http://{settings.host}:{settings.port}{path}?token={settings.token}")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
