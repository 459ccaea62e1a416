"""The catalogue of target styles for cloak: a prompt for diffusers, a texture without it.

With a diffusion model, a catalogue style re-renders the artwork itself in that style
(img2img, as Glaze does), so the target shares the artwork's content. Without one, the
style's built-in texture stands in, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"  # the style measured farthest from the whole batch (one artist, one target)
AUTO_PER_IMAGE = "auto-per-image"  # the farthest style for each artwork on its own
AUTO_CHOICES = (AUTO, AUTO_PER_IMAGE)

NEGATIVE_PROMPT = "photograph, photorealistic, blurry, low quality, watermark, text, signature"


@dataclass(frozen=True)
class CatalogueStyle:
    """One target style: its name, the img2img prompt, the texture used without diffusers."""

    name: str
    prompt: str
    texture: str
    description: str


CATALOGUE: tuple[CatalogueStyle, ...] = (
    CatalogueStyle(
        "cubism",
        "a cubist painting, fragmented geometric planes, multiple viewpoints, "
        "in the style of Picasso and Braque",
        "mosaic",
        "fragmented geometric planes",
    ),
    CatalogueStyle(
        "impressionism",
        "an impressionist oil painting, loose visible brush strokes, dappled light, "
        "in the style of Claude Monet",
        "marble",
        "loose brush strokes and dappled light",
    ),
    CatalogueStyle(
        "van-gogh",
        "a post-impressionist painting with thick swirling impasto brush strokes, "
        "in the style of Vincent van Gogh",
        "marble",
        "thick swirling impasto",
    ),
    CatalogueStyle(
        "ukiyo-e",
        "a ukiyo-e Japanese woodblock print, flat colours, bold outlines, in the style of Hokusai",
        "stripes",
        "woodblock print, flat colours, bold outlines",
    ),
    CatalogueStyle(
        "pixel-art",
        "pixel art, 16-bit video game graphics, limited palette, large square pixels",
        "pixels",
        "large square pixels, limited palette",
    ),
    CatalogueStyle(
        "pop-art",
        "pop art, halftone dots, bold primary colours, thick black outlines, "
        "in the style of Roy Lichtenstein",
        "halftone",
        "halftone dots and primary colours",
    ),
    CatalogueStyle(
        "stained-glass",
        "a stained glass window, bright coloured glass pieces, thick lead lines",
        "mosaic",
        "coloured glass pieces and lead lines",
    ),
    CatalogueStyle(
        "op-art",
        "op art, black and white optical illusion, wavy concentric lines, "
        "in the style of Bridget Riley",
        "stripes",
        "black and white optical waves",
    ),
    CatalogueStyle(
        "tapestry",
        "a woven medieval tapestry, textile texture, visible threads, muted colours",
        "weave",
        "woven threads",
    ),
    CatalogueStyle(
        "abstract-expressionism",
        "an abstract expressionist drip painting, splattered paint, energetic gestures, "
        "in the style of Jackson Pollock",
        "marble",
        "splattered paint and gestures",
    ),
)

_BY_NAME = {style.name: style for style in CATALOGUE}


def catalogue_style(name: str | None) -> CatalogueStyle | None:
    """The catalogue entry of that name (case-insensitive, '_' or ' ' for '-'), or None."""
    if not name:
        return None
    return _BY_NAME.get(name.strip().lower().replace("_", "-").replace(" ", "-"))


def catalogue_names() -> list[str]:
    return [style.name for style in CATALOGUE]


def anchor_prompt(concept: str) -> str:
    """Nightshade's prompt for a concept anchor."""
    concept = concept.strip()
    article = "an" if concept[:1].lower() in "aeiou" else "a"
    return f"A photo of {article} {concept}"
