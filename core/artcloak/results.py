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
class BudgetFigures:
    """The budget a protected image used, measured against its original."""

    lpips: float
    linf_255: float  # the largest change of a sample, in 0-255 units
    psnr_db: float | None  # None where nothing changed (infinite)
    within_budget: bool
    lpips_measured_at: tuple[int, int] | None = None  # (w, h), where not at full size
    perturbation_kept: float | None = None  # share of the optimised perturbation kept

    def as_dict(self) -> dict:
        data = {"lpips": self.lpips, "linf_255": self.linf_255, "psnr_db": self.psnr_db}
        if self.lpips_measured_at is not None:
            data["lpips_measured_at"] = list(self.lpips_measured_at)
        data["within_budget"] = self.within_budget
        if self.perturbation_kept is not None:
            data["perturbation_kept"] = self.perturbation_kept
        return data


@dataclass(frozen=True)
class LatentShift:
    """How far one encoder's view of an image moved: relative to the latent's size and,
    where there is a target, as the share of the distance to the target's latent closed."""

    encoder: str
    relative_shift: float
    distance_closed: float | None = None

    def as_dict(self) -> dict:
        data = {"encoder": self.encoder, "relative_shift": self.relative_shift}
        if self.distance_closed is not None:
            data["distance_closed"] = self.distance_closed
        return data


@dataclass(frozen=True)
class BeforeEncoding:
    """A lossy output's perturbation as protected, before JPEG or WebP changed it again."""

    measured: BudgetFigures
    latent: list[LatentShift]

    def as_dict(self) -> dict:
        return {"measured": self.measured.as_dict(), "latent": [s.as_dict() for s in self.latent]}


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
    measured: BudgetFigures
    latent: list[LatentShift]  # per encoder: how far the model's view moved toward the target
    encoder_passes: int
    seconds: float
    notices: list[str] = field(default_factory=list)
    # Lossy outputs: ``measured`` and ``latent`` are the file's as written, and these the
    # perturbation's before encoding; see engine/as_written.py.
    before_encoding: BeforeEncoding | None = None
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
    if hasattr(value, "as_dict"):
        return value.as_dict()  # its own layout, without the facts that do not apply
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value
