"""The layers of the package, read from its imports: the engine never imports a front end,
the request and the leaves never import the engine, and the product never imports its test kits.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "core" / "artcloak"

# Rank of each top-level part of the package: a module imports only parts of its rank or lower.
LEAVES = {"errors", "atomic", "progress", "settings", "protocol", "client", "report", "results",
          "memory"}  # fmt: skip
ENGINE = {"engine"}
FRONT_ENDS = {"cli", "worker", "app", "batch", "install", "__main__", "__init__"}
RANKS = {**dict.fromkeys(LEAVES, 0), **dict.fromkeys(ENGINE, 1), **dict.fromkeys(FRONT_ENDS, 2)}
STDLIB_ONLY = {
    "settings",
    "results",
    "protocol",
    "client",
    "errors",
}  # copied next to plugins, or plain data


def part_of(path: Path) -> str:
    """The top-level part a module file belongs to (``engine``, ``cli``, ``settings``, ...)."""
    relative = path.relative_to(PACKAGE).with_suffix("")
    return relative.parts[0]


def imported_parts(path: Path) -> tuple[set[str], set[str]]:
    """(artcloak parts, other top-level modules) that the file imports, at any depth."""
    tree = ast.parse(path.read_text())
    package_parts = path.relative_to(PACKAGE).parent.parts
    ours, others = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, *rest = alias.name.split(".")
                if top == "artcloak":
                    ours.add(rest[0] if rest else "__init__")
                else:
                    others.add(top)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                top, *rest = (node.module or "").split(".")
                if top == "artcloak":
                    names = rest[:1] or [alias.name for alias in node.names]
                    ours.update(names)
                else:
                    others.add(top)
                continue
            base = package_parts[: len(package_parts) - (node.level - 1)]
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:
                ours.add(target[0])
            else:  # from . import x (at the package's top)
                ours.update(alias.name for alias in node.names)
    return ours, others


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "testing" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    part = part_of(path)
    assert part in RANKS, f"{part} has no layer: add it to tests/test_layers.py"
    ours, others = imported_parts(path)
    assert "testing" not in ours, "the product never imports its test kits"
    upward = sorted(name for name in ours - {part} if RANKS.get(name, 0) > RANKS[part])
    assert not upward, f"{path.name} ({part}) imports a higher layer: {upward}"
    if part in STDLIB_ONLY:
        sibling = {"protocol"} if part == "client" else set()  # beside it once copied
        assert others <= set(sys.stdlib_module_names) | {"__future__"} | sibling, others


@pytest.mark.parametrize("folder", ["krita_plugin", "gimp_plugin"])
def test_editor_plugins_import_neither_torch_nor_the_package(folder):
    for path in (ROOT / folder).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"torch", "numpy", "artcloak"}, (path, name)


def test_the_layer_check_sees_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "artcloak"
    (fake / "engine").mkdir(parents=True)
    module = fake / "engine" / "bad.py"
    module.write_text("from ..cli import options\nfrom .. import settings\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert imported_parts(module)[0] == {"cli", "settings"}
    with pytest.raises(AssertionError, match="higher layer"):
        test_imports_go_down_the_layers(module)


def engine_modules_imported(path: Path, source: str | None = None) -> set[str]:
    """The engine modules (``engine.protect``, ...) a file imports, other than the seam
    (``source``: the file's text, if not read from ``path``)."""
    tree = ast.parse(path.read_text() if source is None else source)
    inside = path.is_relative_to(PACKAGE)
    depth = len(path.relative_to(PACKAGE).parent.parts) if inside else 0
    found = set()
    for node in ast.walk(tree):
        module = None
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
        elif isinstance(node, ast.ImportFrom) and inside and node.level == depth + 1:
            module = f"artcloak.{node.module}" if node.module else None
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names
                         if alias.name.startswith("artcloak.engine."))  # fmt: skip
        if module and module.startswith("artcloak.engine."):
            found.add(module)
    return found


FRONT_END_FILES = sorted(
    [
        *(p for p in PACKAGE.rglob("*.py") if part_of(p) in FRONT_ENDS),
        *(ROOT / "comfy_nodes").rglob("*.py"),
    ]
)


@pytest.mark.parametrize("path", FRONT_END_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_front_ends_import_only_the_engine_seam(path):
    """Front ends and the ComfyUI pack use the engine through ``artcloak.engine`` alone."""
    assert engine_modules_imported(path) == set(), f"{path.name} reaches into the engine"


def test_the_seam_check_sees_an_engine_module():
    source = "from ..engine.protect import Engine\nfrom ..engine import Run\nimport os\n"
    in_cli = PACKAGE / "cli" / "options.py"
    assert engine_modules_imported(in_cli, source) == {"artcloak.engine.protect"}
    pack = "from artcloak.engine.verify import verify_images\nfrom artcloak.engine import Run\n"
    in_pack = ROOT / "comfy_nodes" / "nodes.py"
    assert engine_modules_imported(in_pack, pack) == {"artcloak.engine.verify"}


def test_the_seam_exports_what_it_lists():
    import artcloak.engine as seam

    for name in seam.__all__:
        assert getattr(seam, name) is not None, name
    with pytest.raises(AttributeError):
        seam.not_exported  # noqa: B018


CLI_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def _message_strings(path: Path) -> list[str]:
    """The string pieces of a module that are not docstrings (a message's words)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [PACKAGE / "settings.py", *sorted((PACKAGE / "engine").rglob("*.py"))],
    ids=lambda path: str(path.relative_to(PACKAGE)),
)
def test_core_messages_name_no_command_line_option(path):
    """App, plugin and ComfyUI users see the core's messages too: they name settings in words
    (errors.Named), which the CLI turns into its options."""
    named = [text for text in _message_strings(path) if CLI_OPTION.search(text)]
    assert named == [], f"{path.name} names a CLI option: {named}"


PRODUCT = sorted(
    path
    for folder in ("core/artcloak", "comfy_nodes", "krita_plugin", "gimp_plugin")
    for path in (ROOT / folder).rglob("*.py")
    if "testing" not in path.relative_to(ROOT).parts
)
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60


def long_functions(source: str) -> list[str]:
    """The functions of ``source`` longer than MAX_FUNCTION_LINES, with their lengths."""
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_product_modules_and_functions_stay_small(path):
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name}: split the module"
    assert long_functions(source) == [], f"{path.name}: split these"


def test_the_size_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def long():\n{body}\n") == [f"long ({MAX_FUNCTION_LINES + 1} lines)"]
    assert long_functions("def short():\n    return 1\n") == []
