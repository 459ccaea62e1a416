"""The Export Protected dialog: widgets in, FormValues out (the logic lives in form.py)."""

from __future__ import annotations

import os

from . import protocol
from .form import FORMATS, FormValues, format_warning, problems, with_format
from .qt import (
    NO,
    OK_CANCEL,
    YES,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

INTENSITY_LABELS = {
    "low": "Low (least visible)",
    "default": "Default",
    "high": "High (strongest, most visible)",
}
QUALITY_LABELS = {"faster": "Faster", "default": "Default", "slower": "Slower (best)"}
FORMAT_LABELS = {"png": "PNG (lossless, recommended)", "jpeg": "JPEG", "webp": "WebP"}
ANCHOR_SEPARATOR = ";"


class ExportDialog(QDialog):
    """Modal settings dialog; ``values()`` and ``overwrite`` are read after it is accepted."""

    def __init__(self, parent, values: FormValues, styles: list[str], document_path: str):
        super().__init__(parent)
        self.setObjectName("artcloak_export_dialog")
        self.setWindowTitle("Export Protected")
        self.document_path = document_path
        self.overwrite = False
        self._add_mode_buttons()
        self.pages = QStackedWidget()
        self.pages.addWidget(self._cloak_page(styles))
        self.pages.addWidget(self._shade_page())
        settings = self._settings_form()
        self._lay_out(settings)
        self._connect_reactions()
        self.set_values(values)

    # the parts, top to bottom ------------------------------------------------------

    def _add_mode_buttons(self) -> None:
        self.cloak = QRadioButton("Cloak: protect the style (Glaze-like)")
        self.shade = QRadioButton("Shade: poison the concept (Nightshade-like)")
        self.modes = QButtonGroup(self)
        self.modes.addButton(self.cloak)
        self.modes.addButton(self.shade)

    def _cloak_page(self, styles: list[str]) -> QWidget:
        """The target style: the default, one by name, or a style image."""
        self.target = QComboBox()
        self.target.addItem(f"Default ({protocol.DEFAULT_STYLE})", ("auto", ""))
        for style in styles:
            self.target.addItem(f"Style: {style}", ("style", style))
        self.target.addItem("A style image…", ("image", ""))
        self.style_image = QLineEdit()
        self.style_image.setPlaceholderText("Image in the style the encoder should see")
        page = QWidget()
        form = QFormLayout(page)
        form.addRow("Target style:", self.target)
        form.addRow("Style image:", self._with_browse(self.style_image, self._browse_style))
        return page

    def _shade_page(self) -> QWidget:
        self.anchors = QLineEdit()
        self.anchors.setPlaceholderText("Images of the concept the encoder should see instead")
        page = QWidget()
        form = QFormLayout(page)
        form.addRow("Concept images:", self._with_browse(self.anchors, self._browse_anchors))
        return page

    def _settings_form(self) -> QFormLayout:
        """Intensity, quality, the texture-shaped budget, output file and format (the same
        for both modes)."""
        self.intensity = _combo(INTENSITY_LABELS)
        self.quality = _combo(QUALITY_LABELS)
        self.adaptive = QCheckBox(protocol.ADAPTIVE_LABEL)
        self.adaptive.setObjectName("artcloak_adaptive")
        self.adaptive.setToolTip(protocol.ADAPTIVE_HELP)
        self.output = QLineEdit()
        self.format = _combo(FORMAT_LABELS)
        form = QFormLayout()
        form.addRow("Intensity:", self.intensity)
        form.addRow("Render quality:", self.quality)
        form.addRow("", self.adaptive)
        form.addRow("Output file:", self._with_browse(self.output, self._browse_output))
        form.addRow("Format:", self.format)
        return form

    def _lay_out(self, settings: QFormLayout) -> None:
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setObjectName("artcloak_format_warning")
        self.open_result = QCheckBox("Open the result as a new document")
        buttons = QDialogButtonBox(OK_CANCEL)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Protection:"))
        for widget in (self.cloak, self.shade, self.pages):
            layout.addWidget(widget)
        layout.addLayout(settings)
        for widget in (self.warning, self.open_result, buttons):
            layout.addWidget(widget)

    def _connect_reactions(self) -> None:
        self.cloak.toggled.connect(self._mode_changed)
        self.target.currentIndexChanged.connect(self._target_changed)
        self.format.currentIndexChanged.connect(self._format_changed)

    # values in and out -------------------------------------------------------------

    def set_values(self, values: FormValues) -> None:
        (self.cloak if values.mode == "cloak" else self.shade).setChecked(True)
        index = 0
        for i in range(self.target.count()):
            kind, style = self.target.itemData(i)
            if kind == values.target_kind and (kind != "style" or style == values.style):
                index = i
        self.target.setCurrentIndex(index)
        self.style_image.setText(values.style_image)
        self.anchors.setText(f"{ANCHOR_SEPARATOR} ".join(values.anchors))
        _select(self.intensity, values.intensity)
        _select(self.quality, values.quality)
        self.adaptive.setChecked(values.adaptive)
        self.output.setText(values.output)
        _select(self.format, values.format)
        self.open_result.setChecked(values.open_result)
        self._mode_changed()
        self._target_changed()
        self._format_changed()

    def values(self) -> FormValues:
        kind, style = self.target.currentData()
        anchors = [a.strip() for a in self.anchors.text().split(ANCHOR_SEPARATOR) if a.strip()]
        return FormValues(
            mode="cloak" if self.cloak.isChecked() else "shade",
            target_kind=kind,
            style=style,
            style_image=self.style_image.text().strip(),
            anchors=anchors,
            intensity=self.intensity.currentData(),
            quality=self.quality.currentData(),
            adaptive=self.adaptive.isChecked(),
            output=self.output.text().strip(),
            format=self.format.currentData(),
            open_result=self.open_result.isChecked(),
        )

    # reactions ---------------------------------------------------------------------

    def _mode_changed(self, *_) -> None:
        self.pages.setCurrentIndex(0 if self.cloak.isChecked() else 1)

    def _target_changed(self, *_) -> None:
        kind, _style = self.target.currentData()
        self.style_image.parentWidget().setEnabled(kind == "image")

    def _format_changed(self, *_) -> None:
        format_name = self.format.currentData()
        if self.output.text().strip():
            self.output.setText(with_format(self.output.text().strip(), format_name))
        text = format_warning(format_name)
        self.warning.setText(f"⚠ {text}" if text else "")
        self.warning.setVisible(bool(text))

    def _accept(self) -> None:
        values = self.values()
        found = problems(values, self.document_path)
        if found:
            QMessageBox.warning(self, "Export Protected", "\n".join(found))
            return
        self.overwrite = False
        if os.path.exists(values.output):
            answer = QMessageBox.question(
                self,
                "Export Protected",
                f"{values.output} already exists. Replace it?",
                YES | NO,
                NO,
            )
            if answer != YES:
                return
            self.overwrite = True
        self.accept()

    def _browse_output(self) -> None:
        filters = ";;".join(f"{FORMAT_LABELS[f]} (*{e})" for f, e in FORMATS.items())
        path, _ = QFileDialog.getSaveFileName(self, "Protected image", self.output.text(), filters)
        if path:
            ext = os.path.splitext(path)[1].lower()
            for name, extension in FORMATS.items():
                if extension == ext or (name == "jpeg" and ext == ".jpeg"):
                    _select(self.format, name)
            self.output.setText(with_format(path, self.format.currentData()))

    def _browse_style(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Style image", self.style_image.text(), _IMAGES)
        if path:
            self.style_image.setText(path)

    def _browse_anchors(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Concept images", "", _IMAGES)
        if paths:
            self.anchors.setText(f"{ANCHOR_SEPARATOR} ".join(paths))

    def _with_browse(self, line: QLineEdit, browse) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(line)
        button = QPushButton("Browse…")
        button.clicked.connect(browse)
        row.addWidget(button)
        return box


_IMAGES = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp)"


def _combo(labels: dict) -> QComboBox:
    combo = QComboBox()
    for value, label in labels.items():
        combo.addItem(label, value)
    return combo


def _select(combo: QComboBox, value: str) -> None:
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)
