"""The artcloak command end to end on tiny models: files written within budget, reports,
JSON events, batches past bad files, and one clear line for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from artcloak import protocol
from artcloak.cli import main
from artcloak.engine.images import load_image
from conftest import painting
from PIL import Image, PngImagePlugin

FAST = ["--steps", "3", "--precision", "fp32"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def cloak(paths: list[str], cli_model_args, capsys, *extra: str) -> tuple[int, str, str]:
    return run(["cloak", *paths, *cli_model_args, *FAST, *extra], capsys)


def report_of(output: Path) -> dict:
    return json.loads(output.with_name(output.name + ".json").read_text())


def test_cloak_writes_a_protected_png_and_its_report(rgb_png, cli_model_args, capsys):
    before = rgb_png.read_bytes()
    code, out, err = cloak([str(rgb_png)], cli_model_args, capsys)
    output = rgb_png.with_name("art-cloaked.png")
    assert code == 0, err
    assert "protected:" in out
    assert rgb_png.read_bytes() == before
    written = load_image(output)
    assert written.size == (96, 72)
    report = report_of(output)
    assert report["measured"]["within_budget"] is True
    assert report["measured"]["lpips"] <= 0.05 and report["measured"]["linf_255"] <= 8
    changed = np.abs(written.colour_samples().astype(int) - painting().astype(int))
    assert 0 < changed.max() <= 8
    assert list(report) == REPORT_KEYS
    assert report["target"] == {"kind": "texture", "style": "weave"}
    assert report["image"] == {"width": 96, "height": 72, "bit_depth": 8}


# The report's top-level keys, in order (layout version 2; a PNG output has no re-encoding).
REPORT_KEYS = ["artcloak", "report_version", "created", "source", "output", "output_format",
               "image", "target", "settings", "models", "keep_mask", "working_size", "measured",
               "latent", "encoder_passes", "seconds", "notices"]  # fmt: skip


def test_rgba_alpha_is_bit_exact(tmp_path, cli_model_args, capsys):
    rgba = np.dstack([painting(), np.arange(96 * 72).reshape(72, 96).astype(np.uint8)])
    source = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(source)
    code, _, err = cloak([str(source)], cli_model_args, capsys)
    assert code == 0, err
    written = np.asarray(Image.open(tmp_path / "rgba-cloaked.png"))
    assert np.array_equal(written[..., 3], rgba[..., 3])


def test_sixteen_bit_in_gives_sixteen_bit_out(tmp_path, cli_model_args, capsys):
    import cv2  # writes the 16-bit test file; artcloak reads it its own way

    deep = painting().astype(np.uint16) * 257 + 1
    source = tmp_path / "deep.png"
    cv2.imwrite(str(source), deep[..., ::-1])
    code, _, err = cloak([str(source)], cli_model_args, capsys)
    assert code == 0, err
    written = load_image(tmp_path / "deep-cloaked.png")
    assert written.bit_depth == 16
    change = np.abs(written.colour_samples().astype(int) - deep.astype(int))
    assert change.max() <= 8 * 257 and np.any(change % 257)
    assert report_of(tmp_path / "deep-cloaked.png")["measured"]["within_budget"]


def test_same_seed_same_bytes(rgb_png, cli_model_args, capsys):
    first, second = rgb_png.with_name("one.png"), rgb_png.with_name("two.png")
    assert cloak([str(rgb_png), "-o", str(first)], cli_model_args, capsys)[0] == 0
    assert cloak([str(rgb_png), "-o", str(second)], cli_model_args, capsys)[0] == 0
    assert first.read_bytes() == second.read_bytes()


def test_icc_profile_and_text_are_kept(tmp_path, cli_model_args, capsys):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "A. Painter")
    source = tmp_path / "meta.png"
    Image.fromarray(painting()).save(source, icc_profile=icc, pnginfo=info)
    assert cloak([str(source)], cli_model_args, capsys)[0] == 0
    written = Image.open(tmp_path / "meta-cloaked.png")
    assert written.info.get("icc_profile") == icc
    assert written.text.get("Author") == "A. Painter"


def test_keep_mask_leaves_marked_pixels_bit_exact(rgb_png, tmp_path, cli_model_args, capsys):
    mask = np.zeros((72, 96), dtype=np.uint8)
    mask[:, :40] = 255
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    code, _, err = cloak([str(rgb_png), "--keep-mask", str(mask_path)], cli_model_args, capsys)
    assert code == 0, err
    written = load_image(rgb_png.with_name("art-cloaked.png")).colour_samples()
    assert np.array_equal(written[:, :40], painting()[:, :40])
    assert not np.array_equal(written[:, 40:], painting()[:, 40:])


def test_json_mode_prints_protocol_events(rgb_png, cli_model_args, capsys):
    code, out, _ = cloak([str(rgb_png), "--json"], cli_model_args, capsys)
    assert code == 0
    events = [protocol.decode(line) for line in out.splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds.count("progress") >= 3
    assert kinds[-2:] == ["result", "summary"]
    assert events[-2]["within_budget"] is True
    optimising = [event for event in events if event.get("stage") == "optimise"]
    assert optimising[0]["step"] == 0 and optimising[0]["seconds_left"] >= 0  # before step 1


def test_the_expected_wait_is_said_before_the_first_step(rgb_png, cli_model_args, capsys):
    code, _, err = cloak([str(rgb_png)], cli_model_args, capsys)
    assert code == 0
    assert "for at most 3 steps (estimated" in err


def test_a_batch_goes_on_past_bad_files(tmp_path, cli_model_args, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(painting(seed=1)).save(folder / "a.png")
    (folder / "b.png").write_text("not an image")
    Image.fromarray(painting(seed=2)).save(folder / "c.png")
    code, out, err = cloak([str(folder), "-o", str(tmp_path / "out")], cli_model_args, capsys)
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "a-cloaked.png",
        "c-cloaked.png",
    ]
    assert "2 protected, 1 failed." in out
    assert "b.png" in err and "Traceback" not in err


def test_shade_pulls_toward_the_anchor(rgb_png, tmp_path, cli_model_args, capsys):
    anchor = tmp_path / "anchor.png"
    Image.fromarray(painting(seed=9)[::-1]).save(anchor)
    code, _, err = run(
        ["shade", str(rgb_png), "--anchor", str(anchor), *cli_model_args, *FAST], capsys
    )
    assert code == 0, err
    report = report_of(rgb_png.with_name("art-shaded.png"))
    assert report["target"] == {"kind": "anchors", "anchors": [str(anchor)]}
    assert report["latent"][0]["distance_closed"] > 0


@pytest.mark.parametrize("fmt, suffix", [("jpeg", ".jpg"), ("webp", ".webp")])
def test_lossy_output_reports_the_file_as_written(rgb_png, cli_model_args, capsys, fmt, suffix):
    """The report, the terminal line and `artcloak verify` on the written file agree: the
    budget figures are the file's, the perturbation's own are kept apart."""
    code, out, err = cloak([str(rgb_png), "--format", fmt], cli_model_args, capsys)
    assert code == 0, err
    written = rgb_png.with_name("art-cloaked" + suffix)
    report = report_of(written)
    code, verified, err = run(
        ["verify", str(rgb_png), str(written), "--style", "weave", *cli_model_args], capsys
    )
    assert code == 0, err
    on_file = json.loads(verified)["measured"]
    for key in ("linf_255", "psnr_db", "within_budget"):
        assert report["measured"][key] == on_file[key], key
    assert report["measured"]["lpips"] == pytest.approx(on_file["lpips"], abs=1e-5)
    before = report["before_encoding"]["measured"]
    assert before["linf_255"] <= 8 and before["within_budget"] is True
    assert "distance_closed" in report["latent"][0] and report["before_encoding"]["latent"]
    assert f"L-inf {report['measured']['linf_255']:g}/255" in out
    over = [n for n in report["notices"] if "encoding changed the pixels" in n]
    assert bool(over) == (not report["measured"]["within_budget"])


def test_lossless_output_has_no_before_encoding(rgb_png, cli_model_args, capsys):
    assert cloak([str(rgb_png)], cli_model_args, capsys)[0] == 0
    assert "before_encoding" not in report_of(rgb_png.with_name("art-cloaked.png"))


def test_verify_measures_budget_and_survival(rgb_png, cli_model_args, capsys):
    assert cloak([str(rgb_png)], cli_model_args, capsys)[0] == 0
    protected = rgb_png.with_name("art-cloaked.png")
    code, out, err = run(
        ["verify", str(rgb_png), str(protected), "--style", "weave", *cli_model_args], capsys
    )
    assert code == 0, err
    figures = json.loads(out)
    assert figures["measured"]["within_budget"] is True
    assert set(figures["after"]) == {"jpeg_q90", "jpeg_q75", "downscale_0.5"}
    assert figures["latent"][0]["distance_closed"] > 0


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size it does not have (decompression-bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        )

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def _bad_file(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello")
    elif kind == "truncated":
        Image.fromarray(painting()).save(path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "tiny":
        Image.new("RGB", (1, 1)).save(path)
    elif kind == "bomb":
        path.write_bytes(_png_claiming(40000, 40000))
    elif kind == "animated":
        path = folder / "animated.gif"
        frames = [Image.fromarray(painting(seed=s)) for s in range(2)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize(
    "kind", ["empty", "text", "truncated", "tiny", "bomb", "animated", "missing"]
)
def test_bad_input_gets_one_clear_line_and_nothing_written(kind, tmp_path, cli_model_args, capsys):
    source = _bad_file(kind, tmp_path)
    before = set(tmp_path.iterdir())
    code, out, err = cloak([str(source)], cli_model_args, capsys)
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(source.name) in lines[0]
    assert lines[0].count(source.name) == 1, "the path once, not twice"
    assert set(tmp_path.iterdir()) == before


def test_writing_over_the_input_is_refused(rgb_png, cli_model_args, capsys):
    before = rgb_png.read_bytes()
    code, _, err = cloak([str(rgb_png), "-o", str(rgb_png), "--overwrite"], cli_model_args, capsys)
    assert code == 1 and "Traceback" not in err
    assert rgb_png.read_bytes() == before


def test_an_existing_output_is_kept_unless_overwrite(rgb_png, cli_model_args, capsys):
    output = rgb_png.with_name("art-cloaked.png")
    output.write_bytes(b"precious")
    code, _, err = cloak([str(rgb_png)], cli_model_args, capsys)
    assert code == 1 and "exists" in err and "--overwrite" in err
    assert output.read_bytes() == b"precious"
    assert cloak([str(rgb_png), "--overwrite"], cli_model_args, capsys)[0] == 0
    assert output.read_bytes() != b"precious"


@pytest.mark.parametrize(
    "encoder, expected",
    [
        ("missing.safetensors", "missing.safetensors"),
        ("pickle", "pickle"),
        ("someone/not-a-real-vae", "download"),
    ],
)
def test_model_problems_get_one_clear_line(
    encoder, expected, rgb_png, tiny_models, monkeypatch, capsys
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = str(tiny_models["pickle"]) if encoder == "pickle" else encoder
    argv = ["cloak", str(rgb_png), "--encoder", source, "--lpips-random-backbone", *FAST]
    code, _, err = run(argv, capsys)
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and expected in err.lower()
    assert not rgb_png.with_name("art-cloaked.png").exists()
    if encoder.startswith("someone/"):
        from huggingface_hub import constants

        assert str(constants.HF_HUB_CACHE) in err, "says where the downloaded model goes"


def test_styles_lists_the_textures(capsys):
    code, out, _ = run(["styles"], capsys)
    assert code == 0 and "weave  (default)" in out and "marble" in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["cloak", "{art}", "--style", "no-such-style"], "Unknown style"),
        (["shade", "{art}", "--anchor", "missing-anchor.png"], "missing-anchor.png"),
        (["cloak", "{art}", "--eps", "0"], "eps"),
        (["cloak", "{art}", "--steps", "0"], "steps"),
    ],
)
def test_bad_settings_get_one_clear_line(argv, expected, rgb_png, cli_model_args, capsys):
    argv = [arg.replace("{art}", str(rgb_png)) for arg in argv]
    code, _, err = run([*argv, *cli_model_args], capsys)
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and expected in err
    assert sorted(p.name for p in rgb_png.parent.iterdir()) == ["art.png"]


def test_a_bad_image_is_reported_before_the_models_load(tmp_path, monkeypatch, capsys):
    """A missing encoder and an empty image: the image's one line comes first, and at once
    (loading even a tiny model would be the encoder's error instead)."""
    import time

    from artcloak.engine import protect

    loads = []
    monkeypatch.setattr(protect, "load_encoders", lambda *a, **k: loads.append(a) or [])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    argv = ["cloak", str(empty), "--encoder", str(tmp_path / "no-such-vae.safetensors"),
            "--device", "cpu"]  # fmt: skip
    started = time.perf_counter()
    code, _, err = run(argv, capsys)
    elapsed = time.perf_counter() - started
    assert code == 1 and "Traceback" not in err
    assert "empty.png" in err and "no-such-vae" not in err
    assert loads == []
    assert elapsed < 2, f"{elapsed:.1f} s before the image's error"


def _transparent_png(path: Path, seed: int = 0) -> Path:
    alpha = np.full((72, 96), 128, np.uint8)
    Image.fromarray(np.dstack([painting(seed=seed), alpha]), "RGBA").save(path)
    return path


@pytest.mark.parametrize(
    "command, options",
    [
        ("cloak", ["--format", "jpeg"]),
        ("cloak", ["-o", "{tmp}/out.jpg"]),
        ("shade", ["--concept", "a handbag", "--format", "jpeg"]),
    ],
)
def test_an_output_that_cannot_store_the_image_is_refused_before_the_models_load(
    command, options, tmp_path, monkeypatch, capsys
):
    """Transparency cannot go into a JPEG: one line, at once, nothing loaded or written
    (the missing encoder would be the error if anything loaded)."""
    import time

    from artcloak.engine import protect

    loads = []
    monkeypatch.setattr(protect, "load_encoders", lambda *a, **k: loads.append(a) or [])
    source = _transparent_png(tmp_path / "rgba.png")
    before = set(tmp_path.iterdir())
    options = [option.replace("{tmp}", str(tmp_path)) for option in options]
    argv = [command, str(source), *options, "--encoder", str(tmp_path / "no-such-vae.safetensors"),
            "--device", "cpu"]  # fmt: skip
    started = time.perf_counter()
    code, _, err = run(argv, capsys)
    elapsed = time.perf_counter() - started
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "rgba.png has transparency" in lines[0], err
    assert "PNG or WebP" in lines[0] and "no-such-vae" not in err
    assert loads == []
    assert elapsed < 2, f"{elapsed:.1f} s before the refusal"
    assert set(tmp_path.iterdir()) == before


def test_every_unwritable_output_of_a_run_is_refused_before_the_models_load(
    tmp_path, cli_model_args, monkeypatch, capsys
):
    """The refused input comes after a usable one (chunks of one): it is still refused
    before the run's models load, and the usable one is protected."""
    from artcloak.engine import run as engine_run

    events: list[str] = []
    resolve = engine_run.Run.resolve

    def spy(self, *args, **kwargs):
        events.append("models")
        return resolve(self, *args, **kwargs)

    monkeypatch.setattr(engine_run.Run, "resolve", spy)
    refuse = engine_run.refuse_output
    monkeypatch.setattr(engine_run, "refuse_output",
                        lambda request, output: events.append(request.source.name)
                        or refuse(request, output))  # fmt: skip
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(painting(seed=1)).save(folder / "a.png")
    _transparent_png(folder / "b.png")
    argv = [str(folder), "-o", str(tmp_path / "out"), "--format", "jpeg", "--batch-size", "1"]
    code, out, err = cloak(argv, cli_model_args, capsys)
    assert code == 1
    assert events[:3] == ["a.png", "b.png", "models"], events
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a-cloaked.jpg",
        "a-cloaked.jpg.json",
    ]
    assert "1 protected, 1 failed." in out
    assert "b.png has transparency" in err and "Traceback" not in err


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Offline, with no LPIPS backbone weights on this machine (a fresh torch hub folder)."""
    import socket

    import torch

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", unreachable)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "no-network"])
def test_a_missing_encoder_offline_names_the_option_and_lpips_weights_at_once(
    offline, rgb_png, no_network, monkeypatch, capsys
):
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        from artcloak.engine import encoders

        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(encoders.hub, "_hub_offline", lambda: False)
    argv = ["cloak", str(rgb_png), "--encoder", "someone/not-a-real-vae", "--device", "cpu"]
    code, _, err = run(argv, capsys)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, "no stray 'Downloading: ...' line before the error"
    assert "give a local .safetensors file with --encoder PATH instead" in lines[0]
    assert "(a VAE or a full checkpoint)" in lines[0]
    assert "LPIPS needs its ImageNet AlexNet weights too" in lines[0]
    assert "alexnet-owt-7be5be79.pth" in lines[0]


def test_missing_lpips_weights_offline_are_one_line(rgb_png, cli_model_args, no_network, capsys):
    argv = [arg for arg in cli_model_args if arg != "--lpips-random-backbone"]
    code, _, err = cloak([str(rgb_png)], argv, capsys)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Downloading" not in err, err
    assert "LPIPS needs its ImageNet AlexNet weights," in lines[0]
    assert "download.pytorch.org cannot be reached" in lines[0]


@pytest.mark.parametrize("host", ["krita", "gimp"])
def test_install_imports_no_torch(tmp_path, host):
    """`artcloak install` only copies files and records this Python: it must not pay for
    importing torch (seconds, and a failure where torch is broken)."""
    code = (
        "import sys\nfrom artcloak.cli import cli\n"
        f"try:\n    cli.main(['install', {host!r}, '--device', 'cpu'], standalone_mode=False)\n"
        "finally:\n    print('torch imported:', 'torch' in sys.modules)\n"
    )
    profile = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
               "XDG_DATA_HOME": str(tmp_path / "data")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **profile},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "torch imported: False", done.stdout
    assert "Copied" in done.stdout  # it did install
