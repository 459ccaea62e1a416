"""The ``artcloak app`` command: serve the page on this machine until Ctrl+C.

Gradio is imported only when the command runs, so ``artcloak --help`` stays fast and works
without the ``app`` extra.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import webbrowser
from pathlib import Path

import click

from ..cli.options import configure_logging, model_options, request_settings
from ..errors import ArtcloakError
from .limits import Limits

# Nothing leaves the machine: no analytics, no version check, no hub telemetry.
QUIET_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "GRADIO_RUN_HISTORY": "False",
}


def _limit_option(flag: str, default: float, help_text: str):
    """One of the page's size limits: a number above 0, its default shown in --help."""
    return click.option(flag, type=float, default=default, show_default=True, help=help_text)


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback lets other machines use the page.",
)
@click.option("--port", type=int, default=0, help="Port. Default: a free one (printed).")
@click.option("--no-browser", is_flag=True, help="Do not open the default browser.")
@_limit_option("--max-upload-mb", Limits.max_upload_mb, "Largest file the page takes.")
@_limit_option(
    "--max-megapixels",
    Limits.max_megapixels,
    "Most pixels an image may have (refused from its header, before decoding).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same result.")
@click.option(
    "--batch-size", type=int, help="Images optimised together. Default: 8 on GPU, 1 on CPU."
)
@model_options
def app(host: str, port: int, no_browser: bool, max_upload_mb: float, max_megapixels: float,
        seed: int, batch_size: int | None, **options) -> None:  # fmt: skip
    """A local web page: drop images, protect them, download the results (Ctrl+C stops it)."""
    configure_logging(options["verbose"])
    stdout = sys.stdout  # the URL's line; model loading swaps sys.stdout for a while
    limits = Limits(max_upload_mb=max_upload_mb, max_megapixels=max_megapixels)
    if limits.max_upload_mb <= 0 or limits.max_megapixels <= 0:
        raise ArtcloakError("--max-upload-mb and --max-megapixels must be above 0.")
    root = _private_folder()
    _require_gradio(root)
    from ..engine import Engine
    from .jobs import JobRunner
    from .ui import build, launch

    if not is_loopback(host):
        _warn_open_network(host)
    engine = Engine(request_settings(options)[1], batch_size=batch_size, decoders=True)
    _load_models(engine, root)
    runner = JobRunner(engine, limits, root=root, resolution=options["resolution"])
    stop = _stop_on_signals()
    page = None
    try:
        port = port or free_port(host)
        page = build(runner, seed=seed)
        try:
            launch(page, runner, host, port)
        except OSError as error:  # the port is taken, or the address is not this machine's
            raise ArtcloakError(f"Cannot serve on {host}:{port}: {error}") from None
        _announce(f"http://{url_host(host)}:{port}/", stdout, open_browser=not no_browser)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if page is not None:
            page.close()
        runner.close()
        click.echo("artcloak app: stopped; its temporary files are removed.", err=True)


def _private_folder() -> Path:
    """A new temporary folder for this run's files, and the environment that keeps Gradio
    quiet and its uploads inside that folder (set before Gradio is imported)."""
    root = Path(tempfile.mkdtemp(prefix="artcloak-app-"))
    os.environ.update(QUIET_ENVIRONMENT)
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")  # uploads too go when the app stops
    return root


def _require_gradio(root: Path) -> None:
    """Refuse, removing the still empty ``root``, where Gradio 6 is not installed."""
    try:
        import gradio
    except ImportError:
        gradio = None
    if gradio is None or int(gradio.__version__.split(".")[0]) < 6:
        os.rmdir(root)
        raise ArtcloakError(
            "artcloak app needs Gradio 6: pip install 'artcloak[app]' (or -e '.[app]' in a checkout)."
        )


def _warn_open_network(host: str) -> None:
    click.echo(f"artcloak app: WARNING: listening on {host}: anyone who can reach this machine "
               "can use the page and see the images given to it. There is no password; use "
               "this only on a network you trust.", err=True)  # fmt: skip


def _load_models(engine, root: Path) -> None:
    """Load before the page is served: a page that cannot protect is no use."""
    click.echo("artcloak app: loading the models...", err=True)
    try:
        engine.load_models()
    except ArtcloakError:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _stop_on_signals() -> threading.Event:
    """An event set by Ctrl+C and by a service manager's stop (SIGTERM)."""
    stop = threading.Event()
    for stopping in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stopping, lambda *_: stop.set())
    return stop


def _announce(url: str, stdout, open_browser: bool) -> None:
    """The URL for people (stderr) and for scripts (its own line on stdout), then the browser."""
    click.echo(f"artcloak app: serving on {url}  (Ctrl+C stops it)", err=True)
    click.echo(url, file=stdout)
    stdout.flush()
    if open_browser:
        webbrowser.open(url)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host if host != "localhost" else "127.0.0.1", 0))
        return int(probe.getsockname()[1])


for _parameter in app.params:  # shared model options: --json means nothing to a page
    if _parameter.name == "as_json":
        _parameter.hidden = True
