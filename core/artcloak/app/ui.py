"""The page, in Gradio: a thin layer over the job runner (imported only when the app runs).
Its panels are laid out in panels.py; this module builds the page and wires its events."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr

from ..errors import ArtcloakError
from ..settings import Mode
from .form import STYLE_IMAGE, FormValues
from .jobs import JobRunner
from .panels import Controls, Settings, controls_panel, results_panel, settings_panel
from .state import Job
from .view import message_html, status_html

POLL_SECONDS = 0.4
STORAGE_KEY = "artcloak-app-settings-v1"
CSS = """
.artcloak-status progress { width: 12em; }
.artcloak-error { color: var(--error-text-color, #b91c1c); }
.artcloak-images td { padding: 2px 8px; border: none; }
"""

INTRO = """# artcloak
Protect your images before you post them. **Everything stays on this computer**: the page, the
models and your images; nothing is uploaded anywhere else. **cloak** hides your style from style
mimicry; **shade** makes a model learn another concept from your picture."""


def theme() -> gr.themes.Base:
    """The default look with the system's fonts: nothing is fetched from the internet."""
    return gr.themes.Default(
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


def build(runner: JobRunner, seed: int = 0) -> gr.Blocks:
    """The page: form, Protect/Cancel, per-image progress, and each result with its figures."""
    first = FormValues.from_dict({})
    with gr.Blocks(title="artcloak", analytics_enabled=False) as page:
        stored = gr.BrowserState(first.as_dict(), storage_key=STORAGE_KEY, secret="artcloak-app")
        results = gr.State([])
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                controls = controls_panel()
            with gr.Column(scale=2):
                settings = settings_panel(first)
        download_all = gr.DownloadButton(
            "Download all (zip)", visible=False, elem_id="download-all"
        )
        _wire_settings(page, stored, settings)
        _wire_buttons(runner, seed, controls, settings, results, download_all)
        gr.render(inputs=results)(results_panel)
    return page


# --- the settings: remembered in the browser, and what they show ----------------------


def _wire_settings(page: gr.Blocks, stored: gr.BrowserState, settings: Settings) -> None:
    """Restore the remembered settings on load; remember each change."""
    page.load(_restore, inputs=stored, outputs=[*settings.remembered, *settings.toggled],
              queue=False)  # fmt: skip
    gr.on([c.input for c in settings.remembered], _remember, inputs=settings.remembered,
          outputs=[stored, *settings.toggled], queue=False)  # fmt: skip


def _visibility(values: FormValues) -> list:
    """Style, style image, concept, anchors, lossy warning: which of them ``values`` shows."""
    cloak = values.mode == Mode.CLOAK.value
    return [
        gr.update(visible=cloak),
        gr.update(visible=cloak and values.style == STYLE_IMAGE),
        gr.update(visible=not cloak),
        gr.update(visible=not cloak),
        gr.update(visible=values.lossy),
    ]


def _restore(remembered: dict) -> list:
    values = FormValues.from_dict(remembered)
    return [*(getattr(values, name) for name in FormValues.__dataclass_fields__),
            *_visibility(values)]  # fmt: skip


def _remember(*chosen) -> tuple:
    values = FormValues(*chosen)
    return values.as_dict(), *_visibility(values)


# --- Protect and Cancel -----------------------------------------------------------------


def _wire_buttons(runner: JobRunner, seed: int, controls: Controls, settings: Settings,
                  results: gr.State, download_all: gr.DownloadButton) -> None:  # fmt: skip
    controls.protect.click(
        _protect_handler(runner, seed),
        inputs=[controls.files, settings.style_image, settings.anchors, *settings.remembered],
        outputs=[controls.status, results, download_all, controls.protect, controls.cancel],
        concurrency_limit=None,
        show_progress="hidden",
    )

    def stop(request: gr.Request) -> None:
        runner.cancel_owner(request.session_hash or "")

    controls.cancel.click(stop, inputs=None, outputs=None, queue=False)


def _protect_handler(runner: JobRunner, seed: int) -> Callable[..., Iterator]:
    """Protect's handler: submit the job, then stream its progress and results (status,
    results, download-all, Protect, Cancel)."""

    def run(uploads, style_file, anchor_files, mode_, style_, concept_, intensity_,
            quality_, format_, adaptive_, request: gr.Request) -> Iterator:  # fmt: skip
        values = FormValues(mode_, style_, concept_, intensity_, quality_, format_, adaptive_)
        try:
            settings = values.settings(
                style_image=Path(style_file) if style_file else None,
                anchors=[Path(p) for p in anchor_files or []],
                resolution=runner.resolution,
                seed=seed,
            )
            job = runner.submit([Path(p) for p in uploads or []], settings, values.extension,
                                owner=request.session_hash or "")  # fmt: skip
        except ArtcloakError as error:
            yield message_html(str(error)), [], gr.update(visible=False), *_buttons(busy=False)
            return
        yield from _follow(runner, job)

    return run


def _follow(runner: JobRunner, job: Job) -> Iterator:
    """The job's progress every POLL_SECONDS, with results as they finish, until it ends."""
    shown = -1
    try:
        while True:
            ready = job.results_ready()
            new = ready if len(ready) != shown else gr.skip()
            shown = len(ready)
            if job.done:
                yield status_html(job, 0), new, _download_all(job), *_buttons(busy=False)
                return
            hidden = gr.update(visible=False)
            yield status_html(job, runner.position(job)), new, hidden, *_buttons(busy=True)
            time.sleep(POLL_SECONDS)
    finally:
        if not job.done:  # the page went away: stop its work
            runner.cancel(job.id)


def _buttons(busy: bool) -> tuple:
    """Protect, then Cancel: only one of them can be pressed."""
    return gr.update(interactive=not busy), gr.update(interactive=busy)


def _download_all(job: Job) -> dict:
    zip_file = str(job.zip_path) if job.zip_path else None
    return gr.update(value=zip_file, visible=zip_file is not None)


def launch(page: gr.Blocks, runner: JobRunner, host: str, port: int) -> None:
    """Serve without blocking: loopback unless asked, no share link, our own limits."""
    _import_matplotlib()
    page.queue(default_concurrency_limit=1)
    options = dict(
        server_name=host,
        server_port=port,
        share=False,
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        max_file_size=runner.limits.max_upload_bytes,
        allowed_paths=[str(runner.root)],
        ssr_mode=False,
        run_history=False,  # no run records, and no offer to save them to a Hugging Face bucket
        footer_links=["gradio", "settings"],
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        theme=theme(),
        css=CSS,
    )
    accepted = inspect.signature(page.launch).parameters  # run_history: Gradio 6.24 and later
    page.launch(**{name: value for name, value in options.items() if name in accepted})


def _import_matplotlib() -> None:
    """Gradio imports matplotlib around every event; imported first from two event threads at
    once, one of them sees a half-initialised module. Import it once, here, before serving."""
    try:
        import matplotlib

        matplotlib.get_backend()
    except ImportError:
        pass
