"""Shipped diffusers config folders for loading single checkpoint files offline.

``from_single_file`` needs the pipeline's config folder (model_index.json, each component's
config, the tokenizers). artcloak ships them as data (configs/pipelines.json, and OpenAI
CLIP's BPE merges, from which the tokenizer vocabulary is rebuilt exactly) and writes the
folder of a family once into its cache.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import secrets
import shutil
from importlib import resources
from pathlib import Path

from ...errors import SettingsError
from .cache import cache_folder

PIPELINE_FAMILIES = ("sd1", "sd2", "sdxl")
CONFIGS_VERSION = 1


@functools.cache
def _shipped() -> dict:
    text = resources.files("artcloak").joinpath("configs", "pipelines.json").read_text("utf-8")
    return json.loads(text)


def _byte_symbols() -> list[str]:
    """CLIP's byte -> unicode symbols, in its vocabulary order (printable bytes first)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    others = [byte for byte in range(256) if byte not in printable]
    return [chr(byte) for byte in printable] + [chr(256 + index) for index in range(len(others))]


def clip_tokenizer_files() -> tuple[str, str]:
    """(vocab.json text, merges.txt text) of the CLIP tokenizer SD 1.x/2.x/XL use."""
    data = resources.files("artcloak").joinpath("configs", "clip-merges.txt.gz").read_bytes()
    merges = gzip.decompress(data).decode("utf-8")
    pairs = [line for line in merges.split("\n")[1:] if line]
    symbols = _byte_symbols()
    tokens = [*symbols, *(symbol + "</w>" for symbol in symbols)]
    tokens += ["".join(pair.split()) for pair in pairs] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    return json.dumps(vocab, ensure_ascii=False), merges


def pipeline_config_folder(family: str) -> Path:
    """The diffusers config folder of ``family`` (sd1, sd2, sdxl), written on first use."""
    if family not in PIPELINE_FAMILIES:
        raise SettingsError(
            f"Unknown pipeline family '{family}'; use one of {', '.join(PIPELINE_FAMILIES)}."
        )
    folder = cache_folder().parent / "pipeline-configs" / f"{family}-v{CONFIGS_VERSION}"
    if (folder / "model_index.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = folder.parent / f".{folder.name}.{secrets.token_hex(4)}.tmp"
    try:
        _write_folder(temp, family)
        try:
            os.replace(temp, folder)
        except OSError:  # another process wrote it first
            if not (folder / "model_index.json").is_file():
                raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(temp)
    return folder


def _write_folder(folder: Path, family: str) -> None:
    from ..encoders import shipped_config

    vocab, merges = clip_tokenizer_files()
    for relative, content in _shipped()[family].items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):  # the name of a shipped VAE config
            content = shipped_config(content)
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        if path.parent.name.startswith("tokenizer"):
            (path.parent / "vocab.json").write_text(vocab, encoding="utf-8")
            (path.parent / "merges.txt").write_text(merges, encoding="utf-8")
