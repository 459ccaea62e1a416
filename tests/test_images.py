"""Tests for artcloak.engine.images: formats, bit depths, metadata, bad input, atomic writes."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from artcloak.engine import images
from artcloak.engine.images import (
    LoadedImage,
    check_output_path,
    format_for_path,
    load_image,
    write_image,
)
from artcloak.errors import InputImageError, OutputError
from PIL import Image, ImageCms, ImageFile, ImageOps, PngImagePlugin

H, W = 40, 56
XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
    'tiff:Orientation="6" dc:creator="Ann"/></rdf:RDF></x:xmpmeta>'
)


# --------------------------------------------------------------------------- helpers


def _rgb8(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _samples16(channels: int, seed: int = 1) -> np.ndarray:
    """16-bit samples whose low byte differs from the high byte: they need all 16 bits."""
    values = np.random.default_rng(seed).integers(0, 65536, (H, W, channels), dtype=np.uint16)
    values[0, 0] = 0x1234  # never equal to an 8-bit value scaled by 257
    return values


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _cv2_write(path: Path, samples: np.ndarray) -> Path:
    """Write RGB(A) samples with OpenCV (an encoder independent of artcloak's own)."""
    order = [2, 1, 0, 3][: samples.shape[2]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(samples[..., order]))
    return path


def _cv2_read(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data.ndim == 3:
        data = data[..., [2, 1, 0, 3][: data.shape[2]]]
    return data


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _add_png_chunks(path: Path, *chunks: bytes) -> Path:
    """Insert chunks right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    data = path.read_bytes()
    path.write_bytes(data[:33] + b"".join(chunks) + data[33:])
    return path


def _png_ihdr(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return data[24], data[25]  # bit depth, colour type


def _exif(orientation: int = 1, artist: str = "Ann") -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x013B] = artist
    return exif


def _like(
    colour: np.ndarray, alpha: np.ndarray | None = None, *, bit_depth: int = 8, **kw
) -> LoadedImage:
    greyscale = colour.shape[2] == 1
    rgb = colour.astype(np.float32) / (65535 if bit_depth == 16 else 255)
    if greyscale:
        rgb = np.repeat(rgb, 3, axis=2)
    return LoadedImage(None, rgb, alpha, bit_depth, greyscale, "PNG", **kw)


def _round_trip(tmp_path: Path, like: LoadedImage, name: str, **kw) -> tuple[LoadedImage, list]:
    out = tmp_path / name
    notices = write_image(out, like, like.colour_samples(), **kw)
    return load_image(out), notices


# --------------------------------------------------------------------------- 8-bit round trips


def test_png_8bit_rgb_round_trip(tmp_path: Path) -> None:
    rgb = _rgb8()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert (img.format, img.bit_depth, img.greyscale, img.alpha) == ("PNG", 8, False, None)
    assert img.size == (W, H) and img.max_value == 255
    assert img.rgb.dtype == np.float32 and img.rgb.shape == (H, W, 3)
    assert np.array_equal(img.rgb, rgb.astype(np.float32) / 255)
    assert np.array_equal(img.colour_samples(), rgb)
    again, notices = _round_trip(tmp_path, img, "b.png")
    assert notices == [] and np.array_equal(again.colour_samples(), rgb)


def test_png_8bit_rgba_alpha_bit_exact(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb8(), _rgb8(seed=5)[..., 0]])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.alpha is not None and img.alpha.dtype == np.uint8
    assert np.array_equal(img.alpha, rgba[..., 3])
    again, _ = _round_trip(tmp_path, img, "b.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), rgba)
    assert np.array_equal(again.alpha, rgba[..., 3])


def test_grey_8bit_and_grey_alpha_stay_grey(tmp_path: Path) -> None:
    grey = _rgb8()[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.greyscale and img.bit_depth == 8
    assert np.array_equal(img.colour_samples(), np.dstack([grey] * 3))
    write_image(tmp_path / "g2.png", img, img.colour_samples())
    written = Image.open(tmp_path / "g2.png")
    assert written.mode == "L" and np.array_equal(np.asarray(written), grey)

    la = np.dstack([grey, _rgb8(seed=3)[..., 0]])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    assert img.greyscale and np.array_equal(img.alpha, la[..., 1])
    write_image(tmp_path / "la2.png", img, img.colour_samples())
    written = Image.open(tmp_path / "la2.png")
    assert written.mode == "LA" and np.array_equal(np.asarray(written), la)


# --------------------------------------------------------------------------- 16-bit


@pytest.mark.parametrize("channels", [3, 4])
def test_png_16bit_colour_round_trip(tmp_path: Path, channels: int) -> None:
    samples = _samples16(channels)
    img = load_image(_cv2_write(tmp_path / "a.png", samples))
    assert img.bit_depth == 16 and img.max_value == 65535 and not img.greyscale
    assert np.array_equal(img.colour_samples(), samples[..., :3])
    assert np.array_equal(img.rgb, samples[..., :3].astype(np.float32) / 65535)
    if channels == 4:
        assert img.alpha.dtype == np.uint16 and np.array_equal(img.alpha, samples[..., 3])
    else:
        assert img.alpha is None
    again, notices = _round_trip(tmp_path, img, "b.png")
    assert notices == [] and _png_ihdr(tmp_path / "b.png") == (16, 6 if channels == 4 else 2)
    assert np.array_equal(_cv2_read(tmp_path / "b.png"), samples)
    assert np.array_equal(again.colour_samples(), samples[..., :3])


def test_png_16bit_grey_and_grey_alpha(tmp_path: Path) -> None:
    grey = _samples16(1)
    Image.fromarray(grey[..., 0]).save(tmp_path / "g.png")  # Pillow writes I;16 as 16-bit grey
    img = load_image(tmp_path / "g.png")
    assert img.greyscale and img.bit_depth == 16
    assert np.array_equal(img.colour_samples()[..., 0], grey[..., 0])
    again, _ = _round_trip(tmp_path, img, "g2.png")
    assert _png_ihdr(tmp_path / "g2.png") == (16, 0)
    assert np.array_equal(_cv2_read(tmp_path / "g2.png"), grey[..., 0])

    alpha = _samples16(1, seed=7)[..., 0]
    like = _like(grey, alpha, bit_depth=16)
    again, _ = _round_trip(tmp_path, like, "ga.png")
    assert _png_ihdr(tmp_path / "ga.png") == (16, 4)
    assert again.greyscale and again.bit_depth == 16
    assert np.array_equal(again.colour_samples()[..., 0], grey[..., 0])
    assert np.array_equal(again.alpha, alpha)
    decoded = _cv2_read(tmp_path / "ga.png")  # OpenCV expands grey+alpha to RGBA
    assert np.array_equal(decoded[..., 0], grey[..., 0]) and np.array_equal(decoded[..., 3], alpha)


def test_png_16bit_keeps_icc_text_exif_and_orientation(tmp_path: Path) -> None:
    samples = _samples16(4)
    icc = _srgb_icc()
    exif = _exif(orientation=6).tobytes()[6:]
    path = _cv2_write(tmp_path / "a.png", samples)
    _add_png_chunks(
        path,
        _png_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc)),
        _png_chunk(b"tEXt", b"Author\x00Ann"),
        _png_chunk(b"eXIf", exif),
    )
    img = load_image(path)
    upright = np.rot90(samples, -1)
    assert img.size == (H, W) and np.array_equal(img.colour_samples(), upright[..., :3])
    assert np.array_equal(img.alpha, upright[..., 3])
    assert img.icc_profile == icc and img.text == {"Author": "Ann"}
    again, _ = _round_trip(tmp_path, img, "b.png")
    reopened = Image.open(tmp_path / "b.png")
    assert reopened.info["icc_profile"] == icc and reopened.text == {"Author": "Ann"}
    assert reopened.getexif()[0x0112] == 1 and reopened.getexif()[0x013B] == "Ann"
    assert np.array_equal(again.colour_samples(), upright[..., :3])
    assert np.array_equal(again.alpha, upright[..., 3])


@pytest.mark.parametrize("channels", [3, 4])
def test_tiff_16bit_round_trip_keeps_icc(tmp_path: Path, channels: int) -> None:
    samples = _samples16(channels)
    icc = _srgb_icc()
    like = _like(samples[..., :3], samples[..., 3] if channels == 4 else None, bit_depth=16)
    like.icc_profile, like.dpi = icc, (300.0, 300.0)
    img, notices = _round_trip(tmp_path, like, "a.tif")
    assert notices == [] and img.format == "TIFF" and img.bit_depth == 16
    assert np.array_equal(_cv2_read(tmp_path / "a.tif"), samples)  # independent decoder
    assert np.array_equal(img.colour_samples(), samples[..., :3])
    assert img.icc_profile == icc and img.dpi == (300.0, 300.0)
    if channels == 4:
        assert np.array_equal(img.alpha, samples[..., 3])


def test_tiff_16bit_from_opencv_and_grey(tmp_path: Path) -> None:
    samples = _samples16(3)
    img = load_image(_cv2_write(tmp_path / "a.tif", samples))
    assert img.bit_depth == 16 and np.array_equal(img.colour_samples(), samples)
    grey = _samples16(1)[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.tif")
    img, _ = _round_trip(tmp_path, load_image(tmp_path / "g.tif"), "g2.tif")
    assert img.greyscale and img.bit_depth == 16
    assert np.array_equal(img.colour_samples()[..., 0], grey)


def test_16bit_into_8bit_format_gives_notice(tmp_path: Path) -> None:
    samples = _samples16(4)
    like = _like(samples[..., :3], samples[..., 3], bit_depth=16)
    img, notices = _round_trip(tmp_path, like, "a.webp", quality=100)
    assert notices == ["WebP stores 8 bits per channel; the 16-bit image was written at 8 bits."]
    assert img.bit_depth == 8
    assert np.array_equal(img.colour_samples(), np.rint(samples[..., :3] / 257).astype(np.uint8))
    assert np.array_equal(img.alpha, np.rint(samples[..., 3] / 257).astype(np.uint8))


# --------------------------------------------------------------------------- other formats


def test_jpeg_round_trip_and_alpha_refused(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = np.dstack([xx * 4, yy * 5, (xx + yy) * 2]).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    img = load_image(tmp_path / "a.jpg")
    assert img.format == "JPEG" and img.bit_depth == 8
    again, notices = _round_trip(tmp_path, img, "b.jpeg", quality=95)
    assert notices == [] and again.format == "JPEG"
    diff = np.abs(again.colour_samples().astype(int) - img.colour_samples().astype(int))
    assert diff.mean() < 2

    with_alpha = _like(_rgb8(), _rgb8()[..., 0])
    with pytest.raises(OutputError, match="PNG or WebP"):
        write_image(tmp_path / "c.jpg", with_alpha, with_alpha.colour_samples())
    assert not (tmp_path / "c.jpg").exists()


def test_webp_lossless_and_lossy(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb8(), _rgb8(seed=2)[..., 0]])
    rgba[:5, :5, 3] = 0  # colour under fully transparent pixels must survive too
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    lossless, notices = _round_trip(tmp_path, img, "b.webp", quality=100)
    assert notices == [] and lossless.format == "WEBP"
    assert np.array_equal(lossless.colour_samples(), rgba[..., :3])
    assert np.array_equal(lossless.alpha, rgba[..., 3])
    lossy, _ = _round_trip(tmp_path, img, "c.webp", quality=90)
    assert np.array_equal(lossy.alpha, rgba[..., 3])
    assert not np.array_equal(lossy.colour_samples(), rgba[..., :3])
    assert (tmp_path / "c.webp").stat().st_size < (tmp_path / "b.webp").stat().st_size * 1.5


def test_bmp_rgb_rgba_grey(tmp_path: Path) -> None:
    rgb = _rgb8()
    img, _ = _round_trip(tmp_path, _like(rgb), "a.bmp")
    assert img.format == "BMP" and np.array_equal(img.colour_samples(), rgb)
    alpha = _rgb8(seed=4)[..., 0]
    img, _ = _round_trip(tmp_path, _like(rgb, alpha), "b.bmp")
    assert np.array_equal(img.colour_samples(), rgb) and np.array_equal(img.alpha, alpha)
    grey = rgb[..., :1]
    img, _ = _round_trip(tmp_path, _like(grey), "c.bmp")
    assert img.greyscale and np.array_equal(img.colour_samples()[..., 0], grey[..., 0])


def test_tiff_8bit_round_trip_with_exif(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb8(), _rgb8(seed=9)[..., 0]])
    exif = _exif(orientation=3)
    exif.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"  # DateTimeOriginal
    Image.fromarray(rgba).save(tmp_path / "a.png", exif=exif.tobytes())
    img = load_image(tmp_path / "a.png")
    again, notices = _round_trip(tmp_path, img, "b.tif")
    assert notices == [] and again.format == "TIFF"
    assert np.array_equal(again.colour_samples(), rgba[::-1, ::-1, :3])
    assert np.array_equal(again.alpha, rgba[::-1, ::-1, 3])
    written = Image.open(tmp_path / "b.tif").getexif()
    assert written[0x013B] == "Ann" and written.get(0x0112) == 1
    assert written.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05"


@pytest.mark.parametrize(
    ("name", "depth"),
    [("a.png", 8), ("a.tif", 8), ("a.bmp", 8), ("a.webp", 8), ("a.png", 16), ("a.tif", 16)],
)
def test_changed_colour_written_exactly_for_lossless_formats(
    tmp_path: Path, name: str, depth: int
) -> None:
    source = _samples16(3) if depth == 16 else _rgb8()
    alpha = (_samples16(1, seed=3) if depth == 16 else _rgb8(seed=3)[..., :1])[..., 0]
    like = _like(source, alpha, bit_depth=depth)
    changed = source ^ 1  # every sample differs by one step
    write_image(tmp_path / name, like, changed, quality=100)
    img = load_image(tmp_path / name)
    assert np.array_equal(img.colour_samples(), changed)
    assert np.array_equal(img.alpha, alpha)


# --------------------------------------------------------------------------- conversions


def test_palette_images_become_rgb_with_notice(tmp_path: Path) -> None:
    rgb = Image.fromarray(_rgb8())
    palette = rgb.quantize(16)
    palette.save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.alpha is None and not img.greyscale
    assert np.array_equal(img.colour_samples(), np.asarray(palette.convert("RGB")))
    assert any("palette" in n for n in img.notices)

    palette.save(tmp_path / "pt.png", transparency=0)
    img = load_image(tmp_path / "pt.png")
    assert img.alpha is not None and any("alpha" in n for n in img.notices)
    expected = np.asarray(Image.open(tmp_path / "pt.png").convert("RGBA"))
    assert np.array_equal(img.alpha, expected[..., 3])


def test_cmyk_converted_and_profile_dropped(tmp_path: Path) -> None:
    cmyk = Image.fromarray(_rgb8()).convert("CMYK")
    cmyk.save(tmp_path / "plain.jpg")
    img = load_image(tmp_path / "plain.jpg")
    assert img.icc_profile is None and img.notices == ["CMYK image converted to RGB."]
    fake_cmyk_profile = bytes(16) + b"CMYK" + bytes(108)
    cmyk.save(tmp_path / "profiled.tif", icc_profile=fake_cmyk_profile)
    img = load_image(tmp_path / "profiled.tif")
    assert img.icc_profile is None and not img.greyscale
    assert img.notices == ["CMYK image converted to RGB; its CMYK colour profile was dropped."]


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_reset(tmp_path: Path, orientation: int) -> None:
    rgb = _rgb8()
    Image.fromarray(rgb).save(tmp_path / "a.png", exif=_exif(orientation).tobytes())
    img = load_image(tmp_path / "a.png")
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "a.png")))
    assert np.array_equal(img.colour_samples(), upright)
    assert img.size == (upright.shape[1], upright.shape[0])
    reread = Image.Exif()
    reread.load(img.exif)
    assert reread[0x0112] == 1 and reread[0x013B] == "Ann"
    write_image(tmp_path / "b.jpg", img, img.colour_samples())
    assert Image.open(tmp_path / "b.jpg").getexif()[0x0112] == 1


def test_jpeg_exif_orientation_thumbnail_dropped(tmp_path: Path) -> None:
    rgb = _rgb8()
    Image.fromarray(rgb).save(tmp_path / "a.jpg", exif=_exif(8).tobytes(), quality=100)
    img = load_image(tmp_path / "a.jpg")
    assert img.size == (H, W)
    assert img.exif.startswith(b"Exif\x00\x00")
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[0x0112] == 1 and exif[0x013B] == "Ann"


def test_icc_text_xmp_kept_where_possible(tmp_path: Path) -> None:
    icc = _srgb_icc()
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Ann")
    info.add_text("Title", "Ünïcode ✓ title")
    info.add_itxt("XML:com.adobe.xmp", XMP)
    Image.fromarray(_rgb8()).save(tmp_path / "a.png", pnginfo=info, icc_profile=icc, dpi=(300, 300))
    img = load_image(tmp_path / "a.png")
    assert img.icc_profile == icc and img.dpi == (300.0, 300.0)
    assert img.text["Author"] == "Ann" and img.text["Title"] == "Ünïcode ✓ title"
    assert 'tiff:Orientation="1"' in img.text["XML:com.adobe.xmp"]  # XMP orientation reset too
    assert img.size == (H, W)  # ...after it was applied

    again, notices = _round_trip(tmp_path, img, "b.png")
    assert notices == [] and again.text == img.text and again.icc_profile == icc
    again, notices = _round_trip(tmp_path, img, "b.tif")
    assert again.icc_profile == icc and again.text == {
        "XML:com.adobe.xmp": img.text[images.XMP_KEY]
    }
    assert notices == ["TIFF cannot store the text fields (Author, Title); they were left out."]
    again, _ = _round_trip(tmp_path, img, "b.jpg")
    assert again.icc_profile == icc and images.XMP_KEY in again.text
    again, _ = _round_trip(tmp_path, img, "b.webp")
    assert again.icc_profile == icc and images.XMP_KEY in again.text
    _, notices = _round_trip(tmp_path, img, "b.bmp")
    assert notices == [
        "BMP cannot store the colour profile and the text fields (Author, Title, XMP); "
        "they were left out."
    ]


def test_jpeg_comment_kept(tmp_path: Path) -> None:
    Image.fromarray(_rgb8()).save(tmp_path / "a.jpg", comment="made by Ann")
    img = load_image(tmp_path / "a.jpg")
    assert img.text == {"Comment": "made by Ann"}
    again, _ = _round_trip(tmp_path, img, "b.jpg")
    assert again.text == {"Comment": "made by Ann"}


# --------------------------------------------------------------------------- bad input


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _saved(path: Path, image: Image.Image) -> Path:
    image.save(path)
    return path


def _truncated(path: Path, fmt: str) -> Path:
    Image.fromarray(_rgb8(400, 400)).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _animated(path: Path, fmt: str) -> Path:
    frames = [Image.fromarray(_rgb8(seed=i)) for i in range(3)]
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100)
    return path


def _huge_png(path: Path) -> Path:
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
    path.write_bytes(data + _png_chunk(b"IEND", b""))
    return path


def _corrupt_png(path: Path) -> Path:
    Image.fromarray(_rgb8()).save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 2 : start + 40] = bytes(38)  # zlib stream garbage, CRC wrong
    path.write_bytes(bytes(data))
    return path


BAD_INPUTS = {
    "missing": (lambda p: p / "nope.png", "does not exist"),
    "folder": (lambda p: p, "is a folder"),
    "empty": (lambda p: _write(p / "e.png", b""), "empty"),
    "text": (
        lambda p: _write(p / "t.png", b"hello"),
        "not an image artcloak can read",
    ),
    "truncated_png": (lambda p: _truncated(p / "t.png", "PNG"), "incomplete"),
    "truncated_jpeg": (lambda p: _truncated(p / "t.jpg", "JPEG"), "incomplete"),
    "corrupt_png": (lambda p: _corrupt_png(p / "c.png"), "damaged"),
    "bomb": (
        lambda p: _huge_png(p / "h.png"),
        "400 million pixels, more than artcloak's limit of 120 million pixels",
    ),
    "tiny": (
        lambda p: _saved(p / "s.png", Image.new("RGB", (1, 1))),
        "only 1 x 1 pixels",
    ),
    "apng": (lambda p: _animated(p / "a.png", "PNG"), "animated (3 frames)"),
    "animated_webp": (lambda p: _animated(p / "a.webp", "WEBP"), "animated (3 frames)"),
    "gif": (
        lambda p: _animated(p / "a.gif", "GIF"),
        "in GIF format, which artcloak does not support",
    ),
    "ico": (
        lambda p: _saved(p / "a.ico", Image.fromarray(_rgb8(64, 64))),
        "in ICO (icon) format",
    ),
    "psd": (lambda p: _write(p / "a.psd", b"8BPS" + bytes(40)), "PSD"),
    "float_tiff": (
        lambda p: _saved(p / "f.tif", Image.new("F", (40, 40))),
        "32-bit floating-point",
    ),
    "float_rgb_tiff": (
        lambda p: _float_rgb_tiff(p / "f.tif"),
        "is a 32-bit floating-point TIFF, which artcloak cannot read",
    ),
    "int32_tiff": (
        lambda p: _saved(p / "i.tif", Image.new("I", (40, 40))),
        "32-bit integer",
    ),
    "pages": (lambda p: _animated(p / "m.tif", "TIFF"), "has 3 pages"),
}


def _float_rgb_tiff(path: Path) -> Path:
    """A minimal uncompressed RGB float32 TIFF (Pillow cannot open these)."""
    w = h = 40
    pixels = bytes(w * h * 12)
    entries = [
        (256, 3, 1, w),
        (257, 3, 1, h),
        (258, 3, 3, 0),  # patched to an offset below
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, 0),
        (277, 3, 1, 3),
        (278, 3, 1, h),
        (279, 4, 1, len(pixels)),
        (339, 3, 3, 0),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    bits_at, fmt_at = 8 + ifd_size, 8 + ifd_size + 6
    data_at = fmt_at + 6
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = {258: bits_at, 273: data_at, 339: fmt_at}.get(tag, value)
        packed = struct.pack(
            "<HHIH2x" if kind == 3 and count == 1 else "<HHII", tag, kind, count, value
        )
        out += packed
    out += struct.pack("<I", 0) + struct.pack("<3H", 32, 32, 32) + struct.pack("<3H", 3, 3, 3)
    path.write_bytes(out + pixels)
    return path


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_clear_error(tmp_path: Path, case: str) -> None:
    make, expected = BAD_INPUTS[case]
    path = make(tmp_path)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(InputImageError) as caught:
        load_image(path)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and message.endswith(".")
    if case not in ("folder",):
        assert str(path) in message
    assert sorted(tmp_path.iterdir()) == before


def test_unsupported_format_lists_supported_ones(tmp_path: Path) -> None:
    path = _animated(tmp_path / "a.gif", "GIF")
    with pytest.raises(InputImageError, match="PNG, JPEG, WebP, TIFF or BMP"):
        load_image(path)


def test_pixel_limit_checked_on_header_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(_rgb8()).save(tmp_path / "a.png")
    monkeypatch.setattr(images.read, "MAX_PIXELS", 1000)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded a bomb"))
    with pytest.raises(InputImageError, match="limit"):
        load_image(tmp_path / "a.png")


def test_pillow_decompression_bomb_becomes_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(_rgb8()).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow raises above 2x this
    with pytest.raises(InputImageError, match="limit"):
        load_image(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", H * W)  # Pillow only warns: our limit rules
    assert load_image(tmp_path / "a.png").size == (W, H)


def test_truncated_refused_even_if_pillow_told_to_allow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(InputImageError, match="incomplete"):
        load_image(_truncated(tmp_path / "t.png", "PNG"))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the host's setting is restored


def test_16bit_tiff_with_separate_planes_refused(tmp_path: Path) -> None:
    like = _like(_samples16(3), bit_depth=16)
    write_image(tmp_path / "a.tif", like, like.colour_samples())
    data = bytearray((tmp_path / "a.tif").read_bytes())
    count = struct.unpack_from("<H", data, 8)[0]
    for entry in range(10, 10 + 12 * count, 12):
        if struct.unpack_from("<H", data, entry)[0] == 284:
            struct.pack_into("<H", data, entry + 8, 2)
    (tmp_path / "a.tif").write_bytes(bytes(data))
    with pytest.raises(InputImageError, match="separate colour planes"):
        load_image(tmp_path / "a.tif")


# --------------------------------------------------------------------------- output paths


def test_format_for_path() -> None:
    assert format_for_path(Path("a.PNG")) == "PNG"
    assert format_for_path(Path("a.jpg")) == format_for_path(Path("a.jpeg")) == "JPEG"
    assert format_for_path(Path("a.webp")) == "WEBP"
    assert format_for_path(Path("a.tif")) == format_for_path(Path("a.TIFF")) == "TIFF"
    assert format_for_path(Path("a.bmp")) == "BMP"
    with pytest.raises(OutputError, match=r"\.png.*\.bmp"):
        format_for_path(Path("a.gif"))


def test_check_output_path(tmp_path: Path) -> None:
    source = tmp_path / "art.png"
    Image.fromarray(_rgb8()).save(source)
    for same in (source, tmp_path / "sub" / ".." / "art.png"):
        with pytest.raises(OutputError, match="original"):
            check_output_path(source, same, overwrite=True)
    (tmp_path / "link.png").symlink_to(source)
    with pytest.raises(OutputError, match="original"):
        check_output_path(source, tmp_path / "link.png", overwrite=True)
    os.link(source, tmp_path / "hard.png")
    with pytest.raises(OutputError, match="original"):
        check_output_path(source, tmp_path / "hard.png", overwrite=True)

    existing = tmp_path / "old.png"
    existing.write_bytes(b"x")
    with pytest.raises(OutputError, match="already exists"):
        check_output_path(source, existing, overwrite=False)
    check_output_path(source, existing, overwrite=True)
    check_output_path(None, tmp_path / "new.png", overwrite=False)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(source, tmp_path / "no" / "x.png", overwrite=False)
    with pytest.raises(OutputError, match="extension"):
        check_output_path(source, tmp_path / "x.gif", overwrite=False)


def _transparency_cases(tmp_path: Path) -> list[Path]:
    """Files with and without transparency, in each way an image can have it."""
    rgb = Image.fromarray(_rgb8())
    rgba = Image.fromarray(np.dstack([_rgb8(), _rgb8(seed=3)[..., 0]]))
    grey = rgb.convert("L")
    saved = {
        "rgb.png": rgb, "rgba.png": rgba, "la.png": rgba.convert("LA"), "grey.png": grey,
        "p.png": rgb.quantize(16), "rgba.webp": rgba, "rgba.tif": rgba, "rgb.jpg": rgb,
        "opaque.webp": rgb.convert("RGBA"),  # libwebp drops an alpha that is all opaque
    }  # fmt: skip
    for name, image in saved.items():
        image.save(tmp_path / name)
    rgb.quantize(16).save(tmp_path / "p-keyed.png", transparency=0)
    rgb.save(tmp_path / "rgb-keyed.png", transparency=(0, 0, 0))
    grey.save(tmp_path / "grey-keyed.png", transparency=0)
    cv2.imwrite(str(tmp_path / "rgba16.png"), _samples16(3)[..., ::-1][..., [0, 1, 2, 0]])
    cv2.imwrite(str(tmp_path / "rgb16.png"), _samples16(3)[..., ::-1])
    return sorted(tmp_path.iterdir())


def test_transparency_from_the_header_matches_the_loaded_image(tmp_path: Path) -> None:
    cases = _transparency_cases(tmp_path)
    found = {path.name: images.has_transparency(path) for path in cases}
    assert found == {path.name: load_image(path).alpha is not None for path in cases}
    transparent = {name for name, yes in found.items() if yes}
    assert transparent == {"grey-keyed.png", "la.png", "p-keyed.png", "rgb-keyed.png",
                           "rgba.png", "rgba.tif", "rgba.webp", "rgba16.png"}  # fmt: skip
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert images.has_transparency(tmp_path / "broken.png") is False  # the loader says why


def test_an_output_that_cannot_store_the_image_is_refused_up_front(tmp_path: Path) -> None:
    rgba, rgb = tmp_path / "rgba.png", tmp_path / "rgb.png"
    Image.fromarray(np.dstack([_rgb8(), _rgb8()[..., 0]])).save(rgba)
    Image.fromarray(_rgb8()).save(rgb)
    for fmt in ("jpeg", "JPG", "JPEG"):
        with pytest.raises(OutputError, match="rgba.png has transparency.*PNG or WebP"):
            images.check_output_fits(rgba, fmt)
    for fmt in ("png", "webp", "tiff", "bmp"):
        images.check_output_fits(rgba, fmt)
    images.check_output_fits(rgb, "jpeg")
    with pytest.raises(OutputError, match="transparency"):
        check_output_path(rgba, tmp_path / "out.jpg", overwrite=False)
    with pytest.raises(OutputError, match="transparency"):
        check_output_path(rgba, tmp_path / "out.png", overwrite=False, format="jpeg")
    check_output_path(rgba, tmp_path / "out.jpg", overwrite=False, format="png")
    check_output_path(rgb, tmp_path / "out.jpg", overwrite=False)


def test_write_refuses_source_unknown_extension_and_bad_samples(tmp_path: Path) -> None:
    source = tmp_path / "art.png"
    Image.fromarray(_rgb8()).save(source)
    original = source.read_bytes()
    img = load_image(source)
    with pytest.raises(OutputError, match="original"):
        write_image(source, img, img.colour_samples())
    assert source.read_bytes() == original
    with pytest.raises(OutputError, match="PNG, JPEG, WebP, TIFF or BMP|.png"):
        write_image(tmp_path / "x.gif", img, img.colour_samples())
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", img, img.colour_samples().astype(np.uint16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art.png"]
    write_image(tmp_path / "named.out", img, img.colour_samples(), format="tif")
    assert Image.open(tmp_path / "named.out").format == "TIFF"


# --------------------------------------------------------------------------- atomic writes


def test_failed_rename_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    like = _like(_rgb8())
    target = tmp_path / "out.png"
    target.write_bytes(b"previous")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError, match="disk is full") as caught:
        write_image(target, like, like.colour_samples())
    assert str(target) in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert target.read_bytes() == b"previous"


def test_failing_encoder_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(f, out) -> None:
        f.write(b"partial")
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setitem(images.write._ENCODERS, "PNG", broken)
    like = _like(_rgb8())
    with pytest.raises(OutputError, match="permission denied"):
        write_image(tmp_path / "out.png", like, like.colour_samples())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    like = _like(_rgb8())
    try:
        with pytest.raises(OutputError, match="permission denied"):
            write_image(folder / "out.png", like, like.colour_samples())
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_missing_folder_on_write(tmp_path: Path) -> None:
    like = _like(_rgb8())
    with pytest.raises(OutputError, match="folder does not exist"):
        write_image(tmp_path / "no" / "out.png", like, like.colour_samples())


@pytest.mark.parametrize("depth", [8, 16])
def test_tiff_orientation_applied_once(tmp_path: Path, depth: int) -> None:
    source = _samples16(4) if depth == 16 else np.dstack([_rgb8(), _rgb8(seed=6)[..., 0]])
    like = _like(source[..., :3], source[..., 3], bit_depth=depth, exif=_exif(6).tobytes())
    write_image(tmp_path / "a.tif", like, like.colour_samples())
    assert Image.open(tmp_path / "a.tif").getexif()[0x0112] == 6
    img = load_image(tmp_path / "a.tif")
    upright = np.rot90(source, -1)
    assert np.array_equal(img.colour_samples(), upright[..., :3])
    assert np.array_equal(img.alpha, upright[..., 3])
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[0x0112] == 1 and exif[0x013B] == "Ann"


@pytest.mark.parametrize("depth", [8, 16])
def test_tiff_grey_alpha_round_trip(tmp_path: Path, depth: int) -> None:
    source = _samples16(2) if depth == 16 else np.dstack([_rgb8()[..., 0], _rgb8(seed=8)[..., 0]])
    like = _like(source[..., :1], source[..., 1], bit_depth=depth)
    img, _ = _round_trip(tmp_path, like, "a.tif")
    assert img.bit_depth == depth
    assert np.array_equal(img.colour_samples(), np.repeat(source[..., :1], 3, axis=2))
    assert np.array_equal(img.alpha, source[..., 1])


def test_png_16bit_transparent_colour_becomes_alpha(tmp_path: Path) -> None:
    samples = _samples16(3)
    key = samples[3, 4]
    path = _cv2_write(tmp_path / "a.png", samples)
    _add_png_chunks(path, _png_chunk(b"tRNS", struct.pack(">3H", *key)))
    img = load_image(path)
    assert img.bit_depth == 16 and np.array_equal(img.colour_samples(), samples)
    expected = np.where(np.all(samples == key, axis=2), 0, 65535)
    assert np.array_equal(img.alpha, expected) and img.alpha.dtype == np.uint16
    assert img.notices == ["The image's transparent colour was turned into an alpha channel."]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_special_file_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(InputImageError, match="not a regular file"):
        load_image(tmp_path / "pipe.png")
