"""The README's examples that need no network run as written (offline, in a scratch folder
holding a copy of examples/ and a link to this environment as .venv, with a scratch HOME).

A code block is such an example when the line before it is the marker below; the others
download a model (the default encoder), need an editor or a browser, or name your own files.
Those are checked without running them (second half): in README.md, comfy_nodes/README.md and
docs/*.md, every artcloak command parses with the CLI's own parser and every `python
script.py` with the script's (its flags and values), every module and test named exists, every
repository path and link resolves, and the README's tables and lists (presets, styles, worker
names, batch options, the set-up command CI runs) are the code's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from artcloak.cli import cli
from artcloak.protocol import ENVELOPE
from artcloak.settings import FLAT_NAMES, INTENSITY_BUDGETS, QUALITY_EFFORT, Intensity
from click.testing import CliRunner

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


# The rest of the README, checked without running a protection: every command line parses with
# the real parser, every path and link it names exists, and the tables say what the code does.

DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "comfy_nodes" / "README.md",
    *sorted(ROOT.glob("docs/*.md")),
]
TRACKED_TOP = {"bench", "comfy_nodes", "core", "docs", "examples", "gimp_plugin", "krita_plugin"}
TRACKED_TOP |= {"tests", ".ci", "LICENSE", "pyproject.toml", "README.md"}
WRITTEN_BY_THE_SETUP = {"examples/artwork-cloaked.png", "examples/artwork-cloaked.png.json"}
ARTCLOAK = {"artcloak", ".venv/bin/artcloak"}
PYTHON = {"python", "python3", ".venv/bin/python"}


def fenced_blocks(text: str, language: str = "") -> list[str]:
    """The code blocks (of one language, or all), as written."""
    blocks, inside, lines = [], None, []
    for line in text.splitlines():
        if inside is None and line.startswith(FENCE):
            inside, lines = line[len(FENCE) :].strip(), []
        elif inside is not None and line.startswith(FENCE):
            if inside == language or not language:
                blocks.append("\n".join(lines))
            inside = None
        elif inside is not None:
            lines.append(line)
    return blocks


def prose(text: str) -> str:
    """The text without its code blocks (fences included)."""
    kept, inside = [], False
    for line in text.splitlines():
        if line.startswith(FENCE):
            inside = not inside
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


def inline_code(text: str) -> list[str]:
    """The `code spans` of the prose, a span broken over lines joined with one space."""
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose(text))]


def commands(text: str) -> list[tuple[str, bool]]:
    """Every command, and whether it is complete: each line of the bash blocks (continuations
    joined; complete) and each code span of the prose (maybe a fragment such as `artcloak
    batch`), split at `&&`."""
    found = []
    for block in fenced_blocks(text, "bash"):
        found += [(line, True) for line in block.replace("\\\n", " ").splitlines()]
    found += [(span, False) for span in inline_code(text)]
    return [
        (part.strip(), complete)
        for line, complete in found
        for part in line.split("&&")
        if part.strip()
    ]


def words(command: str) -> list[str]:
    """A command's words, comments, leading VAR=value and [optional] brackets dropped."""
    tokens = [token.strip("[]") for token in shlex.split(command, comments=True)]
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        tokens.pop(0)
    return tokens


def every(kind, fragments: bool = True) -> list:
    """pytest.param(words, complete) for each command of every document that `kind` picks,
    named by document and command; fragments of the prose too, unless told not."""
    picked = []
    for document in DOCUMENTS:
        for command, complete in commands(document.read_text()):
            try:
                tokens = words(command)
            except ValueError:  # not shell: a code span of prose such as "don't"
                continue
            if tokens and kind(tokens) and (complete or fragments):
                where = f"{document.relative_to(ROOT)}: {' '.join(tokens)}"
                picked.append(pytest.param(tokens, complete, id=where[:100]))
    return picked


def is_artcloak(tokens):
    return tokens[0] in ARTCLOAK and len(tokens) > 1 and not tokens[1].isupper()


def is_script(tokens):
    return tokens[0] in PYTHON and len(tokens) > 1 and tokens[1].endswith(".py")


def is_module(tokens):
    return tokens[0] in PYTHON and len(tokens) > 2 and tokens[1] == "-m"


def parse_artcloak(arguments: list[str]) -> dict:
    """The artcloak command line parsed as `artcloak` parses it, down its groups (`artcloak
    install krita`); nothing runs. click's usage errors (an unknown command or option, a bad
    value, a missing argument) propagate."""
    command, context, rest = cli, click.Context(cli, info_name="artcloak"), list(arguments)
    while isinstance(command, click.Group):
        if not rest:
            raise click.MissingParameter(ctx=context, param_hint="COMMAND")
        name, command, rest = command.resolve_command(context, rest)
        if isinstance(command, click.Group):
            context = click.Context(command, info_name=name, parent=context)
    try:
        with command.make_context(name, rest, parent=context) as leaf:
            return leaf.params
    except click.exceptions.Exit as stop:  # --help: parsed, and click would print the help
        assert stop.exit_code == 0
        return {"help": True}


def test_the_readmes_name_their_commands():
    """The pickers below find the commands (a guard against a parser that finds nothing)."""
    assert len(every(is_artcloak, fragments=False)) >= 25
    assert len(every(is_script, fragments=False)) >= 10
    assert len(every(is_script)) >= 15
    assert any(param.values[0][2] == "pytest" for param in every(is_module))


@pytest.mark.parametrize("tokens, complete", every(is_artcloak))
def test_an_artcloak_command_of_the_readme_parses(tokens, complete):
    """A command of a bash block parses in full; one in the prose (`artcloak batch --ray`, a
    fragment) has no unknown command, option or value."""
    try:
        parse_artcloak(tokens[1:])
    except click.MissingParameter:
        if complete:
            raise


def test_a_wrong_artcloak_command_does_not_parse():
    for wrong in (
        ["cloak", "art.png", "--stlye", "marble"],
        ["clok", "art.png"],
        ["cloak", "art.png", "--intensity", "loud"],
        ["batch", "archive/"],
        ["install", "photoshop"],
    ):
        with pytest.raises(click.UsageError):
            parse_artcloak(wrong)
    assert parse_artcloak(["cloak", "art.png", "--style", "marble"])["style"] == "marble"


# Runs each script as `python SCRIPT ARGS` would, in one process (so torch loads once), up to the
# moment its argparse parser has parsed the arguments; argparse's own error (exit status 2) is
# what a wrong flag or value gives.
PARSE_SCRIPTS = r"""
import argparse, contextlib, io, json, os, runpy, sys

class Parsed(Exception):
    pass

def parsed(self, args=None, namespace=None):
    self.allow_abbrev = False  # the README spells each flag out
    original(self, args, namespace)
    raise Parsed

FOLDERS = tuple(os.path.abspath(folder) + os.sep for folder in ("bench", "comfy_nodes", "tests"))

def from_the_scripts(module):  # bench/'s and comfy_nodes/' own modules, not artcloak's
    try:
        places = [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or [])]
    except TypeError:  # a module whose __path__ is something else
        return False
    return any(str(place).startswith(FOLDERS) for place in places)

original = argparse.ArgumentParser.parse_args
argparse.ArgumentParser.parse_args = parsed
results, folder = {}, None
for script, arguments in sorted(json.load(sys.stdin)):  # a folder's scripts share their modules
    if json.dumps([script, arguments]) in results:
        continue
    if os.path.dirname(script) != folder:  # bench/ and comfy_nodes/ reuse module names
        for name in [name for name, module in sys.modules.items() if from_the_scripts(module)]:
            del sys.modules[name]
    folder, path, stderr = os.path.dirname(script), list(sys.path), io.StringIO()
    sys.argv, sys.path[0] = [script, *arguments], os.path.abspath(folder)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            runpy.run_path(script, run_name="__main__")
        result = "ran to the end without parsing its arguments with argparse"
    except Parsed:
        result = None
    except SystemExit as stop:
        result = f"exit status {stop.code}: {stderr.getvalue().strip()[-500:]}"
    except Exception as error:
        result = f"{type(error).__name__}: {error}"
    finally:
        sys.path[:] = path
    results[json.dumps([script, arguments])] = result
print(json.dumps(results))
"""


def parse_scripts(calls: list[tuple[str, list[str]]]) -> list[str | None]:
    """For each (script, arguments): None where argparse takes them, else what went wrong."""
    done = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPTS],
        input=json.dumps(calls),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    return [results[json.dumps([script, list(arguments)])] for script, arguments in calls]


def test_every_script_the_readmes_run_exists_and_takes_the_flags_given():
    calls, wheres = [], []
    for param in every(is_script):
        tokens, where = param.values[0], param.id
        script = tokens[1]
        assert (ROOT / script).is_file(), where
        if "ArgumentParser" in (ROOT / script).read_text():  # the others are only checked to exist
            calls.append((script, tokens[2:]))
            wheres.append(where)
    assert len(calls) >= 15
    wrong = ("bench/fuzz.py", ["--files", "10", "--no-such-flag"])
    results = parse_scripts([*calls, wrong])
    assert results[-1] and "--no-such-flag" in results[-1], results[-1]
    problems = [
        f"{where}: {result}" for where, result in zip(wheres, results[:-1], strict=True) if result
    ]
    assert not problems, "\n".join(problems)


def test_every_module_and_test_the_readmes_run_exists():
    import importlib.util

    for param in every(is_module):
        (tokens, _), where = param.values, param.id
        module, arguments = tokens[2], tokens[3:]
        assert importlib.util.find_spec(module), where
        files = [ROOT / argument for argument in arguments if argument.startswith("tests/")]
        assert all(file.is_file() for file in files), where
        if "-k" in arguments:
            selected = arguments[arguments.index("-k") + 1]
            tests = re.findall(r"def (test_\w+)", "".join(file.read_text() for file in files))
            assert any(selected in test for test in tests), f"{where}: -k selects no test"


def named_paths(document: Path) -> list[str]:
    """The repository paths a document names: in code spans and in its bash blocks' words."""
    text = document.read_text()
    candidates = list(inline_code(text))
    for block in fenced_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            candidates += words(line)
    paths = []
    for candidate in candidates:
        path = candidate.split("::")[0]
        if re.fullmatch(r"[\w.\-/*]+", path) and path.split("/")[0] in TRACKED_TOP:
            paths.append(candidate)
    return paths


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_path_a_readme_names_exists(document):
    named = named_paths(document)
    missing = []
    for candidate in named:
        path, _, test = candidate.partition("::")
        if path in WRITTEN_BY_THE_SETUP:
            continue
        exists = bool(list(ROOT.glob(path)))
        if exists and test:
            exists = bool(re.search(rf"def {re.escape(test)}\(", (ROOT / path).read_text()))
        if not exists:
            missing.append(candidate)
    assert not missing, f"{document.name} names what is not in the repository: {missing}"
    if document.name == "README.md" and document.parent == ROOT:
        assert set(named) >= WRITTEN_BY_THE_SETUP
        assert any("::" in candidate for candidate in named)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_of_a_readme_resolves(document):
    text = prose(document.read_text())
    links = [target for target in re.findall(r"\]\(([^)\s]+)\)", text)]
    local = [target.split("#")[0] for target in links if "://" not in target]
    local = [target for target in local if target]
    broken = [target for target in local if not (document.parent / target).exists()]
    assert not broken, f"{document.name}: broken links {broken}"
    if document.name == "README.md" and document.parent == ROOT:
        assert len(local) >= 5


def test_the_comfyui_readme_names_workflows_that_exist():
    text = (ROOT / "comfy_nodes" / "README.md").read_text()
    named = {span for span in inline_code(text) if span.endswith("_api.json")}
    assert len(named) >= 3
    for name in named:
        assert (ROOT / "comfy_nodes" / "workflows" / name).is_file(), name


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the table whose header line starts with `header`, as cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_knob_tables_are_the_presets():
    text = (ROOT / "README.md").read_text()
    intensity = {row[0]: row[1:] for row in table_rows(text, "| `--intensity`")}
    assert set(intensity) == {level.value for level in Intensity}
    for level, budget in INTENSITY_BUDGETS.items():
        lpips, linf = intensity[level.value]
        assert float(lpips) == pytest.approx(budget.lpips)
        assert round(budget.eps * 255) == int(linf.removesuffix("/255")), level
    quality = {row[0]: int(row[1]) for row in table_rows(text, "| `--quality`")}
    assert quality == {level.value: effort.steps for level, effort in QUALITY_EFFORT.items()}


def test_the_readme_lists_the_styles_artcloak_has():
    listed = CliRunner().invoke(cli, ["styles"])
    assert listed.exit_code == 0, listed.output
    catalogue_part, textures_part = listed.output.split("Built-in textures")
    catalogue = re.findall(r"^([a-z][a-z-]+)\s{2,}", catalogue_part, flags=re.M)
    textures = re.findall(r"^([a-z][a-z-]+)\b", textures_part, flags=re.M)
    text = " ".join((ROOT / "README.md").read_text().split())
    sentence = re.search(r"Catalogue: (.+?)\. Built-in textures \(no model needed\): (.+?)\.", text)
    assert sentence, "the README's sentence listing the catalogue and the textures"
    in_readme = [re.findall(r"`([a-z-]+)`", part) for part in sentence.groups()]
    assert in_readme == [[n for n in catalogue if not n.startswith("auto")], textures]


def test_the_worker_request_names_in_the_readme_are_real():
    text = " ".join((ROOT / "README.md").read_text().split())
    paragraph = re.search(r"For plugins, the worker request .+? lists them all\)", text)
    assert paragraph
    named = set(re.findall(r"`([a-z_]+)`", paragraph.group(0)))
    assert len(named) >= 20
    assert named <= FLAT_NAMES | set(ENVELOPE), named - FLAT_NAMES - set(ENVELOPE)


def test_ci_runs_the_readmes_two_setup_commands():
    readme = fenced_blocks((ROOT / "README.md").read_text(), "bash")[0].splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    extras = re.compile(r'pip install\b.*?-e "\.\[([a-z,]+)\]"')
    assert extras.search(readme[0]) and extras.search(ci)
    assert extras.search(readme[0]).group(1) == extras.search(ci).group(1)
    assert readme[1] == ".venv/bin/python -m pytest"
    assert ci.rstrip().splitlines()[-1] == readme[1]


def options_of(*path: str) -> set[str]:
    """The option names of an artcloak command (`batch`, or `install krita`)."""
    command, context = cli, click.Context(cli, info_name="artcloak")
    for name in path:
        command = command.get_command(context, name)
    return {name for param in command.params for name in param.opts if name.startswith("-")}


def test_the_options_the_readme_names_are_those_of_its_commands():
    text = " ".join((ROOT / "README.md").read_text().split())
    use = re.search(r"`--eps 6` .+? lists them all\.", text)
    robust = re.search(r"`--robust` optimises .+?`--adaptive`", text)
    takes = re.search(r"It takes the settings of `artcloak cloak` and `shade` \((.+?)\);", text)
    refused = re.search(r"Not (`-o` .+?) are how a run resumes\)", text)
    assert use and robust and takes and refused
    flags = re.compile(r"`(--?[a-z][a-z-]*)")
    cloak, batch = options_of("cloak"), options_of("batch")
    assert set(flags.findall(use.group(0) + robust.group(0))) - cloak == set()
    taken = set(flags.findall(takes.group(1)))
    assert len(taken) >= 10
    assert taken - batch == set()
    not_taken = set(flags.findall(refused.group(1)))
    assert not_taken == {"-o", "--keep-mask", "--no-report"}
    assert not_taken & batch == set()
    assert not_taken <= cloak


def test_the_environment_variables_the_readmes_name_are_read():
    sources = "".join(
        path.read_text(errors="replace")
        for folder in ("core", "comfy_nodes", "tests", "bench")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "test_readme.py"
    )
    named = {
        name
        for document in DOCUMENTS
        for name in re.findall(r"\bARTCLOAK_[A-Z_]+\b", document.read_text())
    }
    assert len(named) >= 4
    assert {name for name in named if f'"{name}"' not in sources} == set()
