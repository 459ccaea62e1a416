"""Encoders load from every source artists have, give the same latents, and fail clearly."""

from __future__ import annotations

import json
import time

import pytest
import torch
from artcloak.cli.options import SETTING_OPTIONS
from artcloak.engine import encoders
from artcloak.engine.encoders import (
    FAMILIES,
    VaeEncoder,
    choose_device,
    describe_encoder,
    load_encoder,
    load_encoders,
)
from artcloak.errors import ModelLoadError, SettingsError
from artcloak.testing import (
    full_size_vae_config,
    make_tiny_vae,
    save_tiny_models,
    tiny_vae_config,
    to_original_layout,
)
from safetensors.torch import load_file, save_file

# Against references in the default memory layout: the encoders' channels-last weights add
# the same products in another order (up to 3.4e-6 apart on these tiny models); a weight
# loaded wrongly is off by orders of magnitude more.
SAME_LATENTS = {"rtol": 0, "atol": 1e-5}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("tiny_models"), seed=0)


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def reference(images):
    vae = make_tiny_vae(seed=0)
    with torch.no_grad():
        return vae.encode(images * 2 - 1).latent_dist.mean


LOADS = {
    "diffusers_folder": {},
    "pipeline_folder": {},
    "diffusers_file": {"config": "config"},
    "original_file": {"config": "config"},
    "full_checkpoint": {"config": "config"},
    "pickle": {"config": "config", "allow_pickle": True},
}


@pytest.mark.parametrize("name", sorted(LOADS))
def test_every_source_gives_the_same_latents(tiny, images, reference, name):
    kwargs = {k: (tiny[v] if k == "config" else v) for k, v in LOADS[name].items()}
    enc = load_encoder(str(tiny[name]), **kwargs)
    assert isinstance(enc, VaeEncoder)
    assert enc.family == "custom"
    assert enc.latent_channels == 4
    with torch.no_grad():
        latent = enc(images)
    assert latent.shape == (2, 4, 8, 8)
    torch.testing.assert_close(latent, reference, **SAME_LATENTS)


@pytest.mark.parametrize("name", sorted(LOADS))
def test_every_source_loads_encoder_only(tiny, images, reference, name):
    """load_encoder(encoder_only=True), as the engine loads for protecting: from every kind of
    source the decoder half is never built, and the encoder gives the same latents."""
    kwargs = {k: (tiny[v] if k == "config" else v) for k, v in LOADS[name].items()}
    enc = load_encoder(str(tiny[name]), encoder_only=True, **kwargs)
    assert not enc.has_decoder and enc.vae.decoder is None and enc.vae.post_quant_conv is None
    assert not any(key.startswith("decoder.") for key, _ in enc.vae.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(enc(images), reference, **SAME_LATENTS)


def test_half_precision_checkpoint_loads_as_float32(tiny, tmp_path, images, reference):
    state = load_file(str(tiny["full_checkpoint"]))
    path = tmp_path / "half.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in state.items()}, str(path))
    enc = load_encoder(str(path), config=tiny["config"])
    assert enc.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(enc(images), reference, rtol=0.05, atol=0.05)


def test_diffusers_folder_with_only_a_pickle(tiny, tmp_path, images, reference):
    folder = tmp_path / "bin_only"
    folder.mkdir()
    (folder / "config.json").write_bytes((tiny["diffusers_folder"] / "config.json").read_bytes())
    torch.save(make_tiny_vae(seed=0).state_dict(), str(folder / "diffusion_pytorch_model.bin"))
    with pytest.raises(ModelLoadError, match="allow_pickle"):
        load_encoder(str(folder))
    enc = load_encoder(str(folder), allow_pickle=True)
    with torch.no_grad():
        torch.testing.assert_close(enc(images), reference, **SAME_LATENTS)


def test_config_as_folder_and_path_objects(tiny, images, reference):
    enc = load_encoder(tiny["original_file"], config=tiny["diffusers_folder"])
    with torch.no_grad():
        torch.testing.assert_close(enc(images), reference, **SAME_LATENTS)


def test_original_layout_matches_diffusers_own_converter(tiny):
    single_file_utils = pytest.importorskip("diffusers.loaders.single_file_utils")
    convert = getattr(single_file_utils, "convert_ldm_vae_checkpoint", None)
    if convert is None:
        pytest.skip("this diffusers has no convert_ldm_vae_checkpoint")
    checkpoint = load_file(str(tiny["full_checkpoint"]))
    converted = convert(checkpoint, tiny_vae_config())
    expected = make_tiny_vae(seed=0).state_dict()
    assert set(converted) == set(expected)
    for key, tensor in expected.items():
        torch.testing.assert_close(converted[key], tensor, rtol=0, atol=0)


def test_original_layout_names_like_sd_checkpoints():
    original = to_original_layout(make_tiny_vae().state_dict())
    assert "encoder.down.0.block.0.conv1.weight" in original
    assert "encoder.down.0.downsample.conv.weight" in original
    assert "encoder.mid.attn_1.q.weight" in original
    assert original["encoder.mid.attn_1.proj_out.weight"].ndim == 4
    assert "encoder.norm_out.weight" in original
    assert "decoder.up.3.upsample.conv.weight" in original  # highest LDM index = lowest res
    assert "decoder.up.0.block.0.nin_shortcut.weight" in original  # 16 -> 8 channels
    assert "quant_conv.weight" in original
    assert not any("down_blocks" in k or "to_q" in k for k in original)


def test_forward_is_differentiable_and_params_frozen(tiny):
    enc = load_encoder(tiny["diffusers_folder"])
    assert not enc.training
    enc.train()
    assert not enc.training and not enc.vae.training
    assert all(not p.requires_grad for p in enc.parameters())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    enc(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


def test_decode_shape_and_range(tiny, images):
    enc = load_encoder(tiny["diffusers_folder"])
    with torch.no_grad():
        out = enc.decode(enc(images))
    assert out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1


def test_describe_is_plain_json(tiny):
    enc = load_encoder(tiny["diffusers_folder"], resolution=256)
    info = describe_encoder(enc)
    assert json.loads(json.dumps(info)) == info
    assert info["source"] == str(tiny["diffusers_folder"])
    assert info["family"] == "custom" and info["latent_channels"] == 4
    assert info["train_resolution"] == 256
    assert info["parameters"] == sum(p.numel() for p in enc.parameters())


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_encoder_only_from_a_state_dict_builds_no_decoder(tiny, images, reference, layout):
    """encoder_from_state_dict(encoder_only=True), as the ComfyUI pack copies a graph's VAE:
    only the encoding half is materialised, and it encodes as the full VAE does."""
    state = make_tiny_vae(seed=0).state_dict()
    if layout == "original":
        state = to_original_layout(state)
    full = encoders.encoder_from_state_dict(state, config=tiny["config"])
    lean = encoders.encoder_from_state_dict(state, config=tiny["config"], encoder_only=True)
    assert full.has_decoder and not lean.has_decoder
    assert lean.vae.decoder is None and lean.vae.post_quant_conv is None
    encoding = sum(p.numel() for name, p in full.vae.named_parameters()
                   if name.startswith(("encoder.", "quant_conv.")))  # fmt: skip
    assert sum(p.numel() for p in lean.parameters()) == encoding
    assert describe_encoder(lean)["decoder"] is False
    with torch.no_grad():
        assert torch.allclose(lean(images), reference, atol=1e-5)
    with pytest.raises(ModelLoadError, match="without its decoder"):
        lean.decode(torch.zeros(1, 4, 8, 8))


def test_load_encoders_ensemble(tiny):
    encs = load_encoders([str(tiny["diffusers_folder"]), str(tiny["pipeline_folder"])])
    assert len(encs) == 2
    with pytest.raises(SettingsError):
        load_encoders([])


def test_sixteen_channel_vae_without_quant_conv(tmp_path, images):
    vae = make_tiny_vae(seed=3, latent_channels=16)
    assert vae.quant_conv is None
    path = tmp_path / "tiny16.safetensors"
    save_file(to_original_layout(vae.state_dict()), str(path))
    cfg = tmp_path / "tiny16.json"
    cfg.write_text(json.dumps(tiny_vae_config(16)))
    enc = load_encoder(f"sd3:{path}", config=cfg)
    assert enc.family == "sd3" and enc.latent_channels == 16 and enc.train_resolution == 1024
    with torch.no_grad():
        expected = vae.encode(images * 2 - 1).latent_dist.mean
        torch.testing.assert_close(enc(images), expected, **SAME_LATENTS)


def test_family_prefix_only_for_known_families(tiny):
    assert encoders.configs._split_family_prefix("sdxl:/x/vae.safetensors") == (
        "sdxl",
        "/x/vae.safetensors",
    )
    assert encoders.configs._split_family_prefix("C:\\models\\vae.safetensors") == (
        None,
        "C:\\models\\vae.safetensors",
    )
    with pytest.raises(SettingsError):
        load_encoder(f"sdxl:{tiny['original_file']}", config="sd1")


def test_full_size_sd1_checkpoint_loads_offline(tmp_path):
    """A real-sized SD 1.x VAE (random weights) in the original layout loads with no config."""
    from diffusers import AutoencoderKL

    start = time.perf_counter()
    cfg = {k: v for k, v in full_size_vae_config("sd1").items() if not k.startswith("_")}
    torch.manual_seed(0)
    vae = AutoencoderKL(**cfg).eval()
    path = tmp_path / "model.safetensors"
    state = {f"first_stage_model.{k}": v for k, v in to_original_layout(vae.state_dict()).items()}
    save_file(state, str(path))
    enc = load_encoder(str(path))
    assert enc.family == "sd1" and enc.train_resolution == 512 and enc.latent_channels == 4
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = vae.encode(x * 2 - 1).latent_dist.mean
        torch.testing.assert_close(enc(x), expected, rtol=1e-5, atol=1e-5)
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_configs_build(family):
    cfg = full_size_vae_config(family)
    assert cfg["block_out_channels"] == [128, 256, 512, 512]
    assert cfg["latent_channels"] == {"sd3": 16, "flux": 16, "flux2": 32}.get(family, 4)
    assert encoders.configs._family_of_config(cfg) == family


def test_family_detection_from_full_checkpoint_keys():
    assert encoders.configs._family_from_keys(["conditioner.embedders.1.model.x"], 4) == "sdxl"
    assert encoders.configs._family_from_keys(["cond_stage_model.model.x"], 4) == "sd2"
    assert encoders.configs._family_from_keys(["cond_stage_model.transformer.x"], 4) == "sd1"
    assert (
        encoders.configs._family_from_keys(["model.diffusion_model.double_blocks.0.x"], 16)
        == "flux"
    )
    assert encoders.configs._family_from_keys(["vae.encoder.conv_in.weight"], 16) == "sd3"
    assert encoders.configs._family_from_keys(["bn.running_mean"], 32) == "flux2"


# ----------------------------------------------------------------------------- refusals


def test_pickle_refused_without_permission(tiny):
    with pytest.raises(ModelLoadError, match="allow_pickle") as info:
        load_encoder(str(tiny["pickle"]), config=tiny["config"])
    message = str(info.value)
    assert "arbitrary code" in message and "--" not in message  # words any host can show
    assert "allow it with --allow-pickle" in info.value.said(SETTING_OPTIONS)  # the CLI's


def test_hub_id_offline_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        load_encoder("artcloak-tests/no-such-vae")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message
    assert "download artcloak-tests/no-such-vae" in message
    assert ".safetensors" in message


def _fake_hub_cache(cache, repo_id, files):
    """Lay files out as the Hugging Face cache does (refs/main -> snapshots/<commit>/...)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for name, source in files.items():
        target = repo / "snapshots" / commit / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())


@pytest.mark.parametrize("layout", ["vae_repo", "pipeline_repo"])
def test_hub_id_loads_from_cache_offline(tiny, tmp_path, monkeypatch, images, reference, layout):
    from huggingface_hub import constants

    folder = tiny["diffusers_folder"]
    sub = "" if layout == "vae_repo" else "vae/"
    files = {
        f"{sub}config.json": folder / "config.json",
        f"{sub}diffusion_pytorch_model.safetensors": folder / "diffusion_pytorch_model.safetensors",
    }
    _fake_hub_cache(tmp_path, "artcloak-tests/tiny-vae", files)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = load_encoder("artcloak-tests/tiny-vae")
    assert enc.source == "artcloak-tests/tiny-vae"
    with torch.no_grad():
        torch.testing.assert_close(enc(images), reference, **SAME_LATENTS)


def test_hub_unreachable_ends_in_model_load_error(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(encoders.hub, "_hub_offline", lambda: False)

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(encoders.hub.socket, "getaddrinfo", no_network)
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load_encoder("artcloak-tests/no-such-vae")


def test_offline_advice_names_the_encoder_in_each_host_s_terms(monkeypatch):
    """The core's words suit every host (app, plugins, ComfyUI); the CLI says its option."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_encoder("artcloak-tests/no-such-vae")
    message = str(info.value)
    assert "give a local .safetensors file as the encoder instead" in message
    assert "(a VAE or a full checkpoint)" in message and "--encoder" not in message
    said = info.value.said({"encoders": "with --encoder PATH"})
    assert said == message.replace("as the encoder", "with --encoder PATH")
    assert info.value.said({}) == message


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder(str(tmp_path / "nothing.safetensors"))


def test_text_file_named_safetensors(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("these are not weights\n")
    with pytest.raises(ModelLoadError, match="not a readable .safetensors") as info:
        load_encoder(str(path))
    assert str(path) in str(info.value)


def test_truncated_safetensors(tiny, tmp_path):
    data = tiny["original_file"].read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="download it again"):
        load_encoder(str(path), config=tiny["config"])


def test_safetensors_without_vae(tmp_path):
    path = tmp_path / "unet_only.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}, str(path))
    with pytest.raises(ModelLoadError, match="no VAE encoder weights"):
        load_encoder(str(path))


def test_weights_that_do_not_fit_the_config(tiny):
    # The tiny VAE does not fit the shipped full-size SD 1.x config.
    with pytest.raises(ModelLoadError, match="do not fit the sd1 VAE config") as info:
        load_encoder(str(tiny["original_file"]))
    assert str(tiny["original_file"]) in str(info.value)
    assert "as the encoder config" in str(info.value)
    assert "with --encoder-config" in info.value.said(SETTING_OPTIONS)


def test_unknown_source_and_bad_settings(tiny):
    with pytest.raises(ModelLoadError, match="neither an existing file"):
        load_encoder("no-such-thing")
    with pytest.raises(SettingsError):
        load_encoder(str(tiny["diffusers_folder"]), resolution=100)
    with pytest.raises(SettingsError):
        load_encoder(str(tiny["diffusers_folder"]), config="sd9")
    with pytest.raises(SettingsError):
        load_encoder("")


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="not a diffusers VAE"):
        load_encoder(str(tmp_path))


def test_loading_prints_nothing_on_stdout(tiny, capsys):
    load_encoder(str(tiny["full_checkpoint"]), config=tiny["config"])
    load_encoder(str(tiny["pickle"]), config=tiny["config"], allow_pickle=True)
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- devices


def test_choose_device():
    if not torch.cuda.is_available() and not encoders.devices._mps_available():
        assert choose_device("auto") == torch.device("cpu")
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(SettingsError):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SettingsError):
            choose_device("cuda:1")
    if not encoders.devices._mps_available():
        with pytest.raises(SettingsError):
            choose_device("mps")
