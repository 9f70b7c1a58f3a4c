"""Fenced code blocks of a Markdown file, and a runner for its python blocks.

A block opens with a line of three backticks and an info string (```python,
```bash, ```text) and closes with a line of three backticks. The first word of
the info string is the language; `no-run` after it opts a block out of running
(use sparingly: every such block is listed by the tests).

    python -m tests.docs.markdown_blocks FILE.md

runs FILE.md's python blocks in order in one namespace (in the current
directory) and exits 1 naming the first block that fails, by file and line.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import textwrap
import traceback
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`]*)$")
LANGUAGES = ("python", "bash", "text")
NO_RUN = "no-run"


@dataclasses.dataclass(frozen=True)
class Block:
    path: str
    line: int  # 1-based line of the opening fence
    language: str
    options: tuple
    code: str

    @property
    def runs(self) -> bool:
        return NO_RUN not in self.options

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def blocks(path) -> list[Block]:
    """Every fenced block of the file at `path`, in order; an unclosed fence is an error."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    found, opened, body = [], None, []
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if opened is None:
            if match:
                words = match["info"].split()
                opened = (number, words[0] if words else "", tuple(words[1:]), len(match["indent"]))
                body = []
        elif match and not match["info"].strip():
            start, language, options, _ = opened
            found.append(Block(str(path), start, language, options, textwrap.dedent("\n".join(body)) + "\n"))
            opened = None
        else:
            body.append(line)
    if opened is not None:
        raise ValueError(f"{path}:{opened[0]}: a code block is never closed")
    return found


def run_python_blocks(path) -> int:
    """Run the python blocks of `path` in one namespace; 0 when all ran, else 1 (reported on stderr)."""
    namespace = {"__name__": "__docs__"}
    for block in blocks(path):
        if block.language != "python" or not block.runs:
            continue
        try:
            # blank lines in front, so that tracebacks give the Markdown file's own line numbers
            exec(compile("\n" * block.line + block.code, block.path, "exec"), namespace)
        except BaseException:  # report any failure of the block, SystemExit included
            print(f"{block.where()}: this python block failed:\n{traceback.format_exc()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_python_blocks(sys.argv[1]))
