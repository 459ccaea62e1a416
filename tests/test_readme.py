"""The README's examples that need no network run as written (offline, in a scratch folder
holding a copy of examples/ and a link to this environment as .venv, with a scratch HOME).

A code block is such an example when the line before it is the marker below; the others
download a model (the default encoder), need an editor or a browser, or name your own files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- offline example: tests/test_readme.py runs it -->"
FENCE = "```"


def offline_examples(text: str) -> list[str]:
    """The bash blocks that follow the marker, as written."""
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if line.strip() == MARKER:
            assert lines[index + 1].startswith(FENCE + "bash"), f"README line {index + 2}"
            end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith(FENCE))
            blocks.append("\n".join(lines[index + 2 : end]))
    return blocks


EXAMPLES = offline_examples((ROOT / "README.md").read_text())


def test_the_readme_marks_its_offline_examples():
    assert len(EXAMPLES) >= 3
    assert any("testing.pipelines" in block for block in EXAMPLES)


@pytest.fixture
def scratch(tmp_path) -> Path:
    folder = tmp_path / "checkout"
    shutil.copytree(ROOT / "examples", folder / "examples")
    (folder / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (tmp_path / "home").mkdir()
    return folder


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda block: block.splitlines()[-1][:60])
def test_an_offline_readme_example_runs_as_written(block, scratch):
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("XDG_", "HF_", "ARTCLOAK_"))
    }
    environment.update(
        HOME=str(scratch.parent / "home"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        HF_HUB_OFFLINE="1",
    )
    written_to_tmp = [Path(part) for part in block.split() if part.startswith("/tmp/")]
    for path in written_to_tmp:
        shutil.rmtree(path, ignore_errors=True)
    try:
        done = subprocess.run(
            ["bash", "-e", "-c", block],
            cwd=scratch,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        for path in written_to_tmp:
            shutil.rmtree(path, ignore_errors=True)
    assert done.returncode == 0, f"{block}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr
    if "artcloak cloak examples/artwork.png" in block:
        assert (scratch / "examples" / "artwork-cloaked.png").is_file()
        assert (scratch / "examples" / "artwork-cloaked.png.json").is_file()
    if "install krita" in block:
        assert list((scratch.parent / "home").rglob("artcloak_export.desktop"))
    if "install gimp" in block:
        assert list((scratch.parent / "home").rglob("artcloak-export.py"))
