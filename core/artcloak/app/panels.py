"""The page's parts, in Gradio: each function lays out one panel where it is called (inside
``gr.Blocks``) and returns the components that events read or change. Events: ui.py."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..engine import IMAGE_EXTENSIONS
from ..protocol import ADAPTIVE_HELP, ADAPTIVE_LABEL
from ..settings import Intensity, Mode, Quality
from .figures import ResultFigures
from .form import FORMATS, LOSSY_WARNING, FormValues, intensity_label, quality_label, style_choices
from .view import figures_markdown

IMAGE_TYPES = sorted(IMAGE_EXTENSIONS)
PICTURE_HEIGHT = 320


@dataclass
class Controls:
    """The images to protect, the buttons, and the job's progress."""

    files: gr.File
    protect: gr.Button
    cancel: gr.Button
    status: gr.HTML


@dataclass
class Settings:
    """The protection settings; some are shown only for one mode, style or format."""

    mode: gr.Radio
    style: gr.Dropdown
    style_image: gr.File
    concept: gr.Textbox
    anchors: gr.File
    intensity: gr.Radio
    quality: gr.Radio
    adaptive: gr.Checkbox
    output_format: gr.Radio
    lossy: gr.Markdown

    @property
    def remembered(self) -> list:
        """The choices kept in the browser, in FormValues' field order."""
        return [self.mode, self.style, self.concept, self.intensity, self.quality,
                self.output_format, self.adaptive]  # fmt: skip

    @property
    def toggled(self) -> list:
        """What is shown or hidden by the choices, in ``visibility``'s order (ui.py)."""
        return [self.style, self.style_image, self.concept, self.anchors, self.lossy]


def controls_panel() -> Controls:
    files = gr.File(label="Images (drop one or many)", file_count="multiple",
                    file_types=IMAGE_TYPES, type="filepath", elem_id="images")  # fmt: skip
    with gr.Row():
        protect = gr.Button("Protect", variant="primary", elem_id="protect")
        cancel = gr.Button("Cancel", variant="stop", elem_id="cancel", interactive=False)
    return Controls(files, protect, cancel, status=gr.HTML(elem_id="status"))


def settings_panel(first: FormValues) -> Settings:
    """The settings as ``first`` has them (the browser's remembered ones arrive on load)."""
    return Settings(
        mode=gr.Radio(
            [
                ("cloak: hide my style", Mode.CLOAK.value),
                ("shade: poison a concept", Mode.SHADE.value),
            ],
            value=first.mode,
            label="Protection",
            elem_id="mode",
        ),  # fmt: skip
        style=gr.Dropdown(
            style_choices(), value=first.style, label="Target style", elem_id="style"
        ),  # fmt: skip
        style_image=gr.File(
            label="Style image", file_types=IMAGE_TYPES, type="filepath", visible=False
        ),  # fmt: skip
        concept=gr.Textbox(
            label="Concept the model should see instead",
            visible=False,
            placeholder="e.g. a handbag",
            max_length=200,
        ),  # fmt: skip
        anchors=gr.File(
            label="Images of the concept the model should see instead",
            file_count="multiple",
            file_types=IMAGE_TYPES,
            type="filepath",
            visible=False,
        ),  # fmt: skip
        intensity=gr.Radio(
            [(intensity_label(i), i.value) for i in Intensity],
            value=first.intensity,
            label="Intensity",
        ),  # fmt: skip
        quality=gr.Radio(
            [(quality_label(q), q.value) for q in Quality],
            value=first.quality,
            label="Render quality",
        ),  # fmt: skip
        adaptive=gr.Checkbox(
            value=first.adaptive, label=ADAPTIVE_LABEL, info=ADAPTIVE_HELP, elem_id="adaptive"
        ),  # fmt: skip
        output_format=gr.Radio(
            list(FORMATS), value=first.output_format, label="Output format", elem_id="format"
        ),  # fmt: skip
        lossy=gr.Markdown(f"⚠ {LOSSY_WARNING}", visible=first.lossy),
    )


def results_panel(items: list[ResultFigures]) -> None:
    """Each finished result (drawn again by ``gr.render`` whenever the list changes)."""
    for result in items:
        with gr.Group(elem_classes="artcloak-result"):
            gr.Markdown(f"### {result.name} → {result.output.name}")
            _before_and_after(result)
            if result.seen_before is not None:  # None: the encoder has no decoder
                _what_the_model_sees(result)
            gr.Markdown(figures_markdown(result))
            gr.DownloadButton(f"Download {result.output.name}", value=str(result.output),
                              elem_classes="artcloak-download", key=f"dl-{result.output}")  # fmt: skip


def _before_and_after(result: ResultFigures) -> None:
    with gr.Row():
        gr.ImageSlider((str(result.before), str(result.after)), type="filepath",
                       label="Before | after (drag the line)", interactive=False,
                       height=PICTURE_HEIGHT, key=f"slider-{result.output}")  # fmt: skip
        gr.Image(str(result.amplified), interactive=False, height=PICTURE_HEIGHT,
                 key=f"amp-{result.output}",
                 label=f"The change, magnified {result.amplification:.0f}x")  # fmt: skip


def _what_the_model_sees(result: ResultFigures) -> None:
    with gr.Row():
        gr.Image(str(result.seen_before), interactive=False, height=PICTURE_HEIGHT,
                 label="What the model sees: original", key=f"sb-{result.output}")  # fmt: skip
        gr.Image(str(result.seen_after), interactive=False, height=PICTURE_HEIGHT,
                 label="What the model sees: protected", key=f"sa-{result.output}")  # fmt: skip
