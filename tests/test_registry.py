"""In-process registration: a rule defined in a notebook is found by name like a packaged one."""

import pytest

from dynlearn import registry


def factory(sizes, key):  # stands in for a rule factory
    return (sizes, key)


def test_register_load_replace_unregister():
    assert "tmp-rule" not in registry.entries("rules")
    assert registry.register("rules", "tmp-rule", factory) is factory
    try:
        assert "tmp-rule" in registry.entries("rules")
        assert registry.load("rules", "tmp-rule") is factory
        assert registry.entries("rules")["tmp-rule"].value.endswith(":factory")
        with pytest.raises(ValueError, match="already registered.*replace=True"):
            registry.register("rules", "tmp-rule", factory)
        other = lambda sizes, key: None  # noqa: E731
        registry.register("rules", "tmp-rule", other, replace=True)
        assert registry.load("rules", "tmp-rule") is other
    finally:
        registry.unregister("rules", "tmp-rule")
    assert "tmp-rule" not in registry.entries("rules")


def test_a_packaged_name_is_not_shadowed_by_accident():
    with pytest.raises(ValueError, match="'bp' is already registered"):
        registry.register("rules", "bp", factory)


def test_bad_registrations_say_what_was_expected():
    with pytest.raises(ValueError, match="group: unknown registry group 'rule'"):
        registry.register("rule", "x", factory)
    with pytest.raises(TypeError, match="obj: expected a callable"):
        registry.register("rules", "x", 3)
    with pytest.raises(ValueError, match="name: expected a non-empty string"):
        registry.register("rules", "", factory)
    with pytest.raises(ValueError, match="was not registered in this process"):
        registry.unregister("rules", "bp")
