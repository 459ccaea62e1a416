"""Run an example workflow through a real ComfyUI, over its own HTTP API.

    python comfy_nodes/smoke.py --comfyui /path/to/ComfyUI [--vae my_vae.safetensors]

Starts ComfyUI (its ``main.py``, with ``--python``'s interpreter, by default this one) on a
free local port with a temporary base directory whose ``custom_nodes`` holds this pack, posts
``workflows/cloak_vae_api.json`` (load image, load VAE, artcloak Cloak, artcloak Save
Protected, artcloak Verify, the reports in Preview as Text), waits for it, and checks that a
protected PNG was saved, with no text chunks, and that Verify's report shows the budget held
on it. Without ``--vae`` a full-size SD 1.x VAE with random weights is written
(offline; the protection is then meaningless but every code path is real). Prints a JSON
summary; exit status 0 when the budget held. Needs artcloak in ComfyUI's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

PACK = Path(__file__).resolve().parent
WORKFLOW = PACK / "workflows" / "cloak_vae_api.json"


def png_chunks(path: Path) -> list[str]:
    """The chunk types of a PNG file, in order (IHDR, IDAT, ..., IEND for a bare image)."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    chunks, offset = [], 8
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8].decode("latin-1"))
        offset += 12 + length
    return chunks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def picture(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    return coarse.resize((width, height), Image.Resampling.BICUBIC)


def random_vae_state(seed: int = 0) -> dict:
    """A full-size SD 1.x VAE's weights, random, fp16, in the original key layout."""
    import torch
    from artcloak.testing import full_size_vae_config, to_original_layout
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    config = {k: v for k, v in full_size_vae_config("sd1").items() if not k.startswith("_")}
    vae = AutoencoderKL(**config)
    return {k: v.half().contiguous() for k, v in to_original_layout(vae.state_dict()).items()}


def random_vae(path: Path, seed: int = 0) -> None:
    """A random full-size SD 1.x VAE file, as ComfyUI's VAE Loader loads it."""
    from safetensors.torch import save_file

    save_file(random_vae_state(seed), str(path))


def _get(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise SystemExit(f"ComfyUI refused the workflow: {error.read().decode()[:2000]}") from None


def _stopped(server, log_path) -> str:
    code = server.poll()
    why = "did not finish in time" if code is None else f"stopped ComfyUI (exit status {code})"
    return f"The workflow {why}; see {log_path}"


def run_prompt(url, workflow, server, started, timeout, log_path, on_queued=None) -> dict:
    """Queue a workflow and wait for its history entry."""
    body = {"prompt": workflow, "client_id": uuid.uuid4().hex}
    prompt_id = _post(f"{url}/prompt", body)["prompt_id"]
    if on_queued is not None:
        on_queued()
    while True:
        if server.poll() is not None or time.perf_counter() - started > timeout:
            raise SystemExit(_stopped(server, log_path))
        history = _get(f"{url}/history/{prompt_id}").get(prompt_id)
        if history and history.get("status", {}).get("completed") is not None:
            return history
        time.sleep(0.5)


FIRST_STEP = "step 1 took"  # the node's log line once its first encoder pass is done
LONG_RESOLUTION = 256  # passes slow enough that the loop cannot converge before Cancel


def _interrupt_check(url, workflow, server, args, log_path) -> dict:
    """Queue a protection that would take very long, press ComfyUI's Cancel (POST
    /interrupt) SECONDS after its first step is logged, and time how long the node takes to
    stop. (A fixed delay from queueing raced the loop's own stop on a fast machine.)"""
    long = json.loads(json.dumps(workflow))
    for node in long.values():
        if node["class_type"] == "artcloak.Cloak":
            node["inputs"]["steps"] = 10_000
            node["inputs"]["resolution"] = LONG_RESOLUTION
    steps_logged = log_path.read_text(errors="replace").count(FIRST_STEP)
    pressed = {}

    def press() -> None:
        deadline = time.perf_counter() + args.timeout
        while log_path.read_text(errors="replace").count(FIRST_STEP) == steps_logged:
            if server.poll() is not None or time.perf_counter() > deadline:
                return
            time.sleep(0.1)
        time.sleep(args.interrupt)
        pressed["at"] = time.perf_counter()
        _post(f"{url}/interrupt", {})

    history = run_prompt(url, long, server, time.perf_counter(), args.timeout, log_path, press)
    messages = [kind for kind, _ in history["status"].get("messages", [])]
    return {
        "status": history["status"].get("status_str"),
        "interrupted": "execution_interrupted" in messages,
        "seconds_to_stop": round(time.perf_counter() - pressed.get("at", time.perf_counter()), 2),
    }


class ComfyUIServer:
    """ComfyUI's main.py on a free loopback port with ``base`` as its base directory, ready
    (its /object_info answered, the artcloak nodes loaded) once constructed."""

    def __init__(self, args: argparse.Namespace, comfyui: Path, base: Path) -> None:
        port = free_port()
        env = dict(os.environ)
        if args.random_lpips:
            env["ARTCLOAK_TEST_RANDOM_LPIPS"] = "1"
        command = [args.python, str(comfyui / "main.py"), "--listen", "127.0.0.1", "--port",
                   str(port), "--base-directory", str(base), "--disable-auto-launch",
                   *(["--cpu"] if args.cpu else [])]  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = base / "comfyui.log"
        self.started = time.perf_counter()
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                command, cwd=comfyui, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self.info = self._wait_for_object_info(args.timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_for_object_info(self, timeout: float) -> dict:
        while True:
            if self.process.poll() is not None or time.perf_counter() - self.started > timeout:
                raise SystemExit(f"ComfyUI did not start; see {self.log_path}")
            try:
                info = _get(f"{self.url}/object_info", timeout=30)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
                continue
            if "artcloak.Cloak" not in info:
                raise SystemExit(f"ComfyUI did not load the artcloak nodes; see {self.log_path}")
            return info

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def comfyui_checkout(path: str) -> Path:
    comfyui = Path(path).resolve()
    if not (comfyui / "main.py").is_file():
        raise SystemExit(f"{comfyui} is not a ComfyUI checkout (no main.py).")
    return comfyui


def base_directory(keep: str | None) -> Path:
    """ComfyUI's base directory for a run, with this pack linked into its custom_nodes."""
    base = Path(keep).resolve() if keep else Path(tempfile.mkdtemp(prefix="artcloak-"))
    for sub in ("custom_nodes", "models/vae", "models/checkpoints", "input", "output"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / "artcloak"
    if not link.exists():
        link.symlink_to(PACK, target_is_directory=True)
    return base


def run(args: argparse.Namespace) -> dict:
    comfyui = comfyui_checkout(args.comfyui)
    base = base_directory(args.keep)
    workflow = prepare(args, base)
    server = ComfyUIServer(args, comfyui, base)
    try:
        info, url, log_path = server.info, server.url, server.log_path
        loaded = sorted(name for name in info if name.startswith("artcloak."))
        seed_controls = {  # what the editor does to each seed widget after a run
            name: spec[1].get("control_after_generate")
            for name in loaded for group in info[name]["input"].values()
            for key, spec in group.items() if key == "seed"
        }  # fmt: skip
        history = run_prompt(url, workflow, server.process, server.started, args.timeout, log_path)
        interrupt = (
            _interrupt_check(url, workflow, server.process, args, log_path)
            if args.interrupt
            else None
        )
    finally:
        server.stop()
    summary = {
        "status": history["status"].get("status_str"),
        "seconds": round(time.perf_counter() - server.started, 1),
        "nodes": loaded,
        "seed_controls": seed_controls,
        "interrupt": interrupt,
        **outputs_summary(history.get("outputs", {}), base),
        "base_directory": str(base),
        "log": str(log_path),
    }
    if summary["status"] != "success":
        summary["messages"] = history["status"].get("messages")
    return summary


def prepare(args: argparse.Namespace, base: Path) -> dict:
    """The VAE and the pictures in ComfyUI's folders; the workflow with the run's settings."""
    vae_file = base / "models" / "vae" / "vae.safetensors"
    if args.vae:
        shutil.copyfile(args.vae, vae_file)
    elif not vae_file.exists():
        random_vae(vae_file)
    picture(args.width, args.height, 0).save(base / "input" / "artwork.png")
    picture(args.width, args.height, 1).save(base / "input" / "style.png")
    workflow = json.loads(WORKFLOW.read_text())
    for node in workflow.values():
        node.pop("_meta", None)
        if node["class_type"] in ("artcloak.Cloak", "artcloak.Verify"):
            node["inputs"]["resolution"] = args.resolution
            node["inputs"]["model_family"] = args.family
        if node["class_type"] == "artcloak.Cloak":
            node["inputs"]["steps"] = args.steps
    return workflow


def outputs_summary(outputs: dict, base: Path) -> dict:
    """What the workflow's nodes gave: the saved files, the reports, the logged estimate."""
    saved = [
        base / "output" / item.get("subfolder", "") / item["filename"]
        for item in outputs.get("5", {}).get("images", [])
    ]
    report = json.loads(outputs["6"]["text"][0]) if "6" in outputs else None
    cloak_report = outputs.get("4", {}).get("text") or [None]  # shown on the Cloak node
    previewed = outputs.get("8", {}).get("text") or [None]  # and in Preview as Text
    log_text = (base / "comfyui.log").read_text(errors="replace")
    return {
        "saved": [str(path) for path in saved],
        "png_chunks": sorted({chunk for path in saved for chunk in png_chunks(path)}),
        "cloak_report_on_node": cloak_report[0] is not None,
        "cloak_report_previewed": cloak_report[0] is not None and previewed[0] == cloak_report[0],
        "cloak_report": json.loads(cloak_report[0]) if cloak_report[0] else None,
        "estimate_logged": [
            line for line in log_text.splitlines() if " for " in line and "an estimate" in line
        ][:1],  # fmt: skip
        "within_budget": bool(report and report["within_budget"]),
        "verify": report,
    }


def server_arguments(description: str) -> argparse.ArgumentParser:
    """The options every smoke run takes: the ComfyUI, its Python, the picture, the server."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--comfyui", required=True, help="a ComfyUI checkout")
    parser.add_argument("--python", default=sys.executable, help="ComfyUI's Python")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--cpu", action="store_true", help="run ComfyUI on the CPU")
    parser.add_argument(
        "--random-lpips", action="store_true",
        help="tests only: a random LPIPS backbone where the ImageNet weights cannot be had",
    )  # fmt: skip
    parser.add_argument("--keep", help="use (and keep) this base directory")
    parser.add_argument("--timeout", type=float, default=900)
    return parser


def report(summary: dict) -> int:
    """Print the summary; 0 when the run succeeded, saved its files and kept the budget."""
    print(json.dumps(summary, indent=2))
    saved_ok = bool(summary["saved"]) and all(Path(p).is_file() for p in summary["saved"])
    return 0 if summary["status"] == "success" and saved_ok and summary["within_budget"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = server_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--vae", help="a VAE .safetensors file (default: random full-size SD1)")
    parser.add_argument("--family", default="auto", help="the VAE's model family")
    parser.add_argument("--steps", type=int, default=0, help="optimisation steps (0: preset)")
    parser.add_argument("--resolution", type=int, default=0, help="working resolution (0: model's)")
    parser.add_argument(
        "--interrupt", type=float, default=0, metavar="SECONDS",
        help="also check cancelling: interrupt a long protection SECONDS after its first step",
    )  # fmt: skip
    return report(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
