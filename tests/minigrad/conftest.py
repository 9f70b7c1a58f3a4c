"""Every minigrad test starts and must end with the global defaults: grad mode on,
float32 default dtype. A test that leaks a change fails here (and the defaults are
put back, so the leak does not spread to later tests)."""

import pytest

import minigrad


@pytest.fixture(autouse=True)
def global_defaults_restored():
    yield
    leaked = []
    if not minigrad.is_grad_enabled():
        leaked.append("grad mode left off")
        minigrad.set_grad_enabled(True)
    if minigrad.get_default_dtype() != minigrad.float32:
        leaked.append(f"default dtype left at {minigrad.get_default_dtype()}")
        minigrad.set_default_dtype(minigrad.float32)
    assert not leaked, "; ".join(leaked)
