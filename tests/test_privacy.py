"""What a protected file says about itself: nothing, unless the user asks.

A protected image is posted where scrapers read it. Inside the file, no writer may say that
it was protected, with what, or carry a hash of the original (which would let anyone match
it to the unprotected artwork): that belongs in the JSON report beside it, which stays with
the artist. The metadata the artist put in (ICC profile, EXIF, text, XMP) is kept, as the
README promises.

For every writer (``artcloak cloak``, ``artcloak worker`` as the Krita and GIMP plug-ins run
it, the app's JobRunner, ``artcloak batch`` in-process), a PNG and a JPEG with metadata are
protected, and the output is searched: every byte of the file (which holds EXIF, XMP, JPEG
COM/APPn segments, WebP and TIFF tags as they are), plus the decompressed payloads of PNG
zTXt/iTXt/iCCP chunks, in ASCII and UTF-16. It must not hold "artcloak", "cloak", "shade" or
"protect" more often than the input did, any digest of the original's bytes or pixels, or any
long hex string the input did not have.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from artcloak import protocol
from artcloak.app.jobs import DONE, JobRunner
from artcloak.batch import run_batch
from artcloak.cli import main
from artcloak.engine.images import load_image
from artcloak.settings import ProtectionSettings
from conftest import painting
from PIL import Image, ImageCms, PngImagePlugin

WORDS = ("artcloak", "cloak", "shade", "protect")
HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "blake2s",
          "sha3_256", "sha3_512")  # fmt: skip
HEX_RUN = re.compile(rb"[0-9a-fA-F]{16,}")
FAST = ["--steps", "2", "--lpips", "0.5", "--precision", "fp32"]

ARTIST = "A. Painter"
COPYRIGHT = "(c) A. Painter. All rights reserved; protected by copyright."  # "protect": theirs
XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    "<dc:creator><rdf:Seq><rdf:li>A. Painter</rdf:li></rdf:Seq></dc:creator>"
    '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Fox at dusk</rdf:li></rdf:Alt></dc:title>'
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
    '<?xpacket end="w"?>'
)


# --- what a file holds ------------------------------------------------------------------


def searchable(path: Path) -> bytes:
    """The file's bytes, plus the decompressed payloads of compressed PNG metadata chunks."""
    data = path.read_bytes()
    return data + b"\n".join(_png_inflated(data))


def _png_inflated(data: bytes) -> list[bytes]:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return []
    found, position = [], 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind in (b"zTXt", b"iCCP"):  # keyword NUL method compressed
            found.append(zlib.decompress(body.split(b"\0", 1)[1][1:]))
        elif kind == b"iTXt":  # keyword NUL flag method language NUL translated NUL text
            keyword, rest = body.split(b"\0", 1)
            compressed = rest[0] == 1
            text = rest[2:].split(b"\0", 2)[2]
            found.append(zlib.decompress(text) if compressed else text)
    return found


def word_counts(blob: bytes) -> dict[str, int]:
    lower = blob.lower()  # (only ASCII letters change, in UTF-16 too)
    return {
        word: sum(lower.count(word.encode(codec)) for codec in ("ascii", "utf-16-le", "utf-16-be"))
        for word in WORDS
    }


def digests_of(source: Path) -> dict[str, bytes]:
    """Every form of a hash of the original's bytes or pixels a writer might have stored."""
    with Image.open(source) as image:
        views = {
            "file": source.read_bytes(),
            "pixels": image.tobytes(),
            "rgb": image.convert("RGB").tobytes(),
            "rgba": image.convert("RGBA").tobytes(),
        }
    views["samples"] = load_image(source).colour_samples().tobytes()
    forms = {}
    for view, data in views.items():
        for name in HASHES:
            raw = hashlib.new(name, data).digest()
            forms[f"{name}({view}) raw"] = raw
            forms[f"{name}({view}) hex"] = raw.hex().encode()
            forms[f"{name}({view}) HEX"] = raw.hex().upper().encode()
            forms[f"{name}({view}) base64"] = base64.b64encode(raw).rstrip(b"=")
            forms[f"{name}({view}) base64url"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
            forms[f"{name}({view}) hex[:16]"] = raw.hex()[:16].encode()
    return forms


def privacy_problems(source: Path, output: Path) -> list[str]:
    """What the output says about being protected, or about the original, that the
    input did not already say; empty when nothing."""
    before, after = searchable(source), searchable(output)
    problems = []
    had, has = word_counts(before), word_counts(after)
    for word in WORDS:
        if has[word] > had[word]:
            problems.append(
                f"{output.name} says {word!r} {has[word]} times (the input {had[word]})"
            )
    for name, form in digests_of(source).items():
        if form in after:
            problems.append(f"{output.name} holds {name} of {source.name}")
    new_hex = set(HEX_RUN.findall(after)) - set(HEX_RUN.findall(before))
    if new_hex:
        problems.append(f"{output.name} holds hex strings its input did not: {sorted(new_hex)}")
    return problems


# --- inputs with metadata -----------------------------------------------------------------


def exif_bytes() -> bytes:
    exif = Image.Exif()
    exif[0x013B] = ARTIST  # Artist
    exif[0x8298] = COPYRIGHT  # Copyright
    exif[0x0131] = "Krita 5.2.9"  # Software: the artist's, kept
    exif[0x010E] = "Fox at dusk"  # ImageDescription
    exif[0x0132] = "2025:05:20 18:30:00"  # DateTime
    return exif.tobytes()


def icc_bytes() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_with_metadata(path: Path) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", ARTIST)
    info.add_text("Comment", "Pencil, then ink, then a wash.", zip=True)  # zTXt
    info.add_itxt("Description", "Ein Fuchs in der Dämmerung", lang="de", zip=True)  # iTXt
    info.add_itxt("XML:com.adobe.xmp", XMP)
    Image.fromarray(painting()).save(path, pnginfo=info, exif=exif_bytes(), icc_profile=icc_bytes())
    return path


def jpeg_with_metadata(path: Path) -> Path:
    Image.fromarray(painting()).save(path, quality=95, exif=exif_bytes(), icc_profile=icc_bytes(),
                                     comment=b"Sketchbook page 12", xmp=XMP.encode("utf-8"))  # fmt: skip
    return path


INPUTS = {"png": ("art.png", png_with_metadata), "jpeg": ("photo.jpg", jpeg_with_metadata)}


def make_input(folder: Path, kind: str) -> Path:
    name, make = INPUTS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    return make(folder / name)


def assert_private_and_kept(source: Path, output: Path, kept_text: bool = True) -> None:
    """Nothing about the protection or the original inside; the artist's metadata kept;
    the report beside it (where the protection is described) exists."""
    assert output.is_file(), output
    assert privacy_problems(source, output) == []
    with Image.open(source) as original, Image.open(output) as written:
        assert written.info.get("icc_profile") == original.info.get("icc_profile")
        exif = written.getexif()
        assert exif.get(0x013B) == ARTIST and exif.get(0x8298) == COPYRIGHT
        assert exif.get(0x0131) == "Krita 5.2.9"  # the artist's software, not artcloak
        if kept_text and written.format == "PNG":
            assert written.text["Author"] == ARTIST
            assert written.text["Comment"] == "Pencil, then ink, then a wash."
            assert written.text["Description"] == "Ein Fuchs in der Dämmerung"
        if kept_text and written.format == "JPEG":
            assert written.info.get("comment") == b"Sketchbook page 12"
        if kept_text:
            xmp = written.info.get("xmp") or written.info.get("XML:com.adobe.xmp") or b""
            assert "A. Painter" in (xmp.decode() if isinstance(xmp, bytes) else xmp)
    report = output.with_name(output.name + ".json")
    assert "artcloak" in json.loads(report.read_text())  # the report is where it is said


# --- the check itself -----------------------------------------------------------------------


def test_the_check_finds_markers_and_hashes(tmp_path):
    source = png_with_metadata(tmp_path / "art.png")
    assert privacy_problems(source, source) == []
    pixels_sha = hashlib.sha256(Image.open(source).tobytes()).hexdigest()
    file_md5 = hashlib.md5(source.read_bytes()).hexdigest()
    for chunk, expected in [
        (("add_text", "Software", "artcloak 0.1"), "'artcloak'"),
        (("add_text", "Note", "Shaded", True), "'shade'"),  # inside a zTXt chunk
        (("add_itxt", "Note", "protection: cloak", "", "", True), "'cloak'"),
        (("add_text", "Source", pixels_sha), "sha256(pixels) hex"),
        (("add_text", "id", file_md5[:20]), "hex strings its input did not"),
    ]:
        info = PngImagePlugin.PngInfo()
        getattr(info, chunk[0])(*chunk[1:])
        marked = tmp_path / "marked.png"
        Image.open(source).save(marked, pnginfo=info)
        found = privacy_problems(source, marked)
        assert any(expected in problem for problem in found), (chunk, found)
    exif = Image.Exif()
    exif[0x9C9C] = "cloaked".encode("utf-16-le")  # XPComment: UTF-16
    Image.open(source).save(tmp_path / "xp.jpg", exif=exif.tobytes())
    assert any("'cloak'" in p for p in privacy_problems(source, tmp_path / "xp.jpg"))


# --- the writers ------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys) -> None:
    try:
        main(argv)
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err
    capsys.readouterr()


@pytest.mark.parametrize(
    ("kind", "output_name"),
    [("png", "out.png"), ("jpeg", "out.jpg"), ("png", "out.webp"), ("png", "out.tif")],
)
def test_cli_output_says_nothing(kind, output_name, tmp_path, cli_model_args, capsys):
    source = make_input(tmp_path / "in", kind)
    output = tmp_path / output_name
    run_cli(["cloak", str(source), "-o", str(output), *cli_model_args, *FAST], capsys)
    # WebP and TIFF keep ICC, EXIF and XMP but have no place for PNG's text fields
    assert_private_and_kept(source, output, kept_text=output.suffix in (".png", ".jpg"))


def test_cli_shade_output_says_nothing(tmp_path, cli_model_args, capsys):
    source = make_input(tmp_path / "in", "png")
    anchor = tmp_path / "anchor.png"
    Image.fromarray(painting(seed=3)).save(anchor)
    output = tmp_path / "shaded.png"
    run_cli(["shade", str(source), "--anchor", str(anchor), "-o", str(output), *cli_model_args,
             *FAST], capsys)  # fmt: skip
    assert_private_and_kept(source, output)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_worker_output_says_nothing(kind, tmp_path, tiny_models):
    source = make_input(tmp_path / "in", kind)
    output = tmp_path / f"out{source.suffix}"
    settings = {"encoders": [str(tiny_models["diffusers_folder"])], "device": "cpu", "steps": 2,
                "resolution": 64, "lpips_random_backbone": True}  # fmt: skip
    request = protocol.WorkerRequest(str(source), str(output), settings=settings)
    process = subprocess.run(
        [sys.executable, "-m", "artcloak", "worker", "-"],
        input=request.to_json(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    events = [protocol.decode(line) for line in process.stdout.splitlines()]
    assert process.returncode == 0 and events[-1]["event"] == "result", process.stderr[-2000:]
    assert_private_and_kept(source, output)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_app_output_says_nothing(kind, tmp_path, engine):
    source = make_input(tmp_path / "in", kind)
    runner = JobRunner(engine, root=tmp_path / "app", resolution=64)
    try:
        job = runner.submit([source], ProtectionSettings(steps=2, resolution=64, lpips=0.5),
                            source.suffix)  # fmt: skip
        deadline = time.monotonic() + 120
        while not job.done:
            assert time.monotonic() < deadline, job.message
            time.sleep(0.05)
        assert job.state == DONE, job.message
        (image,) = job.images
        assert_private_and_kept(source, image.result.output)
    finally:
        runner.close()


@pytest.mark.parametrize(("kind", "output_format"), [("png", None), ("jpeg", "jpeg")])
def test_batch_output_says_nothing(kind, output_format, tmp_path, tiny_model_settings):
    source = make_input(tmp_path / "src", kind)
    dest = tmp_path / "dest"
    summary = run_batch(source.parent, dest, ProtectionSettings(steps=2, resolution=64, lpips=0.5),
                        tiny_model_settings, output_format=output_format)  # fmt: skip
    (outcome,) = summary.outcomes
    assert outcome.ok, outcome.message
    assert_private_and_kept(source, dest / source.name)
