"""Nothing outside backends/ branches on which backend is in use: the model, losses and
pipeline in dpo/ go through the backend surface only (they may name the backend in a
log line or a checkpoint, never test it), and minigrad never imports torch. A source
scan; each hit names the file, the line and the rule it breaks."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

NAME = r"\b(backend\w*|be)\.(name|device|dtype_name)"  # reading these for a log line or a checkpoint is fine
RULES = {
    "imports torch": re.compile(r"^\s*(import\s+torch\b|from\s+torch\b)"),
    "branches on the backend's name or device": re.compile(NAME + r"\s*(==|!=|\bin\b|\bnot\s+in\b)|match\s+" + NAME),
    "compares with a backend name": re.compile(r"""(==|!=)\s*["'](torch|numpy)["']|["'](torch|numpy)["']\s*(==|!=)"""),
    "tests for a torch type": re.compile(r"isinstance\([^)]*\btorch\."),
    "uses the torch device directly": re.compile(r"\.torch_device\b"),
}


def violations(folder, rules, exempt=()):
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if any(path.is_relative_to(ROOT / e) for e in exempt):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for rule, pattern in rules.items():
                if pattern.search(code):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {rule}: {line.strip()}")
    return found


def test_the_scan_catches_what_it_should(tmp_path):
    bad = ["import torch", "if backend.name == 'torch':", "if be.name != \"numpy\":", "x = isinstance(t, torch.Tensor)",
           "if self.backend.device in ('cuda',):", "match be.name:", "dev = be.torch_device", "if kind == 'torch':"]
    for line in bad:
        assert any(p.search(line) for p in RULES.values()), line
    fine = ["from backends import resolve_backend", "logits = model(ids)", "name = field.name  # a dataclass field",
            'say(f"backend {be.name} ({be.device})")', '{"name": backend.name, "dtype": backend.dtype_name}']
    for line in fine:
        assert not any(p.search(line) for p in RULES.values()), line


def test_dpo_never_branches_on_the_backend():
    assert (ROOT / "dpo").is_dir()
    hits = violations("dpo", RULES)
    assert not hits, "backend-specific code outside backends/:\n" + "\n".join(hits)


# The gradient-check exercises compare a learner's backward with PyTorch where it is
# installed (a lazy import inside the checker); they are a teaching tool, not the engine.
# That their import pulls no torch is tested in tests/minigrad/test_exercises.py.
EXEMPT_FROM_NO_TORCH = ("minigrad/exercises",)


@pytest.mark.parametrize("folder", ["minigrad"])
def test_the_core_never_imports_torch(folder):
    hits = violations(folder, {"imports torch": RULES["imports torch"]}, exempt=EXEMPT_FROM_NO_TORCH)
    assert not hits, "\n".join(hits)
