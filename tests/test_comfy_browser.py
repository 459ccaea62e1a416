"""The artcloak pack in a real ComfyUI's editor, in a real browser: Debian's chromium driven by
Playwright against ComfyUI's own server (``--cpu``, loopback only) and its web frontend (the
``comfyui-frontend-package`` of ComfyUI's requirements), with this pack in ``custom_nodes``.

Checks that the page's LiteGraph registry and ``/object_info`` hold the seven artcloak node
types, that each example workflow of ``comfy_nodes/workflows`` loads in the editor with no
missing-node error, every link connected and every setting taken, and runs the small one
(``cloak_vae_api.json``, 3 steps at 64 px on a random-weight VAE) from the page, waiting for
the Cloak node's progress text and the reports in Preview as Text. Takes the screenshots of
comfy_nodes/README.md; they replace docs/comfyui-*.png only with ARTCLOAK_UPDATE_SCREENSHOTS=1,
so a test run leaves the checkout as it found it::

    python -m pytest tests/test_comfy_browser.py

with the ComfyUI of ``comfyui_host.py`` (the shared ComfyUI 0.8.0, or the one named by
ARTCLOAK_COMFYUI). Skips, saying why, without a ComfyUI, chromium or Playwright. Every
request the page makes off the machine is refused (ComfyUI's frontend asks api.comfy.org for
release notes).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import comfyui_host
import pytest
from browser import UPDATE_SCREENSHOTS, launched, playwright_or_skip

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "comfy_nodes"
DOCS = ROOT / "docs"
ARTCLOAK_NODES = ["artcloak.AddVAE", "artcloak.Cloak", "artcloak.ConceptAnchor",
                  "artcloak.SaveProtected", "artcloak.Shade", "artcloak.StyleTarget",
                  "artcloak.Verify"]  # fmt: skip
# the example workflows and their screenshots in docs/
SCREENSHOTS = {
    "cloak_vae_api.json": "comfyui-cloak-workflow.png",  # run in the page: reports shown
    "cloak_checkpoint_api.json": "comfyui-checkpoint-workflow.png",  # loaded, not run
    "shade_concept_api.json": "comfyui-shade-workflow.png",  # loaded, not run
}
CHECKPOINT = "v1-5-pruned-emaonly.safetensors"  # an empty file: listed, never loaded
SECOND_VAE = "sdxl_vae.safetensors"  # likewise, for the shade workflow's second Shade
VIEWPORT = {"width": 1600, "height": 900}
SETTINGS = {  # the editor as a first visit would not show it: no template browser, no popups
    "Comfy.TutorialCompleted": True,
    "Comfy.Minimap.Visible": False,
    "Comfy.Notification.ShowVersionUpdates": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 4,  # draw the text of a graph fitted to the window
}

if comfyui_host.skip_reason():
    pytest.skip(f"real-browser ComfyUI test skipped: {comfyui_host.skip_reason()}",
                allow_module_level=True)  # fmt: skip
sync_api = playwright_or_skip("the real-browser ComfyUI test")


def _smoke():
    spec = importlib.util.spec_from_file_location("artcloak_comfy_smoke", PACK / "smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


class ComfyUI:
    """ComfyUI's server on a free loopback port, with a temporary base directory holding
    this pack, a random full-size SD 1.x VAE, a placeholder checkpoint and two pictures."""

    def __init__(self, base: Path, host: comfyui_host.ComfyUIHost) -> None:
        smoke = _smoke()
        for sub in ("custom_nodes", "models/vae", "models/checkpoints", "input", "output",
                    "user/default"):  # fmt: skip
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "custom_nodes" / "artcloak").symlink_to(PACK, target_is_directory=True)
        smoke.random_vae(base / "models" / "vae" / "vae.safetensors")
        (base / "models" / "checkpoints" / CHECKPOINT).write_bytes(b"")
        (base / "models" / "vae" / SECOND_VAE).write_bytes(b"")
        smoke.picture(128, 96, 0).save(base / "input" / "artwork.png")
        smoke.picture(128, 96, 1).save(base / "input" / "style.png")
        smoke.picture(128, 96, 2).save(base / "input" / "cow.png")
        (base / "user" / "default" / "comfy.settings.json").write_text(json.dumps(SETTINGS))
        python = str(host.python)
        port = smoke.free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = base / "comfyui.log"
        command = [python, str(host.checkout / "main.py"), "--cpu", "--listen", "127.0.0.1",
                   "--port", str(port), "--base-directory", str(base), "--disable-auto-launch"]  # fmt: skip
        environment = {**os.environ, "ARTCLOAK_TEST_RANDOM_LPIPS": "1"}  # no AlexNet download
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, cwd=host.checkout, env=environment, stdout=log,
                                            stderr=subprocess.STDOUT)  # fmt: skip
        started = time.perf_counter()
        self.object_info = None
        while self.object_info is None:
            if self.process.poll() is not None or time.perf_counter() - started > 300:
                self.stop()
                pytest.fail(f"ComfyUI did not start:\n{self.log.read_text()[-5000:]}")
            try:
                self.object_info = _get(f"{self.url}/object_info")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory, real_comfyui):
    server = ComfyUI(tmp_path_factory.mktemp("comfyui-base"), real_comfyui)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    yield from launched(sync_api)


@pytest.fixture
def page(browser, comfyui):
    """ComfyUI's editor, ready; requests leaving the machine are refused."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.outside = []
    page.errors = []

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith((comfyui.url, "data:", "blob:")):
            request_route.continue_()
        else:
            page.outside.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(comfyui.url)
    page.wait_for_function("() => window.app?.vueAppReady && window.LiteGraph && app.graph")
    # record what the editor reports as missing when it loads a workflow
    page.evaluate(
        """() => {
            window.artcloakMissing = [];
            const show = app.showMissingNodesError.bind(app);
            app.showMissingNodesError = (types, ...rest) => {
                window.artcloakMissing.push(...types);
                return show(types, ...rest);
            };
        }"""
    )
    yield page
    context.close()


def load(page, name: str) -> dict:
    """Load an API-format example workflow as the editor does (app.loadApiJson) and check
    that the graph is the workflow: its nodes, every link and every setting."""
    workflow = json.loads((PACK / "workflows" / name).read_text())
    page.evaluate("([workflow, name]) => app.loadApiJson(workflow, name)", [workflow, name])
    page.wait_for_function(f"() => app.graph.nodes.length === {len(workflow)}")
    assert page.evaluate("() => window.artcloakMissing") == [], f"{name}: missing nodes"
    graph = page.evaluate(
        """() => Object.fromEntries(app.graph.nodes.map(node => [String(node.id), {
            type: node.type,
            linked: Object.fromEntries((node.inputs ?? []).filter(i => i.link != null).map(
                i => { const link = app.graph.links[i.link];
                       return [i.name, [String(link.origin_id), link.origin_slot]]; })),
            values: Object.fromEntries((node.widgets ?? []).map(w => [w.name, w.value])),
        }]))"""
    )
    assert sorted(graph) == sorted(workflow), name
    for key, node in workflow.items():
        shown = graph[key]
        assert shown["type"] == node["class_type"], (name, key)
        for input_name, value in node["inputs"].items():
            if isinstance(value, list):
                assert shown["linked"].get(input_name) == value, (name, key, input_name)
            else:
                assert shown["values"].get(input_name) == value, (name, key, input_name)
    return workflow


def lay_out(page, report_size=(300, 200)) -> None:
    """Wait for the pictures, size the reports, arrange the graph in columns (LiteGraph's own
    arrange, again now that the nodes have their sizes) and fit it to the window."""
    page.wait_for_function(  # the inputs' pictures and those of a run's outputs
        """() => {
            app.canvas.setDirty(true, true);
            return app.graph.nodes
                .filter(n => n.type === 'LoadImage' || app.nodeOutputs?.[n.id]?.images?.length)
                .every(n => n.imgs?.length && n.imgs.every(i => i.complete && i.naturalWidth));
        }"""
    )
    page.evaluate(
        """(reportSize) => {
            for (const node of app.graph.nodes) {
                if (node.type === 'PreviewAny') node.setSize(reportSize);
                if (node.type === 'PreviewImage') node.setSize([220, 260]);
                if (node.type === 'artcloak.Cloak') {  // room for its progress text
                    const [width, height] = node.computeSize();
                    node.setSize([Math.max(width, 420), height]);
                }
                if (node.imgs?.length && node.type !== 'LoadImage') {  // room for a run's picture
                    const [width, height] = node.computeSize();
                    node.setSize([Math.max(width, node.size[0]), Math.max(height, node.size[1])]);
                }
            }
            app.graph.arrange(60);
            app.canvas.setDirty(true, true);
        }""",
        list(report_size),
    )
    page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    page.wait_for_timeout(1500)  # the canvas draws on animation frames


def screenshot(page, name: str, tmp_path: Path) -> Path:
    """A PNG of the graph: the page cropped to the nodes' bounds on screen."""
    page.evaluate(  # the queue's "1 job completed" overlay, over the top right of the graph
        """() => {
            for (const element of document.querySelectorAll('span')) {
                if (!/^\\s*\\d+\\s+jobs? completed\\s*$/.test(element.textContent)) continue;
                let overlay = element;
                while (overlay.parentElement
                       && overlay.parentElement.getBoundingClientRect().width < 600)
                    overlay = overlay.parentElement;
                overlay.style.visibility = 'hidden';
            }
            app.canvas.setDirty(true, true);
        }"""
    )
    page.wait_for_timeout(500)
    box = page.evaluate(
        """() => {
            const rect = app.canvas.canvas.getBoundingClientRect();
            let [left, top, right, bottom] = [Infinity, Infinity, -Infinity, -Infinity];
            for (const node of app.graph.nodes) {
                const [x, y, w, h] = node.getBounding();
                const [sx, sy] = app.canvas.ds.convertOffsetToCanvas([x, y]);
                const [ex, ey] = app.canvas.ds.convertOffsetToCanvas([x + w, y + h]);
                left = Math.min(left, sx); top = Math.min(top, sy);
                right = Math.max(right, ex); bottom = Math.max(bottom, ey);
            }
            const pad = 16;
            const x = Math.max(rect.left, rect.left + left - pad);
            const y = Math.max(rect.top, rect.top + top - pad);
            return {x, y,
                    width: Math.min(rect.right, rect.left + right + pad) - x,
                    height: Math.min(rect.bottom, rect.top + bottom + pad) - y};
        }"""
    )
    path = (DOCS if UPDATE_SCREENSHOTS else tmp_path) / name
    page.screenshot(path=str(path), clip=box, style=".p-toast { display: none !important; }")
    from PIL import Image

    with Image.open(path) as image:
        assert image.width > 600 and image.height > 300, image.size
    return path


def test_the_seven_nodes_are_registered_in_the_page(comfyui, page):
    served = sorted(name for name in comfyui.object_info if name.startswith("artcloak."))
    assert served == ARTCLOAK_NODES
    registered = page.evaluate(
        """() => Object.entries(LiteGraph.registered_node_types)
              .filter(([type]) => type.startsWith('artcloak.'))
              .map(([type, node]) => [type, node.category, node.title])"""
    )
    assert sorted(type_ for type_, _, _ in registered) == ARTCLOAK_NODES
    assert {category for _, category, _ in registered} == {"artcloak"}, registered
    assert all(title.startswith("artcloak ") for _, _, title in registered), registered


def test_checkpoint_workflow_loads(page, tmp_path):
    name = "cloak_checkpoint_api.json"
    load(page, name)
    lay_out(page)
    screenshot(page, SCREENSHOTS[name], tmp_path)
    assert page.errors == [], page.errors


def test_shade_chain_workflow_loads(page, tmp_path):
    """The concept-poisoning chain: both Shades, the second's original and previous_report
    links, and Verify's, as the editor shows them."""
    name = "shade_concept_api.json"
    load(page, name)
    lay_out(page)
    screenshot(page, SCREENSHOTS[name], tmp_path)
    assert page.errors == [], page.errors
    assert seed_controls(page) == {
        "3": "fixed",  # artcloak Concept anchor
        "5": "fixed",  # the two Shades
        "6": "fixed",
    }


def seed_controls(page) -> dict[str, str]:
    """Each node's seed control as the editor shows it, by node id."""
    return page.evaluate(
        """() => Object.fromEntries(app.graph.nodes
              .map(node => [String(node.id), node.widgets?.find(w => w.name === 'seed')])
              .filter(([, seed]) => seed?.linkedWidgets?.length)
              .map(([id, seed]) => [id, seed.linkedWidgets[0].value]))"""
    )


def test_vae_workflow_loads_and_runs_from_the_page(page, tmp_path):
    name = "cloak_vae_api.json"
    workflow = load(page, name)
    cloak, verify = (next(key for key, node in workflow.items() if node["class_type"] == kind)
                     for kind in ("artcloak.Cloak", "artcloak.Verify"))  # fmt: skip
    previews = [key for key, node in workflow.items() if node["class_type"] == "PreviewAny"]
    # a quick run: 3 steps at 64 px (the settings as a user would change them on the nodes)
    page.evaluate(
        """([cloak, verify]) => {
            const set = (id, name, value) => {
                const widget = app.graph.getNodeById(id).widgets.find(w => w.name === name);
                widget.value = value;
                widget.callback?.(value);
            };
            set(cloak, 'steps', 3); set(cloak, 'resolution', 64); set(verify, 'resolution', 64);
        }""",
        [int(cloak), int(verify)],
    )
    lay_out(page)
    page.evaluate("() => app.queuePrompt(0, 1)")
    page.wait_for_function(  # both reports in their Preview as Text nodes
        """(ids) => ids.every(id => app.graph.getNodeById(id).widgets
              .some(w => w.name === 'preview' && String(w.value ?? '').startsWith('{')))""",
        arg=[int(key) for key in previews],
        timeout=600_000,
    )
    progress = page.evaluate(
        """(id) => app.graph.getNodeById(id).widgets
              .find(w => w.name === '$$node-text-preview')?.value ?? null""",
        int(cloak),
    )
    assert progress and "budget" in progress.lower(), progress
    reports = page.evaluate(
        """(ids) => ids.map(id => app.graph.getNodeById(id).widgets
              .find(w => w.name === 'preview' && !w.hidden).value)""",
        [int(key) for key in previews],
    )
    by_title = {workflow[key]["_meta"]["title"]: json.loads(text)
                for key, text in zip(previews, reports, strict=True)}  # fmt: skip
    assert by_title["Cloak report"]["working_resolution"] == 64
    assert by_title["Verify report"]["within_budget"] is True
    # the run kept the seed: running the graph again protects the same way
    assert seed_controls(page) == {cloak: "fixed"}
    seed = page.evaluate(
        "(id) => app.graph.getNodeById(id).widgets.find(w => w.name === 'seed').value", int(cloak)
    )
    assert seed == workflow[cloak]["inputs"]["seed"]
    lay_out(page, report_size=(440, 280))  # room for the reports and the progress text
    screenshot(page, SCREENSHOTS[name], tmp_path)
    assert page.errors == [], page.errors
