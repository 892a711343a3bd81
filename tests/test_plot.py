"""Figures: PNG files are produced and non-empty; bad variable names are clear errors."""

import numpy as np
import pytest
import xarray as xr

from dynlearn import plot


def metrics():
    epochs = np.arange(1, 4)
    return xr.Dataset(
        {
            name: ("epoch", np.linspace(0.5, 0.9, 3))
            for name in ("train_loss", "train_accuracy", "test_accuracy")
        },
        coords={"epoch": epochs},
    )


def test_learning_curves_and_comparison(tmp_path):
    assert plot.learning_curves(metrics(), tmp_path / "a.png").stat().st_size > 1000
    both = {"bp": metrics(), "pc": metrics()}
    assert plot.learning_curves(both, tmp_path / "b.png").stat().st_size > 1000


def test_trajectory_and_alignment(tmp_path):
    t = np.linspace(0, 1, 20)
    ds = xr.Dataset(
        {
            "out_u": (("time", "unit_out"), np.random.default_rng(0).normal(size=(20, 3))),
            "angle_B1": ("time", np.linspace(90, 10, 20)),
        },
        coords={"time": t},
    )
    ds.time.attrs["units"] = "ms"
    assert plot.trajectory(ds, ["out_u", "angle_B1"], tmp_path / "t.png").stat().st_size > 1000
    assert plot.alignment(ds, ["angle_B1"], tmp_path / "al.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="not in the Dataset"):
        plot.trajectory(ds, ["nope"], tmp_path / "x.png")


def test_any_number_of_rules_get_distinct_looks():
    looks = [plot.style(i) for i in range(140)]
    keys = {(s["color"], s["marker"], s["linestyle"]) for s in looks}
    assert len(keys) == 140
    assert len({(s["color"], s["marker"]) for s in looks[:70]}) == 70
    assert plot.styles(["b", "a"])["b"] == plot.style(0)


def test_saved_figures_have_integer_ticks_and_legends_outside(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0.1, 0.5, 0.2], label="a", **plot.style(0))
    ax.set(title="t", xlabel="epoch", ylabel="y")
    ax.legend()
    plot.finish(fig)
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the data, not on it
    plt.close(fig)


def test_unreadable_figures_are_named_in_a_warning(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], color="C0", label="bp")
    ax.plot([0, 1], [1, 0], color="C0", label="pc")
    problems = plot.figure_problems(fig)
    assert "axes 0: no title" in problems and "axes 0: no x label" in problems
    assert "axes 0: lines 'bp' and 'pc' look the same" in problems
    with pytest.warns(plot.FigureWarning, match="look the same"):
        plot._save(fig, tmp_path / "bad.png")


def test_vector_formats_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLEARN_FIGURE_FORMATS", "svg,pdf")
    plot.learning_curves(metrics(), tmp_path / "a.png", title="run")
    assert {p.suffix for p in tmp_path.iterdir()} == {".png", ".svg", ".pdf"}
    monkeypatch.setenv("DYNLEARN_FIGURE_FORMATS", "tiff")
    with pytest.raises(ValueError, match=r"DYNLEARN_FIGURE_FORMATS: unknown figure formats"):
        plot.formats()
    plot.set_formats("svg")
    try:
        assert plot.formats() == ("png", "svg")
    finally:
        plot._formats = None


def test_labels_come_from_long_name_and_units():
    da = xr.DataArray(
        [0.5],
        name="test_accuracy",
        attrs={"long_name": "test accuracy, fraction in [0, 1]", "units": "1"},
    )
    assert plot.axis_label(da) == "test accuracy, fraction in [0, 1]"
    assert plot.axis_label(plot.percent(da)) == "test accuracy (%)"
    assert float(plot.percent(da)[0]) == 50.0
