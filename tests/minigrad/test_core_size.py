"""The core a learner reads (minigrad/ without the accelerator and the exercises) stays under
2,500 lines of code, counted without blank lines, comments and docstrings.

    python -m tests.minigrad.test_core_size     # prints the count per file (make core-lines)
"""

import ast
import io
import pathlib
import tokenize

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIMIT = 2500


def core_files():
    package = ROOT / "minigrad"
    return sorted(p for p in package.rglob("*.py")
                  if not {"accel", "exercises"} & set(p.relative_to(package).parts))


def code_lines(path) -> int:
    """Lines holding code: not blank, not only a comment, not inside a docstring."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    code = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT, tokenize.ENDMARKER):
            code.update(range(token.start[0], token.end[0] + 1))
    return len(code - docstrings)


def test_core_is_under_the_line_budget():
    counts = {p.relative_to(ROOT).as_posix(): code_lines(p) for p in core_files()}
    total = sum(counts.values())
    print(f"minigrad core: {total} lines of code in {len(counts)} files (limit {LIMIT})")
    assert "minigrad/autograd.py" in counts and "minigrad/ops/layer_norm.py" in counts
    assert not any(name.startswith("minigrad/accel/") for name in counts)
    assert total < LIMIT, f"the core has {total} lines of code, over {LIMIT}: {counts}"


def test_the_counter_skips_docstrings_comments_and_blank_lines(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Module\ndocstring."""\n\n# a comment\nx = 1  # trailing\n\n\ndef f():\n'
                      '    """Doc."""\n    return (x +\n            1)\n')
    assert code_lines(sample) == 4  # x = 1; def f(); return (x +; 1)


if __name__ == "__main__":
    for path in core_files():
        print(f"{code_lines(path):6d}  {path.relative_to(ROOT).as_posix()}")
    print(f"{sum(code_lines(p) for p in core_files()):6d}  total (limit {LIMIT})")
