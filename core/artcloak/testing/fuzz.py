"""A small seeded fuzzer for image files: valid seeds made with Pillow, and malformed files
derived from them by truncation, bit flips, corrupted chunk lengths and lying headers.

Every mutant is reproducible from ``(FUZZ_SEED, index)`` alone, and carries a recipe (seed
image, mutation kind, the bytes changed) so that a failure can be rebuilt and read.
Used by tests/test_fuzz.py (a few hundred files) and bench/fuzz.py (the long run).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Fixed so that CI and the bench see the same files run after run: a failure found once
# is found again, and its recipe (seed + index) rebuilds the exact bytes. Change it only
# to explore new files, never to make a failing run pass.
FUZZ_SEED = 20260532

KINDS = ("truncate", "bitflip", "chunk_length", "lying_header")

_SIZE = (48, 40)  # above artcloak's 32-pixel minimum, small enough to decode in a blink


@dataclass(frozen=True)
class Mutant:
    index: int
    seed: str  # which valid seed image it came from, e.g. "png-rgb16"
    kind: str  # one of KINDS
    detail: str  # what was changed, e.g. "IHDR width=2147483647"
    data: bytes

    @property
    def suffix(self) -> str:
        return "." + self.seed.split("-")[0]

    @property
    def recipe(self) -> str:
        return f"#{self.index} {self.seed} {self.kind}: {self.detail} (seed {FUZZ_SEED})"


def _pixels(channels: int, dtype: type = np.uint8) -> np.ndarray:
    """A smooth gradient with some noise: compresses like a picture, not like noise."""
    width, height = _SIZE
    rng = np.random.default_rng(FUZZ_SEED)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 5 + y * 3 + 40 * c) % 256 for c in range(channels)], axis=-1)
    noisy = base + rng.integers(0, 16, base.shape)
    top = np.iinfo(dtype).max
    return (noisy.clip(0, 255) * (top // 255)).astype(dtype)


def _icc() -> bytes:
    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[24:36] = b"\x07\xea\x00\x01\x00\x01" + bytes(6)  # creation date: fixed, not now
    return bytes(profile)


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90
    exif[0x0131] = "artcloak fuzz"  # Software
    return exif.tobytes()


def make_seeds() -> dict[str, bytes]:
    """Valid files in every layout the reader accepts (name: "<format>-<layout>")."""
    rgb, rgba, grey = (Image.fromarray(_pixels(c).squeeze()) for c in (3, 4, 1))
    icc, exif = _icc(), _exif()
    palette = rgb.quantize(16)
    palette.info["transparency"] = 0
    cmyk = rgb.convert("CMYK")
    grey16 = Image.fromarray(_pixels(1, np.uint16)[..., 0])

    def save(im: Image.Image, fmt: str, **options: object) -> bytes:
        buffer = io.BytesIO()
        im.save(buffer, fmt, **options)
        return buffer.getvalue()

    def cv2_encode(ext: str, channels: int) -> bytes:
        import cv2

        ok, encoded = cv2.imencode(ext, _pixels(channels, np.uint16))
        assert ok
        return encoded.tobytes()

    return {
        "png-rgb": save(rgb, "PNG", icc_profile=icc, exif=exif),
        "png-rgba": save(rgba, "PNG"),
        "png-grey": save(grey, "PNG"),
        "png-palette": save(palette, "PNG", transparency=0),
        "png-grey16": save(grey16, "PNG"),
        "png-rgb16": cv2_encode(".png", 3),
        "png-rgba16": cv2_encode(".png", 4),
        "jpeg-rgb": save(rgb, "JPEG", icc_profile=icc, exif=exif, quality=90),
        "jpeg-grey": save(grey, "JPEG"),
        "jpeg-cmyk": save(cmyk, "JPEG"),
        "jpeg-progressive": save(rgb, "JPEG", progressive=True, subsampling=2),
        "webp-rgb": save(rgb, "WEBP", icc_profile=icc, exif=exif, quality=80),
        "webp-rgba": save(rgba, "WEBP", lossless=True),
        "tiff-rgb": save(rgb, "TIFF", icc_profile=icc, exif=exif),
        "tiff-rgba": save(rgba, "TIFF", compression="tiff_lzw"),
        "tiff-grey": save(grey, "TIFF", compression="tiff_deflate"),
        "tiff-grey16": save(grey16, "TIFF"),
        "tiff-rgb16": cv2_encode(".tiff", 3),
        "tiff-palette": save(palette, "TIFF"),
        "tiff-cmyk": save(cmyk, "TIFF"),
    }


# --- where the structure is: (offset, size) of the length-like fields of each format ---


def _png_chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, data length) of each PNG chunk."""
    chunks, at = [], 8
    while at + 8 <= len(data):
        length = struct.unpack_from(">I", data, at)[0]
        chunks.append((at, data[at + 4 : at + 8], length))
        at += 12 + length
    return chunks


def _jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(offset, marker) of each length-carrying JPEG segment before the scan data."""
    segments, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        segments.append((at, marker))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        at += 2 + struct.unpack_from(">H", data, at + 2)[0]
    return segments


def _tiff_entries(data: bytes) -> tuple[str, int, list[tuple[int, int]]]:
    """Byte order, first IFD offset, and (offset, tag) of each entry of the first IFD."""
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", data, 4)[0]
    count = struct.unpack_from(order + "H", data, ifd)[0]
    entries = [(ifd + 2 + 12 * i, 0) for i in range(count)]
    return order, ifd, [(at, struct.unpack_from(order + "H", data, at)[0]) for at, _ in entries]


_LIES = (0, 1, 31, 65535, 65536, 0x7FFFFFFF, 0xFFFFFFFF)  # 32-bit sizes a header may claim
_LIES16 = (0, 1, 31, 0xFFFF)


def _put(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def _fix_png_crc(data: bytes, at: int, length: int) -> bytes:
    crc = zlib.crc32(data[at + 4 : at + 8 + length]) & 0xFFFFFFFF
    return _put(data, at + 8 + length, ">I", crc)


# --- the mutations: each takes (rng, seed name, seed bytes) and gives (detail, new bytes) ---

Mutation = Callable[[random.Random, str, bytes], tuple[str, bytes]]


def _truncate(rng: random.Random, name: str, data: bytes) -> tuple[str, bytes]:
    # Half the cuts near the end (a download cut short), half anywhere (header-only files).
    cut = rng.randrange(max(1, len(data) - 64), len(data)) if rng.random() < 0.5 else None
    cut = rng.randrange(1, len(data)) if cut is None else cut
    return f"cut to {cut} of {len(data)} bytes", data[:cut]


def _bitflip(rng: random.Random, name: str, data: bytes) -> tuple[str, bytes]:
    out = bytearray(data)
    # Headers hold most of the structure: aim a third of the flips at the first 128 bytes.
    flips = []
    for _ in range(rng.randint(1, 8)):
        span = 128 if rng.random() < 0.33 else len(out)
        at, bit = rng.randrange(min(span, len(out))), rng.randrange(8)
        out[at] ^= 1 << bit
        flips.append(f"{at}:{bit}")
    return "flipped byte:bit " + ",".join(flips), bytes(out)


def _chunk_length(rng: random.Random, name: str, data: bytes) -> tuple[str, bytes]:
    fmt = name.split("-")[0]
    if fmt == "png":
        at, kind, length = rng.choice(_png_chunks(data))
        label = kind.decode("latin-1")
        if rng.random() < 0.25:
            crc = rng.getrandbits(32)
            return f"{label} CRC={crc:#x}", _put(data, at + 8 + length, ">I", crc)
        new = rng.choice([*_LIES, length + rng.randint(1, 64), max(0, length - rng.randint(1, 8))])
        return f"{label} length {length}->{new}", _put(data, at, ">I", new)
    if fmt == "jpeg":
        at, marker = rng.choice(_jpeg_segments(data))
        old = struct.unpack_from(">H", data, at + 2)[0]
        new = rng.choice([*_LIES16, 2, old + rng.randint(1, 64), max(0, old - rng.randint(1, 8))])
        return f"segment FF{marker:02X} length {old}->{new}", _put(data, at + 2, ">H", new)
    if fmt == "tiff":
        order, ifd, entries = _tiff_entries(data)
        choice = rng.randrange(3)
        if choice == 0:
            new = rng.choice([*_LIES, len(data) + rng.randint(0, 64), rng.randrange(len(data))])
            return f"IFD offset {ifd}->{new}", _put(data, 4, order + "I", new)
        if choice == 1:
            new = rng.choice([0, 1, 0xFFFF, len(entries) + rng.randint(1, 8)])
            return f"IFD entry count {len(entries)}->{new}", _put(data, ifd, order + "H", new)
        at, tag = rng.choice(entries)
        field, offset = rng.choice([("count", 4), ("value/offset", 8)])
        new = rng.choice([*_LIES, len(data) + rng.randint(0, 64)])
        return f"tag {tag} {field}->{new}", _put(data, at + offset, order + "I", new)
    # WebP: the RIFF size at 4, the first chunk's size at 16
    at = rng.choice([4, 16])
    old = struct.unpack_from("<I", data, at)[0]
    new = rng.choice([*_LIES, old + rng.randint(1, 64), max(0, old - rng.randint(1, 8))])
    what = "RIFF size" if at == 4 else data[12:16].decode("latin-1") + " size"
    return f"{what} {old}->{new}", _put(data, at, "<I", new)


def _lying_header(rng: random.Random, name: str, data: bytes) -> tuple[str, bytes]:
    fmt = name.split("-")[0]
    if fmt == "png":  # IHDR is the first chunk: width, height, depth, colour type
        field = rng.choice(["width", "height", "both", "depth", "colour type"])
        out = data
        if field in ("width", "height", "both"):
            value = rng.choice(_LIES[1:] + (rng.randint(40_000, 200_000),))
            for offset in {"width": (16,), "height": (20,), "both": (16, 20)}[field]:
                out = _put(out, offset, ">I", value)
        else:
            value = rng.choice([1, 2, 4, 8, 16] if field == "depth" else [0, 2, 3, 4, 6, 7])
            out = _put(out, 24 if field == "depth" else 25, ">B", value)
        return f"IHDR {field}={value} (CRC fixed)", _fix_png_crc(out, 8, 13)
    if fmt == "jpeg":
        sofs = [at for at, marker in _jpeg_segments(data) if marker in (0xC0, 0xC1, 0xC2)]
        at = sofs[0]  # SOF: length, precision, height, width
        field = rng.choice(["height", "width", "precision"])
        if field == "precision":
            value = rng.choice([0, 12, 16, 255])
            return f"SOF precision={value}", _put(data, at + 4, ">B", value)
        value = rng.choice(_LIES16 + (rng.randint(12_000, 65_000),))
        return f"SOF {field}={value}", _put(data, at + (5 if field == "height" else 7), ">H", value)
    if fmt == "tiff":
        order, _, entries = _tiff_entries(data)
        tags = {256: "width", 257: "height", 258: "bits", 277: "samples", 262: "photometric"}
        at, tag = rng.choice([(at, tag) for at, tag in entries if tag in tags])
        kind = struct.unpack_from(order + "H", data, at + 2)[0]
        value = rng.choice(
            _LIES16 + (rng.randint(12_000, 65_000),)
            if tag in (256, 257)
            else (0, 1, 3, 5, 7, 32, 64, 0xFFFF)
        )
        if kind == 4:  # LONG: the value fills all four bytes
            return f"tag {tags[tag]}={value}", _put(data, at + 8, order + "I", value)
        return f"tag {tags[tag]}={value}", _put(data, at + 8, order + "H", value)
    # WebP: VP8X canvas (24-bit minus one), VP8L (14-bit minus one), VP8 frame (14-bit)
    chunk = data[12:16]
    value = rng.choice([0, 1, 0x3FFF, rng.randint(5_000, 16_000)])
    if chunk == b"VP8X":
        big = rng.choice([0, 0xFFFFFF, rng.randint(10_000, 0xFFFFFF)])
        out = bytearray(data)
        out[24:27] = big.to_bytes(3, "little")
        out[27:30] = big.to_bytes(3, "little")
        return f"VP8X canvas={big + 1}x{big + 1}", bytes(out)
    if chunk == b"VP8L":
        bits = struct.unpack_from("<I", data, 21)[0]
        lie = (bits & ~0x3FFF) | (value & 0x3FFF)
        return f"VP8L width={value + 1}", _put(data, 21, "<I", lie)
    return f"VP8 width={value}", _put(data, 26, "<H", value & 0x3FFF)


_MUTATIONS: dict[str, Mutation] = {
    "truncate": _truncate,
    "bitflip": _bitflip,
    "chunk_length": _chunk_length,
    "lying_header": _lying_header,
}


def mutant(index: int, seeds: dict[str, bytes]) -> Mutant:
    """The index-th malformed file: seeds and kinds in rotation, details from a seeded RNG."""
    names = sorted(seeds)
    name = names[index % len(names)]
    kind = KINDS[(index // len(names)) % len(KINDS)]
    rng = random.Random(FUZZ_SEED * 1_000_003 + index)
    detail, data = _MUTATIONS[kind](rng, name, seeds[name])
    while data == seeds[name]:  # a lie that happened to tell the truth: draw again
        detail, data = _MUTATIONS[kind](rng, name, seeds[name])
    return Mutant(index, name, kind, detail, data)


def mutants(count: int, seeds: dict[str, bytes] | None = None) -> Iterator[Mutant]:
    seeds = make_seeds() if seeds is None else seeds
    for index in range(count):
        yield mutant(index, seeds)
