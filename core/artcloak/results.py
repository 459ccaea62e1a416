"""Typed results (standard library only): what a protection made, as hosts read it.

``TargetDescription`` says how artcloak made or chose a target; ``Report`` is everything the
JSON report beside an output says. Hosts read their attributes; ``as_dict()`` is the JSON.
Report layout version 2: the target's facts in the fixed order of ``TargetDescription``'s
fields (version 1 wrote them in the order they were found); otherwise the same keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass

REPORT_VERSION = 2


@dataclass(frozen=True)
class TargetDescription:
    """How a target was made or chosen. ``kind`` is one of: ``texture``, ``image`` (a style
    image), ``images`` (pixels a host gave), ``anchors`` (anchor files), ``generated style``,
    ``generated anchors``; the other fields are set where they apply."""

    kind: str
    style: str | None = None  # the style or texture used
    instead_of: str | None = None  # the style asked for, where a texture stands in for it
    fallback: str | None = None  # why a texture stands in
    chosen_by: str | None = None  # how ``auto`` chose
    distances: dict[str, float] | None = None  # auto: each candidate's distance
    concept: str | None = None
    prompt: str | None = None
    count: int | None = None  # images given or generated
    seeds: list[int] | None = None
    anchors: list[str] | None = None
    model: str | None = None  # the diffusion model that generated it
    pipeline: str | None = None
    strength: float | None = None
    guidance: float | None = None
    steps: int | None = None
    seed: int | None = None
    size: list[int] | None = None  # generation size (width, height)

    def as_dict(self) -> dict:
        return {
            item.name: value
            for item in fields(self)
            if (value := getattr(self, item.name)) is not None
        }


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    bit_depth: int


@dataclass
class Report:
    """What the report of one protected file says; ``sections``: extra top-level sections a
    host adds (a batch's ``batch`` section)."""

    artcloak: str  # the version that wrote it
    created: str  # ISO 8601, UTC
    source: str
    output: str
    output_format: str
    image: ImageFacts
    target: TargetDescription
    settings: dict  # every protection setting (report.settings_section)
    models: dict  # encoders, device, precision, LPIPS
    keep_mask: str | None
    working_size: list[int]
    measured: dict  # lpips, linf_255, psnr_db, within_budget, perturbation_kept, ...
    latent: list[dict]  # per encoder: how far the model's view moved toward the target
    encoder_passes: int
    seconds: float
    notices: list[str] = field(default_factory=list)
    # Lossy outputs: ``measured`` and ``latent`` are the file's as written, and these the
    # perturbation's before encoding ({measured, latent}); see engine/as_written.py.
    before_encoding: dict | None = None
    sections: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = {
            "artcloak": self.artcloak,
            "report_version": REPORT_VERSION,
            "created": self.created,
        }
        for item in fields(self):
            if item.name in ("artcloak", "created", "sections"):
                continue
            value = getattr(self, item.name)
            if item.name == "before_encoding" and value is None:
                continue
            data[item.name] = _as_json(value)
        return {**data, **self.sections}


def _as_json(value: object) -> object:
    if isinstance(value, TargetDescription):
        return value.as_dict()  # without the facts that do not apply
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value
