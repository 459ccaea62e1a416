#!/usr/bin/env python3
"""artcloak for GIMP 3: File > Export > Export Protected…

Runs in GIMP's own Python, which has no torch: the image as displayed (a merged duplicate,
alpha kept) is exported losslessly to a temporary PNG, the artcloak worker (``python -m
artcloak worker -`` of the Python recorded in worker.json) protects it, and its progress
drives GIMP's progress bar. The image itself is never modified. The logic that needs no
GIMP lives beside this file: in client.py (shared with the Krita plugin) and in
artcloak_gimp.py.
"""

import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
from gi.repository import Gimp, GimpUi, Gio, GLib, GObject  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import artcloak_gimp as logic  # noqa: E402
import client  # noqa: E402

RW = GObject.ParamFlags.READWRITE


def _choice(*items):
    choice = Gimp.Choice.new()
    for number, (nick, label) in enumerate(items):
        choice.add(nick, number, label, "")
    return choice


def _error(procedure, status, message):
    return procedure.new_return_values(
        status, GLib.Error.new_literal(GLib.quark_from_string("artcloak"), message, 0)
    )


def _path(gfile):
    return gfile.get_path() if gfile is not None else ""


def arguments_from(config):
    """The procedure's config as logic.Arguments."""
    return logic.Arguments(
        output=_path(config.get_property("output")),
        mode=config.get_property("protection"),
        target_kind=config.get_property("target-kind"),
        style=config.get_property("style") or "",
        style_image=_path(config.get_property("style-image")),
        anchors=logic.split_paths(config.get_property("anchors") or ""),
        intensity=config.get_property("intensity"),
        quality=config.get_property("render-quality"),
        adaptive=config.get_property("adaptive"),
        overwrite=config.get_property("overwrite"),
        open_result=config.get_property("open-result"),
    )


def export_flattened(image, path):
    """The image as displayed, written losslessly to ``path``; ``image`` is untouched."""
    copy = image.duplicate()
    try:
        copy.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
        if not Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, copy, Gio.File.new_for_path(path), None):
            raise client.PluginError("GIMP could not write the image to a temporary PNG.")
    finally:
        copy.delete()


def run(procedure, run_mode, image, drawables, config, data):
    if run_mode == Gimp.RunMode.INTERACTIVE:
        GimpUi.init("artcloak-export")
        dialog = GimpUi.ProcedureDialog.new(procedure, config, "Export Protected")
        dialog.fill(None)
        ok = dialog.run()
        dialog.destroy()
        if not ok:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    args = arguments_from(config)
    image_file = image.get_file()
    try:
        settings = client.WorkerConfig.load(os.path.dirname(os.path.abspath(__file__)), logic.HOST)
        found = client.problems(args, _path(image_file))
        if found:
            raise client.PluginError("\n".join(found))
        with logic.TempFolder() as folder:
            input_path = os.path.join(folder, "image.png")
            Gimp.progress_init("artcloak: preparing the image")
            export_flattened(image, input_path)
            request = client.build_request(args, input_path, settings)

            def on_progress(event):
                Gimp.progress_set_text(client.progress_text(event))
                fraction = client.progress_fraction(event)
                if fraction is None:
                    Gimp.progress_pulse()
                else:
                    Gimp.progress_update(fraction)

            outcome = client.run_worker(settings.python, request, on_progress, host=logic.HOST)
            outcome.message = client.for_people(outcome.message, input_path, image.get_name())
        Gimp.progress_end()
    except client.PluginError as problem:
        return _error(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, str(problem))
    if outcome.kind == "cancelled":
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    if outcome.kind != "result":
        return _error(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, outcome.message)
    if run_mode == Gimp.RunMode.INTERACTIVE:
        result = outcome.result
        Gimp.message(client.describe_result(result, client.read_report(result), outcome.notices))
    if args.open_result:
        opened = Gimp.file_load(
            Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(outcome.result["output"])
        )
        if opened is not None and run_mode == Gimp.RunMode.INTERACTIVE:
            Gimp.Display.new(opened)
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class ArtcloakExport(Gimp.PlugIn):
    def do_query_procedures(self):
        return [logic.PROCEDURE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("*")
        procedure.set_sensitivity_mask(
            Gimp.ProcedureSensitivityMask.DRAWABLE
            | Gimp.ProcedureSensitivityMask.DRAWABLES
            | Gimp.ProcedureSensitivityMask.NO_DRAWABLES
        )
        _describe(procedure, name)
        for kind, *values in _arguments():
            getattr(procedure, f"add_{kind}_argument")(*values, RW)
        return procedure


def _describe(procedure, name):
    """Menu entry, help text and attribution."""
    procedure.set_menu_label("Export Protected…")
    procedure.add_menu_path("<Image>/File/Export")
    procedure.set_documentation(
        "Export a copy protected by artcloak",
        "Writes a protected copy of the image as displayed (cloak: style protection; "
        "shade: concept poisoning), measured against its perceptual budget. The image "
        "itself is not modified.",
        name,
    )
    procedure.set_attribution("artcloak", "artcloak", "2026")


def _arguments():
    """The procedure's arguments in the dialog's order: the kind (``add_<kind>_argument``),
    then that call's values up to its flags (name, label, help, then the kind's own: a file's
    chooser action, whether it may be empty and its default; a choice's items and default; a
    string's or boolean's default)."""
    return [
        ("file", "output", "_Output file",
         "Where the protected image is written (.png, .jpg, .webp)",
         Gimp.FileChooserAction.SAVE, False, None),
        ("choice", "protection", "_Protection", "cloak (style) or shade (concept)",
         _choice(("cloak", "Cloak (protect the style)"), ("shade", "Shade (poison the concept)")),
         "cloak"),
        ("choice", "target-kind", "Cloak _target", "auto, style (by name) or image",
         _choice(("auto", f"Default ({client.protocol.DEFAULT_STYLE})"),
                 ("style", "A style by name"), ("image", "A style image")),
         "auto"),
        ("string", "style", "_Style", "Name of a built-in style (target 'style')", ""),
        ("file", "style-image", "Style _image", "Image in the target style (target 'image')",
         Gimp.FileChooserAction.OPEN, True, None),
        ("string", "anchors", "_Anchor images",
         "Shade: images of the target concept, one path per line", ""),
        ("choice", "intensity", "_Intensity", "The perceptual budget",
         _choice(("low", "Low"), ("default", "Default"), ("high", "High")), "default"),
        ("choice", "render-quality", "_Render quality", "Optimisation effort",
         _choice(("faster", "Faster"), ("default", "Default"), ("slower", "Slower")), "default"),
        ("boolean", "adaptive", client.protocol.ADAPTIVE_LABEL, client.protocol.ADAPTIVE_HELP,
         False),
        ("boolean", "overwrite", "O_verwrite", "Replace an existing output file", False),
        ("boolean", "open-result", "Open the _result", "Open the protected image in GIMP", False),
    ]  # fmt: skip


if __name__ == "__main__":
    Gimp.main(ArtcloakExport.__gtype__, sys.argv)
