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
