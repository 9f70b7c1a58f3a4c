"""The documentation cannot rot: every python block in docs/*.md (and README.md) runs, each
file's blocks in order in one namespace; every shell command shown parses with the real
command-line parser (the cheap ones run); every relative link points at a file that exists."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from minigrad.exercises import NAMES
from tests.conftest import require_torch
from tests.docs.markdown_blocks import LANGUAGES, blocks

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHAPTERS = ("dpo-derivation.md", "loss-variants.md", "how-minigrad-works.md", "kernels.md", "backend-parity.md",
            "cli-and-api.md", "exercises.md", "frontier.md")
MARKDOWN = sorted(DOCS.rglob("*.md")) + ([ROOT / "README.md"] if (ROOT / "README.md").exists() else [])
# a page whose code needs torch outright (not one that only uses it when it is there)
USES_TORCH = re.compile(r"^\s*(import|from) torch\b|get_backend\(\s*\"torch\"\s*[,)]|backend=\"torch\"",
                        re.MULTILINE)


def relative(path):
    return str(Path(path).relative_to(ROOT))


def python_code(path):
    return "".join(b.code for b in blocks(path) if b.language == "python" and b.runs)


PYTHON_FILES = [p for p in MARKDOWN if python_code(p)]


# ---- the blocks ---------------------------------------------------------------------------
def test_the_docs_exist_and_have_code():
    for chapter in CHAPTERS:
        assert (DOCS / chapter).is_file(), f"docs/{chapter} is missing"
    assert len(PYTHON_FILES) >= 5


@pytest.mark.parametrize("path", MARKDOWN, ids=relative)
def test_every_block_names_a_known_language(path):
    for block in blocks(path):
        assert block.language in LANGUAGES, (
            f"{block.where()}: a code block needs a language, one of {', '.join(LANGUAGES)} "
            f"(python and bash blocks are run or parsed by tests/docs), got {block.language!r}")


def test_no_docs_block_opts_out_of_running():
    skipped = [b.where() for p in DOCS.rglob("*.md") for b in blocks(p) if not b.runs]
    assert not skipped, f"blocks marked no-run (they are not tested): {skipped}"


@pytest.mark.parametrize("path", PYTHON_FILES, ids=relative)
def test_python_blocks_run(path, tmp_path):
    """In a fresh interpreter, in an empty folder, with numpy's RuntimeWarnings as errors (as the tests)."""
    if USES_TORCH.search(re.sub(r"#.*", "", python_code(path))):  # comments do not count
        require_torch()
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "tests.docs.markdown_blocks",
                             str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_runner_reports_the_failing_block_with_the_markdown_line(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# t\n\n```python\nx = 2\n```\n\ntext\n\n```python\ny = x + 1\nassert y == 4, y\n```\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "tests.docs.markdown_blocks", str(doc)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{doc}:9: this python block failed" in result.stderr
    assert f'File "{doc}", line 11' in result.stderr and "AssertionError: 3" in result.stderr


def test_blocks_are_found_with_their_language_options_and_line(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("a\n```python no-run\nx = 1\n```\n- item\n\n  ```bash\n  make test\n  ```\n")
    found = blocks(doc)
    assert [(b.line, b.language, b.options, b.code, b.runs) for b in found] == [
        (2, "python", ("no-run",), "x = 1\n", False), (7, "bash", (), "make test\n", True)]
    (tmp_path / "open.md").write_text("```python\nx = 1\n")
    with pytest.raises(ValueError, match=r"open.md:1: a code block is never closed"):
        blocks(tmp_path / "open.md")


# ---- shell commands -----------------------------------------------------------------------
def shell_commands():
    """(where, command) for every command line of every bash block: comments dropped,
    continuation lines joined."""
    found = []
    for path in MARKDOWN:
        for block in blocks(path):
            if block.language != "bash" or not block.runs:
                continue
            pending = ""
            for line in block.code.splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                line = re.sub(r"\s+#\s.*$", "", line)
                if line.endswith("\\"):
                    pending += line[:-1] + " "
                    continue
                found.append((f"{relative(path)}:{block.line}", pending + line))
                pending = ""
    return found


def extras_declared():
    text = (ROOT / "setup.cfg").read_text()
    section = text.split("[options.extras_require]")[1].split("\n[")[0]
    return set(re.findall(r"^(\w+) =", section, re.MULTILINE))


def makefile_targets():
    return set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def check_dpo_command(args):
    from dpo.cli import build_parser, main

    if "--help" in args or "-h" in args or "--version" in args:
        assert main(args) == 0
    else:
        build_parser().parse_args(args)  # a mistake raises UsageError naming it


def check_exercises_command(args, capsys):
    from minigrad.exercises.cli import EXIT_PASS, EXIT_USAGE, build_parser, main

    parsed = build_parser().parse_args(args)
    if getattr(parsed, "file", None):  # a learner's own file: parse only
        return
    status = main(args)
    output = capsys.readouterr()
    assert status != EXIT_USAGE, output.err
    if getattr(parsed, "solution", False):
        assert status == EXIT_PASS, output.out


@pytest.mark.parametrize("where, command", shell_commands(), ids=lambda x: x if ":" in x else None)
def test_shell_command_is_valid(where, command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # commands that write files (e.g. `exercises start`) write them here
    words = shlex.split(command)
    if words[0] == "minigrad-dpo":  # the console script of setup.cfg
        words = ["python", "-m", "dpo", *words[1:]]
    if words[0] == "torchrun":  # torchrun [its options] -m dpo ...: the dpo part is checked
        assert "-m" in words, f"{where}: `{command}`: torchrun shown without -m MODULE"
        words = ["python", *words[words.index("-m"):]]
    if re.fullmatch(r"(\S*/)?python3?", words[0]) and words[1:2] == ["-m"]:
        module, args = words[2], words[3:]
        if module == "dpo":
            check_dpo_command(args)
        elif module == "minigrad.exercises":
            check_exercises_command(args, capsys)
        elif module == "pytest":
            paths = [a.split("::")[0] for a in args if not a.startswith("-")]
            assert all((ROOT / p).exists() for p in paths), f"{where}: {command}: no such test path"
        else:
            pytest.fail(f"{where}: `{command}`: python -m {module} is not a command the docs tests know")
    elif words[0] == "make":
        assert set(words[1:]) <= makefile_targets(), f"{where}: `{command}`: no such Makefile target"
    elif words[:2] == ["pip", "install"]:
        for extra in re.findall(r"\[([\w,]+)\]", command):
            assert set(extra.split(",")) <= extras_declared(), f"{where}: `{command}`: no such extra"
    else:
        pytest.fail(f"{where}: `{command}` cannot be checked; show it in a ```text block or teach tests/docs "
                    "how to check it")


# ---- links and coverage -----------------------------------------------------------------------
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", MARKDOWN, ids=relative)
def test_relative_links_point_at_existing_files(path):
    text = path.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#")[0]
        assert (path.parent / file).exists(), f"{relative(path)}: the link to {target} points at nothing"


def test_the_index_links_every_chapter():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for chapter in CHAPTERS:
        assert f"]({chapter})" in index, f"docs/README.md does not link {chapter}"


def test_the_exercises_page_names_every_exercise():
    text = (DOCS / "exercises.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"`{name}`" in text, f"docs/exercises.md does not mention the exercise {name}"
