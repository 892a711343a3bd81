import os
import tempfile

# One persistent XLA compilation cache for the whole test session: the pytest-xdist workers
# and the subprocesses that run experiments and checks inherit it through the environment, so
# a computation compiled by one test (say, a rule's training step) is not compiled again by
# the next. Results are unchanged: only the compiled executables are shared.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="dynlearn-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Float64 for closed-form, convergence and gradient checks (STYLE.md)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)
