import os

import jax
import pytest

# The tests check results, not speed, and most of their time is XLA compilation: compile
# without most of XLA's optimisations (as the experiment tests' subprocesses already do;
# about a quarter less time on this machine). DYNLEARN_TEST_OPTIMIZE=1 keeps them, to run
# the tests as a user's programs run.
if os.environ.get("DYNLEARN_TEST_OPTIMIZE", "0") != "1":
    jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def x64():
    """Float64 for closed-form, convergence and gradient checks (STYLE.md)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)
