"""Pieces of one-sentence messages: short quotes of errors, how weights do not fit a model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _short(error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def weights_mismatch(expected: Mapping[str, tuple], weights: Mapping[str, Any]) -> str | None:
    """None when ``weights`` fit the shapes ``expected``, else how they do not, for a message:
    "(2 missing, 0 unexpected, 1 of the wrong shape, e.g. KEY)"."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(
        k for k in set(expected) & set(weights) if tuple(weights[k].shape) != expected[k]
    )
    if not (missing or unexpected or wrong):
        return None
    example = (missing or unexpected or wrong)[0]
    return (f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} of the wrong "
            f"shape, e.g. {example})")  # fmt: skip
