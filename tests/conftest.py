import jax
import pytest


@pytest.fixture
def x64():
    """Float64 for closed-form, convergence and gradient checks (STYLE.md)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)
