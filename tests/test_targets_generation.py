"""Target generation with diffusers, offline: a tiny SD pipeline (tiny UNet, VAE, CLIP text
model and a tokenizer built here) renders style targets (img2img) and concept anchors
(text-to-image); targets are cached by everything that makes them; ``auto`` picks the
measured-farthest style; without a diffusion model cloak falls back to textures and says so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from artcloak.cli.options import SETTING_OPTIONS
from artcloak.engine.targets import available_styles, check_target, describe_target, target_images
from artcloak.engine.targets.auto import choose_farthest
from artcloak.engine.targets.cache import CACHE_ENV, cache_folder, cache_key
from artcloak.engine.targets.catalogue import CATALOGUE, catalogue_style
from artcloak.engine.targets.generate import concept_anchors, style_target
from artcloak.engine.targets.pipelines import DiffusionUnavailable, load_diffusion
from artcloak.engine.targets.resolve import resolve_run_target
from artcloak.settings import Diffusion, Mode, ProtectionSettings, Target
from artcloak.testing.pipelines import save_tiny_pipeline
from conftest import painting
from PIL import Image
from test_cli import run

FAST = ["--steps", "2", "--precision", "fp32", "--diffusion-steps", "2"]
CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("diffusion") / "tiny-sd")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    monkeypatch.delenv("ARTCLOAK_DIFFUSION", raising=False)
    return folder


def cached_files() -> list[Path]:
    return sorted(cache_folder().rglob("*.png")) if cache_folder().exists() else []


def report_of(output: Path) -> dict:
    return json.loads(output.with_name(output.name + ".json").read_text())


def test_catalogue_styles_are_offered_and_accepted():
    names = available_styles()
    assert names[:2] == ["auto", "auto-per-image"]
    assert {"cubism", "impressionism", "ukiyo-e", "pixel-art", "weave"} <= set(names)
    for name in ("auto", "cubism", "Pixel Art", "weave"):
        check_target(Target(style=name), Mode.CLOAK)
    assert catalogue_style("Ukiyo_E") is catalogue_style("ukiyo-e")
    # Not generated (a host that skips resolution): the style's texture stands in.
    image = target_images(Target(style="pixel-art"), Mode.CLOAK, 40, 30)[0]
    assert image.shape == (30, 40, 3)
    assert describe_target(Target(style="pixel-art"), Mode.CLOAK).style == "pixels"


def test_cache_key_changes_when_any_input_changes():
    artwork = painting(16, 16)
    base = dict(kind="img2img", model={"folder": "/m"}, prompt="cubism", seed=0, size=(64, 48),
                strength=0.4, guidance=7.5, steps=2, artwork=artwork)  # fmt: skip
    changes = dict(model={"folder": "/n"}, prompt="ukiyo-e", seed=1, size=(64, 56),
                   strength=0.5, guidance=5.0, steps=3, artwork=painting(16, 16, seed=1))  # fmt: skip
    key = cache_key(**base)
    assert cache_key(**dict(base)) == key
    for name, value in changes.items():
        assert cache_key(**{**base, name: value}) != key, name


def test_style_target_is_generated_at_the_working_size_and_cached(tiny_pipeline):
    diffusion = Diffusion(model=str(tiny_pipeline), steps=2)
    model = load_diffusion(diffusion, CPU)
    artwork = painting(96, 72).astype(np.float32) / 255
    cubism = catalogue_style("cubism")
    first = style_target(model, artwork, cubism, diffusion, 64, 48)
    assert first.shape == (48, 64, 3) and first.dtype == np.float32
    assert len(cached_files()) == 1

    def no_generation(**_):
        raise AssertionError("a cached target was generated again")

    model_img2img, model._img2img = model._img2img, no_generation
    try:
        again = style_target(model, artwork, cubism, diffusion, 64, 48)
    finally:
        model._img2img = model_img2img
    np.testing.assert_array_equal(again, first)
    other_seed = Diffusion(model=str(tiny_pipeline), steps=2, seed=5)
    style_target(model, artwork, cubism, other_seed, 64, 48)
    assert len(cached_files()) == 2


def test_auto_picks_the_measured_farthest():
    artwork = [torch.zeros(4, 8, 8)]
    candidates = {
        "near": [torch.full((4, 8, 8), 0.1)],
        "far": [torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(0)) * 3 + 2],
        "middle": [torch.full((4, 8, 8), 1.0)],
    }
    stats = [torch.zeros(8)]
    choice = choose_farthest(stats, candidates)
    assert choice.name == "far"
    assert max(choice.distances, key=choice.distances.get) == "far"
    assert choice.distances["near"] < choice.distances["middle"] < choice.distances["far"]
    assert artwork  # the artwork side is its statistics: zeros here


def test_without_diffusion_auto_measures_the_textures(engine, rgb_png, fast_settings):
    settings = ProtectionSettings(
        target=Target(style="auto", diffusion=Diffusion(enabled=False)),
        resolution=fast_settings.resolution,
    )
    resolved = resolve_run_target(engine, settings, [rgb_png])
    described = resolved.target.described
    assert described.kind == "texture" and "no diffusion model" in described.fallback
    distances = described.distances
    assert resolved.target.style == max(distances, key=distances.get)
    assert describe_target(resolved.target, Mode.CLOAK).style == resolved.target.style


def test_default_model_not_cached_means_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    with pytest.raises(DiffusionUnavailable, match="as the diffusion model") as unavailable:
        load_diffusion(Diffusion(), CPU)
    assert "with --diffusion (" in unavailable.value.said(SETTING_OPTIONS)


def test_cli_cloak_auto_generates_caches_and_reports(
    tiny_pipeline, tmp_path, cli_model_args, capsys
):
    folder = tmp_path / "artist"
    folder.mkdir()
    for seed in (0, 1):
        Image.fromarray(painting(seed=seed)).save(folder / f"art{seed}.png")
    argv = ["cloak", str(folder), "-o", str(tmp_path / "out"), "--style", "auto",
            "--diffusion", str(tiny_pipeline), *cli_model_args, *FAST]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    reports = [report_of(tmp_path / "out" / f"art{seed}-cloaked.png") for seed in (0, 1)]
    targets = [report["target"] for report in reports]
    assert {target["kind"] for target in targets} == {"generated style"}
    chosen = targets[0]["style"]
    assert chosen in [style.name for style in CATALOGUE]
    assert targets[1]["style"] == chosen  # one artist, one consistent target
    assert chosen == max(targets[0]["distances"], key=targets[0]["distances"].get)
    assert targets[0]["model"] == str(tiny_pipeline) and targets[0]["strength"] == 0.4
    assert f"'{chosen}'" in err
    made = cached_files()
    assert len(made) == len(CATALOGUE) + 2  # one probe per style, one target per artwork

    code, _, err = run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert cached_files() == made  # the re-run reused every generated image
    assert report_of(tmp_path / "out" / "art0-cloaked.png")["target"]["style"] == chosen


def test_cli_cloak_catalogue_style_without_diffusion_falls_back(rgb_png, cli_model_args, capsys):
    argv = ["cloak", str(rgb_png), "--style", "ukiyo-e", "--no-diffusion", *cli_model_args, *FAST]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert err.count("no diffusion model") == 1 and "'stripes'" in err
    target = report_of(rgb_png.with_name("art-cloaked.png"))["target"]
    assert target["kind"] == "texture" and target["style"] == "stripes"
    assert target["instead_of"] == "ukiyo-e" and "no diffusion model" in target["fallback"]


def test_cli_shade_concept_generates_anchors(tiny_pipeline, rgb_png, cli_model_args, capsys):
    argv = ["shade", str(rgb_png), "--concept", "handbag", "--anchors-count", "2",
            "--diffusion", str(tiny_pipeline), *cli_model_args, *FAST]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    target = report_of(rgb_png.with_name("art-shaded.png"))["target"]
    assert target["kind"] == "generated anchors" and target["concept"] == "handbag"
    assert target["prompt"] == "A photo of a handbag" and target["seeds"] == [0, 1]
    first, second = (np.asarray(Image.open(path)) for path in cached_files())
    assert first.shape == (64, 64, 3) and not np.array_equal(first, second)  # one per seed


def test_cli_shade_concept_without_diffusion_says_what_to_do(rgb_png, cli_model_args, capsys):
    argv = ["shade", str(rgb_png), "--concept", "handbag", "--no-diffusion", *cli_model_args]
    code, _, err = run(argv, capsys)
    assert code == 1 and "Traceback" not in err
    assert "--anchor" in err and len(err.strip().splitlines()) == 1
    assert not rgb_png.with_name("art-shaded.png").exists()


def test_cli_shade_needs_a_concept_or_anchors(rgb_png, capsys):
    code, _, err = run(["shade", str(rgb_png)], capsys)
    assert code == 2 and "--concept" in err


def test_cli_styles_lists_the_catalogue(capsys):
    code, out, _ = run(["styles", "--prompts"], capsys)
    assert code == 0 and "auto" in out and "weave  (default)" in out
    for style in CATALOGUE:
        assert style.name in out and style.prompt in out


def test_auto_per_image_without_diffusion_measures_each_image(engine, fast_settings):
    from artcloak.engine.targets.resolve import image_target

    settings = ProtectionSettings(
        target=Target(style="auto-per-image", diffusion=Diffusion(enabled=False)),
        resolution=fast_settings.resolution,
    )
    resolved = resolve_run_target(engine, settings)
    for seed in (0, 3):
        own = image_target(engine, resolved, painting(seed=seed), 255)
        distances = own.described.distances
        assert own.style == max(distances, key=distances.get) and own.described.fallback
        assert target_images(own, Mode.CLOAK, 32, 24)[0].shape == (24, 32, 3)


def test_single_checkpoint_loads_with_the_shipped_configs(tiny_pipeline, tmp_path, monkeypatch):
    """A .safetensors file goes to from_single_file with the shipped config folder of its
    family (guessed from its keys), offline."""
    import diffusers
    from safetensors.torch import save_file

    checkpoint = tmp_path / "my-sdxl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.ones(2)}, str(checkpoint))
    calls = []

    def from_single_file(cls, path, **kwargs):
        calls.append((cls.__name__, path, kwargs))
        return diffusers.StableDiffusionPipeline.from_pretrained(str(tiny_pipeline))

    monkeypatch.setattr(
        diffusers.StableDiffusionXLPipeline, "from_single_file", classmethod(from_single_file)
    )
    model = load_diffusion(Diffusion(model=str(checkpoint)), CPU)
    ((name, path, kwargs),) = calls
    assert name == "StableDiffusionXLPipeline" and path == str(checkpoint)
    assert kwargs["local_files_only"] is True
    config = Path(kwargs["config"])
    assert json.loads((config / "model_index.json").read_text())["_class_name"] == name
    for part in ("tokenizer", "tokenizer_2"):
        assert (config / part / "vocab.json").is_file() and (config / part / "merges.txt").is_file()
    assert model.identity["file"] == str(checkpoint.resolve())
    with pytest.raises(Exception, match="pickle"):
        load_diffusion(Diffusion(model=str(tmp_path / "old.ckpt")), CPU)


def test_single_checkpoint_file_loads_for_real(tiny_pipeline, tmp_path):
    """The tiny pipeline as one original-layout checkpoint loads offline with from_single_file
    and generates the very same anchor as the diffusers folder."""
    from artcloak.testing.pipelines import save_tiny_checkpoint

    checkpoint = save_tiny_checkpoint(tiny_pipeline, tmp_path / "tiny-sd.safetensors")
    from_file = Diffusion(model=str(checkpoint), config=str(tiny_pipeline), steps=1)
    from_folder = Diffusion(model=str(tiny_pipeline), steps=1)
    anchors = [
        concept_anchors(load_diffusion(diffusion, CPU), "cat", 1, diffusion, 32, 32)[0]
        for diffusion in (from_file, from_folder)
    ]
    np.testing.assert_array_equal(anchors[0], anchors[1])
    assert len(cached_files()) == 2  # different models, different cache keys


@pytest.mark.parametrize("family, unet, text", [("sd1", 859_520_964, [123_060_480])])
def test_shipped_pipeline_configs_are_the_real_architectures(family, unet, text):
    """The shipped configs build models of the published sizes; the tokenizer is CLIP's."""
    from artcloak.engine.targets.pipeline_configs import pipeline_config_folder
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = pipeline_config_folder(family)
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    with torch.device("meta"):
        config = json.loads((folder / "unet" / "config.json").read_text())
        assert sum(p.numel() for p in UNet2DConditionModel.from_config(config).parameters()) == unet
        encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(str(folder / "text_encoder")))
        assert [sum(p.numel() for p in encoder.parameters())] == text


def test_worker_request_with_a_concept(tiny_pipeline, rgb_png):
    from artcloak import protocol
    from artcloak.errors import SettingsError
    from artcloak.worker import read_request

    settings = {"mode": "shade", "concept": "handbag", "anchors_count": 2,
                "diffusion": str(tiny_pipeline), "diffusion_config": "sd1"}  # fmt: skip
    request = protocol.WorkerRequest(input=str(rgb_png), output="out.png", settings=settings)
    target = read_request(request.to_json())[1].asked.target
    assert (target.concept, target.anchors_count) == ("handbag", 2)
    assert (target.diffusion.model, target.diffusion.config) == (str(tiny_pipeline), "sd1")
    plain = protocol.WorkerRequest("a", "b", settings={"diffusion_enabled": False})
    assert read_request(plain.to_json())[1].asked.target.diffusion.enabled is False
    with pytest.raises(SettingsError, match="anchors_count"):
        read_request(json.dumps({**json.loads(request.to_json()), "anchors_count": 0}))
