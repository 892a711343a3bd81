import os
import tempfile

# One persistent XLA compilation cache for the whole test session: the pytest-xdist workers
# and the subprocesses that run experiments and checks inherit it through the environment, so
# a computation compiled by one test (say, a rule's training step) is not compiled again by
# the next. Results are unchanged: only the compiled executables are shared.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="dynlearn-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The tests compile far more than they run (thousands of small programs, most run a few
# times), so XLA's CPU backend skips LLVM's optimisation passes here: three compile-bound
# tests took 97 s instead of 113 s (one run each, the CPU shared with another job). The
# programs compute the same operations, in machine code that is less optimised (and may
# round differently in the last bits, as another machine would).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Float64 for closed-form, convergence and gradient checks (STYLE.md)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each test module, drop JAX's in-memory caches of compiled programs (the
    persistent cache on disk still serves them). A test worker compiles thousands of
    programs; kept alive, their machine code ends up in tens of thousands of memory maps,
    and XLA's CPU compiler crashed (segfault or abort, in whichever test compiled next)
    near the end of full runs once many modules had run in the same worker."""
    yield
    jax.clear_caches()
