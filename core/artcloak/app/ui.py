"""The page, in Gradio: a thin layer over the job runner (imported only when the app runs)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from ..engine.images.formats import IMAGE_EXTENSIONS
from ..errors import ArtcloakError
from ..settings import Intensity, Mode, Quality
from .form import (
    FORMATS,
    LOSSY_WARNING,
    STYLE_IMAGE,
    FormValues,
    intensity_label,
    quality_label,
    style_choices,
)
from .jobs import JobRunner
from .view import figures_markdown, message_html, status_html

IMAGE_TYPES = sorted(IMAGE_EXTENSIONS)
POLL_SECONDS = 0.4
PICTURE_HEIGHT = 320
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
                files = gr.File(label="Images (drop one or many)", file_count="multiple",
                                file_types=IMAGE_TYPES, type="filepath", elem_id="images")  # fmt: skip
                with gr.Row():
                    protect = gr.Button("Protect", variant="primary", elem_id="protect")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel",
                                       interactive=False)  # fmt: skip
                status = gr.HTML(elem_id="status")
            with gr.Column(scale=2):
                mode = gr.Radio([("cloak: hide my style", Mode.CLOAK.value),
                                 ("shade: poison a concept", Mode.SHADE.value)],
                                value=first.mode, label="Protection", elem_id="mode")  # fmt: skip
                style = gr.Dropdown(style_choices(), value=first.style, label="Target style",
                                    elem_id="style")  # fmt: skip
                style_image = gr.File(label="Style image", file_types=IMAGE_TYPES,
                                      type="filepath", visible=False)  # fmt: skip
                concept = gr.Textbox(label="Concept the model should see instead", visible=False,
                                     placeholder="e.g. a handbag", max_length=200)  # fmt: skip
                anchors = gr.File(label="Images of the concept the model should see instead",
                                  file_count="multiple", file_types=IMAGE_TYPES,
                                  type="filepath", visible=False)  # fmt: skip
                intensity = gr.Radio([(intensity_label(i), i.value) for i in Intensity],
                                     value=first.intensity, label="Intensity")  # fmt: skip
                quality = gr.Radio([(quality_label(q), q.value) for q in Quality],
                                   value=first.quality, label="Render quality")  # fmt: skip
                output_format = gr.Radio(list(FORMATS), value=first.output_format,
                                         label="Output format", elem_id="format")  # fmt: skip
                lossy = gr.Markdown(f"⚠ {LOSSY_WARNING}", visible=first.lossy)
        download_all = gr.DownloadButton(
            "Download all (zip)", visible=False, elem_id="download-all"
        )

        form = [mode, style, concept, intensity, quality, output_format]
        toggled = [style, style_image, concept, anchors, lossy]

        def visibility(values: FormValues) -> list:
            cloak = values.mode == Mode.CLOAK.value
            return [
                gr.update(visible=cloak),
                gr.update(visible=cloak and values.style == STYLE_IMAGE),
                gr.update(visible=not cloak),
                gr.update(visible=not cloak),
                gr.update(visible=values.lossy),
            ]

        def restore(remembered: dict) -> list:
            values = FormValues.from_dict(remembered)
            return [*(getattr(values, name) for name in FormValues.__dataclass_fields__),
                    *visibility(values)]  # fmt: skip

        def remember(*chosen) -> tuple:
            values = FormValues(*chosen)
            return values.as_dict(), *visibility(values)

        page.load(restore, inputs=stored, outputs=[*form, *toggled], queue=False)
        gr.on([c.input for c in form], remember, inputs=form, outputs=[stored, *toggled],
              queue=False)  # fmt: skip

        def run(uploads, style_file, anchor_files, mode_, style_, concept_, intensity_,
                quality_, format_, request: gr.Request) -> Iterator:  # fmt: skip
            owner = request.session_hash or ""
            values = FormValues(mode_, style_, concept_, intensity_, quality_, format_)
            hidden = gr.update(visible=False)
            idle = (gr.update(interactive=True), gr.update(interactive=False))
            try:
                settings = values.settings(
                    style_image=Path(style_file) if style_file else None,
                    anchors=[Path(p) for p in anchor_files or []],
                    resolution=runner.resolution,
                    seed=seed,
                )
                job = runner.submit([Path(p) for p in uploads or []], settings, values.extension,
                                    owner=owner)  # fmt: skip
            except ArtcloakError as error:
                yield message_html(str(error)), [], hidden, *idle
                return
            shown = -1
            try:
                while True:
                    ready = job.results_ready()
                    new = ready if len(ready) != shown else gr.skip()
                    shown = len(ready)
                    busy = (gr.update(interactive=False), gr.update(interactive=True))
                    if job.done:
                        zip_file = str(job.zip_path) if job.zip_path else None
                        zipped = gr.update(value=zip_file, visible=zip_file is not None)
                        yield status_html(job, 0), new, zipped, *idle
                        return
                    yield status_html(job, runner.position(job)), new, hidden, *busy
                    time.sleep(POLL_SECONDS)
            finally:
                if not job.done:  # the page went away: stop its work
                    runner.cancel(job.id)

        protect.click(run, inputs=[files, style_image, anchors, *form],
                      outputs=[status, results, download_all, protect, cancel],
                      concurrency_limit=None, show_progress="hidden")  # fmt: skip

        def stop(request: gr.Request) -> None:
            runner.cancel_owner(request.session_hash or "")

        cancel.click(stop, inputs=None, outputs=None, queue=False)

        @gr.render(inputs=results)
        def show(items: list) -> None:
            for result in items:
                with gr.Group(elem_classes="artcloak-result"):
                    gr.Markdown(f"### {result.name} → {result.output.name}")
                    with gr.Row():
                        gr.ImageSlider((str(result.before), str(result.after)), type="filepath",
                                       label="Before | after (drag the line)",
                                       interactive=False, height=PICTURE_HEIGHT,
                                       key=f"slider-{result.output}")  # fmt: skip
                        gr.Image(str(result.amplified), interactive=False, height=PICTURE_HEIGHT,
                                 key=f"amp-{result.output}",
                                 label=f"The change, magnified {result.amplification:.0f}x")  # fmt: skip
                    if result.seen_before is not None:  # None: the encoder has no decoder
                        with gr.Row():
                            gr.Image(str(result.seen_before), interactive=False, height=PICTURE_HEIGHT,
                                     label="What the model sees: original", key=f"sb-{result.output}")  # fmt: skip
                            gr.Image(str(result.seen_after), interactive=False, height=PICTURE_HEIGHT,
                                     label="What the model sees: protected", key=f"sa-{result.output}")  # fmt: skip
                    gr.Markdown(figures_markdown(result))
                    gr.DownloadButton(f"Download {result.output.name}", value=str(result.output),
                                      elem_classes="artcloak-download", key=f"dl-{result.output}")  # fmt: skip

    return page


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
