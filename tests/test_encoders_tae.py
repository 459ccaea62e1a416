"""Tiny autoencoders (TAESD ... TAEF2, TAESana) and FLUX.2's VAE load as encoders from every
layout they are published in, tell their family, decode only with a decoder, and fail clearly.
All weights are random and built here; only the last test reads ../shared/models, if present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from artcloak.cli.options import SETTING_OPTIONS
from artcloak.engine.encoders import TaeEncoder, describe_encoder, load_encoder
from artcloak.engine.encoders.tae import TAE_FAMILIES
from artcloak.errors import ModelLoadError
from artcloak.testing import to_original_layout
from artcloak.testing.tae import save_tae, tae_modules
from safetensors.torch import save_file

# Against references in the default memory layout: a full-size VAE's channels-last weights add
# the same products in another order (up to 3.4e-6 apart on these tiny models); a weight
# loaded wrongly is off by orders of magnitude more.
SAME_LATENTS = {"rtol": 0, "atol": 1e-5}

SHARED_TAEF2 = Path(__file__).resolve().parents[2] / "shared" / "models" / "taef2"


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- families


@pytest.mark.parametrize(
    ("built", "folder", "stem", "expected"),
    [
        ("taesd", "models", "taesd_", "taesd"),
        ("taesd", "models", "taesdxl_", "taesdxl"),
        ("taesd", "taesdxl", "", "taesdxl"),
        ("taesd3", "models", "taesd3_", "taesd3"),
        ("taesd3", "models", "taef1_", "taef1"),
        ("taesd3", "flux", "", "taef1"),
        ("taef2", "models", "", "taef2"),
        ("taesana", "models", "", "taesana"),
    ],
)
def test_family_is_told_from_the_weights_and_the_name(
    tmp_path, images, built, folder, stem, expected
):
    path, enc, _ = save_tae(tmp_path / folder, built, stem=stem)
    loaded = load_encoder(str(path))
    spec = TAE_FAMILIES[expected]
    assert isinstance(loaded, TaeEncoder)
    assert loaded.family == expected
    assert loaded.latent_channels == spec.latent_channels
    assert loaded.downscale == spec.downscale
    assert loaded.train_resolution == spec.train_resolution
    assert (loaded.scaling_factor, loaded.shift_factor) == (1.0, 0.0)
    with torch.no_grad():
        latent = loaded(images)
        torch.testing.assert_close(latent, enc(images), **SAME_LATENTS)  # [0, 1] in
    assert latent.shape == (2, spec.latent_channels, 64 // spec.downscale, 64 // spec.downscale)


def test_a_family_prefix_or_config_names_it(tmp_path):
    path, _, _ = save_tae(tmp_path / "m", "taesd")
    assert load_encoder(f"taesdxl:{path}").family == "taesdxl"
    named = load_encoder(str(path), config="taesdxl")
    assert named.family == "taesdxl" and named.train_resolution == 1024
    with pytest.raises(ModelLoadError, match="not a taef2"):
        load_encoder(f"taef2:{path}")


# ----------------------------------------------------------------------------- decoders


def test_encoder_alone_loads_and_decode_says_what_to_do(tmp_path, images):
    path, _, _ = save_tae(tmp_path / "taef2", "taef2", decoder=False)
    loaded = load_encoder(str(path))
    assert loaded.has_decoder is False
    assert describe_encoder(loaded)["decoder"] is False
    with torch.no_grad():
        latent = loaded(images)
    with pytest.raises(ModelLoadError, match="without its decoder.*decoder.safetensors"):
        loaded.decode(latent)


def test_encoder_only_leaves_the_decoder_beside_it_unread(tmp_path, images):
    path, _, _ = save_tae(tmp_path / "m", "taef2")
    path.with_name("decoder.safetensors").write_bytes(b"not read")  # would fail if it were
    loaded = load_encoder(str(path), encoder_only=True)
    assert not loaded.has_decoder and describe_encoder(loaded)["decoder"] is False
    with torch.no_grad():
        assert loaded(images).shape[1] == loaded.latent_channels


@pytest.mark.parametrize("stem", ["", "taesd_"])
def test_the_decoder_beside_the_encoder_is_loaded(tmp_path, images, stem):
    family = "taef2" if not stem else "taesd"
    path, enc, dec = save_tae(tmp_path / "m", family, stem=stem)
    loaded = load_encoder(str(path))
    info = describe_encoder(loaded)
    assert loaded.has_decoder and info["decoder"] is True
    assert info["family"] == family and info["latent_channels"] == loaded.latent_channels
    with torch.no_grad():
        latent = loaded(images)
        decoded = loaded.decode(latent)
        torch.testing.assert_close(decoded, dec(enc(images)).clamp(0, 1), rtol=0, atol=1e-5)
    assert decoded.shape == images.shape
    assert decoded.min() >= 0 and decoded.max() <= 1


@pytest.mark.parametrize("prefix", ["", "taesd_"])  # madebyollin's module; ComfyUI's
def test_a_file_with_both_halves_loads_both(tmp_path, images, prefix):
    enc, dec = tae_modules("taef2")
    state = {f"{prefix}encoder.{k}": v for k, v in enc.state_dict().items()}
    state.update({f"{prefix}decoder.{k}": v for k, v in dec.state_dict().items()})
    path = tmp_path / "taef2.safetensors"
    save_file(state, str(path))
    loaded = load_encoder(str(path))
    assert loaded.family == "taef2" and loaded.has_decoder
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), enc(images), **SAME_LATENTS)
        torch.testing.assert_close(
            loaded.decode(enc(images)), dec(enc(images)).clamp(0, 1), rtol=0, atol=1e-5
        )


@pytest.fixture(scope="module")
def autoencoder_tiny():
    """diffusers' own AutoencoderTiny (TAESD's layout), random weights."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(3)
    return AutoencoderTiny().eval()


def _check_against_diffusers(loaded, tiny, images) -> None:
    with torch.no_grad():
        latent = loaded(images)
        torch.testing.assert_close(latent, tiny.encoder.layers(images), rtol=0, atol=1e-5)
        expected = ((tiny.decoder(latent) + 1) / 2).clamp(0, 1)  # diffusers decodes to [-1, 1]
        torch.testing.assert_close(loaded.decode(latent), expected, rtol=0, atol=1e-5)


def test_diffusers_autoencoder_tiny_file_and_folder(tmp_path, images, autoencoder_tiny):
    path = tmp_path / "taesd.safetensors"
    save_file(autoencoder_tiny.state_dict(), str(path))
    from_file = load_encoder(str(path))
    assert from_file.family == "taesd" and from_file.has_decoder
    _check_against_diffusers(from_file, autoencoder_tiny, images)

    folder = tmp_path / "taesdxl"
    autoencoder_tiny.save_pretrained(str(folder))
    from_folder = load_encoder(str(folder))
    assert from_folder.family == "taesdxl"  # the folder's name says xl
    _check_against_diffusers(from_folder, autoencoder_tiny, images)


# ----------------------------------------------------------------------------- refusals


def test_pickle_refused_without_permission(tmp_path, images):
    enc, _ = tae_modules("taesd")
    path = tmp_path / "taesd_encoder.pth"
    torch.save(enc.state_dict(), str(path))
    with pytest.raises(ModelLoadError, match="allow_pickle setting") as refused:
        load_encoder(str(path))
    assert "--allow-pickle" in refused.value.said(SETTING_OPTIONS)
    loaded = load_encoder(str(path), allow_pickle=True)
    assert loaded.family == "taesd" and not loaded.has_decoder


def test_neither_a_vae_nor_a_tiny_autoencoder_gets_one_clear_message(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"model.weight": torch.zeros(3, 3), "model.bias": torch.zeros(3)}, str(path))
    with pytest.raises(ModelLoadError) as info:
        load_encoder(str(path))
    message = str(info.value)
    assert "no VAE encoder weights" in message and "tiny-autoencoder" in message
    assert message.endswith(".") and "\n" not in message


def test_a_full_vae_is_not_taken_for_a_tiny_one(tiny_models):
    with pytest.raises(ModelLoadError, match="is not a tiny autoencoder"):
        load_encoder(f"taesd:{tiny_models['diffusers_file']}")
    with pytest.raises(ModelLoadError, match="is a full VAE, not a tiny autoencoder"):
        load_encoder(str(tiny_models["diffusers_folder"]), config="taef2")


def test_pointing_at_the_decoder_says_to_use_the_encoder(tmp_path):
    path, _, _ = save_tae(tmp_path / "m", "taesd")
    with pytest.raises(ModelLoadError, match="decoder, not its encoder"):
        load_encoder(str(path.with_name("decoder.safetensors")))


def test_a_wrong_file_beside_the_encoder_is_named(tmp_path):
    path, _, _ = save_tae(tmp_path / "m", "taesd", decoder=False)
    save_file({"model.weight": torch.zeros(2)}, str(path.with_name("decoder.safetensors")))
    with pytest.raises(ModelLoadError, match="is not a tiny autoencoder's decoder"):
        load_encoder(str(path))


# ----------------------------------------------------------------------------- FLUX.2


def tiny_flux2_config() -> dict:
    return {
        "block_out_channels": [8, 16, 32, 32],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "latent_channels": 32,
        "sample_size": 64,
    }


def make_flux2(config: dict, seed: int = 0):
    from diffusers import AutoencoderKLFlux2

    torch.manual_seed(seed)
    vae = AutoencoderKLFlux2(**config).eval()
    with torch.no_grad():  # statistics a trained model would have
        vae.bn.running_mean.normal_()
        vae.bn.running_var.uniform_(0.5, 2)
    return vae


def _expected_mean(vae, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return vae.encode(images * 2 - 1).latent_dist.mean


def test_tiny_flux2_single_file_with_its_config(tmp_path, images):
    vae = make_flux2(tiny_flux2_config())
    path = tmp_path / "vae.safetensors"
    save_file(vae.state_dict(), str(path))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"_class_name": "AutoencoderKLFlux2", **tiny_flux2_config()}))
    loaded = load_encoder(f"flux2:{path}", config=config)
    assert loaded.family == "flux2" and loaded.latent_channels == 32
    assert loaded.train_resolution == 1024 and loaded.downscale == 8
    torch.testing.assert_close(loaded(images), _expected_mean(vae, images), **SAME_LATENTS)
    with torch.no_grad():
        assert loaded.decode(loaded(images)).shape == images.shape


def test_flux2_in_the_original_layout(tmp_path, images):
    """BFL's layout: LDM key names, quant_conv inside the encoder, post_quant_conv inside the
    decoder, the batch norm at the top."""
    vae = make_flux2(tiny_flux2_config())
    state = vae.state_dict()
    batch_norm = {k: v for k, v in state.items() if k.startswith("bn.")}
    original = to_original_layout({k: v for k, v in state.items() if not k.startswith("bn.")})
    for key in list(original):
        if key.startswith(("quant_conv.", "post_quant_conv.")):
            half = "encoder" if key.startswith("quant_conv.") else "decoder"
            original[f"{half}.{key}"] = original.pop(key)
    path = tmp_path / "ae.safetensors"
    save_file({**original, **batch_norm}, str(path))
    config = tmp_path / "flux2-tiny.json"
    config.write_text(json.dumps(tiny_flux2_config()))
    loaded = load_encoder(f"flux2:{path}", config=config)
    torch.testing.assert_close(loaded(images), _expected_mean(vae, images), **SAME_LATENTS)


def test_full_size_flux2_vae_loads_offline_with_no_config(tmp_path):
    """A real-sized FLUX.2 VAE (random weights): the shipped config fits it, the family is told
    from its 32 latent channels."""
    from artcloak.engine.encoders import shipped_config

    config = {k: v for k, v in shipped_config("flux2").items() if not k.startswith("_")}
    vae = make_flux2(config)
    path = tmp_path / "vae.safetensors"
    save_file(vae.state_dict(), str(path))
    loaded = load_encoder(str(path))
    assert loaded.family == "flux2" and loaded.latent_channels == 32
    assert loaded.train_resolution == 1024
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(loaded(x), _expected_mean(vae, x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- in the engine


def test_a_32x_encoder_works_in_the_engine_and_says_it_cannot_show_a_view(tmp_path):
    from artcloak.engine.optimize import latent_distances
    from artcloak.engine.protect import Engine
    from artcloak.engine.verify import model_view
    from artcloak.settings import ModelSettings, ProtectionSettings

    path, _, _ = save_tae(tmp_path / "taesana", "taesana")
    sana = load_encoder(str(path))
    view = torch.rand(1, 3, 72, 64)
    with torch.no_grad():
        target = sana(view)
        (distance,) = latent_distances([sana], [target], view, None)
    assert target.shape == (1, 32, 3, 2) and distance.shape == (1,)
    engine = Engine(ModelSettings(device="cpu", lpips_random_backbone=True), encoders=[sana])
    rgb = torch.rand(64, 64, 3).numpy()
    with pytest.raises(ModelLoadError, match="cannot be shown"):
        model_view(engine, rgb, ProtectionSettings(resolution=64))


def test_cli_cloaks_with_a_tiny_autoencoder(tmp_path, rgb_png, capsys):
    from artcloak.cli import main

    path, _, _ = save_tae(tmp_path / "taef2", "taef2")
    argv = ["cloak", str(rgb_png), "--encoder", str(path), "--steps", "2", "--device", "cpu",
            "--lpips-random-backbone", "--resolution", "64", "--precision", "fp32"]  # fmt: skip
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    _, err = capsys.readouterr()
    assert code == 0, err
    output = rgb_png.with_name("art-cloaked.png")
    assert output.is_file()
    report = json.loads(output.with_name(output.name + ".json").read_text())
    (encoder,) = report["models"]["encoders"]
    assert encoder["family"] == "taef2"
    assert encoder["decoder"] is False  # protecting loads none, though one is beside it
    assert report["measured"]["within_budget"] is True


# ----------------------------------------------------------------------------- the real file


def test_the_real_taef2_loads_with_its_decoder(images):
    path = SHARED_TAEF2 / "encoder.safetensors"
    if not path.is_file():
        pytest.skip(f"../shared/models is absent ({path} not found): no real TAEF2 to load.")
    loaded = load_encoder(str(path))
    assert loaded.family == "taef2" and loaded.latent_channels == 32 and loaded.has_decoder
    with torch.no_grad():
        decoded = loaded.decode(loaded(images))
    assert decoded.shape == images.shape
