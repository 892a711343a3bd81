"""Plumbing for theory-validation scripts (`theory/`): one claim, measured, pass or fail.

A script defines `run(fast) -> (Dataset, passed)` (the numbers, and whether the claim
holds at its stated tolerance) and `plot(ds, path)`, and gets its command-line entry from
`script_main`: `--fast` (the version pytest runs), `--run-dir`; it prints the Dataset's
table, writes `<name>.nc` and `<name>.png`, and exits 0 only if the claim holds. A check
made with `demo=True` is one of those `dynlearn demo` runs (its fast version).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import xarray as xr

from ._dataset import save_netcdf
from ._runs import check_writable, run_folder, writable_folder

__all__ = ["script_main"]


def script_main(
    name: str,
    claim: str,
    run: Callable[[bool], tuple[xr.Dataset, bool]],
    plot: Callable[[xr.Dataset, Path], object] | None = None,
    *,
    demo: bool = False,
) -> Callable[[list[str] | None], int]:
    """The `main(argv) -> exit code` of a theory script; `main.demo` says whether `dynlearn
    demo` runs it."""

    def main(argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(prog=f"dynlearn check {name}", description=claim)
        parser.add_argument("--fast", action="store_true", help="small version (pytest)")
        parser.add_argument(
            "--run-dir", type=writable_folder, default=None, help="default runs/<name>-<time>"
        )
        opts = parser.parse_args(argv)
        if opts.run_dir is None:
            check_writable("runs", "runs (the default --run-dir's folder)")
        ds, passed = run(opts.fast)
        ds.attrs.update({"claim": claim, "passed": int(passed), "fast": int(opts.fast)})
        run_dir = opts.run_dir if opts.run_dir is not None else run_folder("runs", name)
        save_netcdf(ds, Path(run_dir) / f"{name}.nc")
        if plot is not None:
            plot(ds, Path(run_dir) / f"{name}.png")
        print(f"{name}: {claim}")
        summary = [name for name in ds.data_vars if ds[name].size <= 200]
        print(ds[summary].to_dataframe().to_string() if summary else ds)
        print(f"{'PASS' if passed else 'FAIL'} ({run_dir})")
        return 0 if passed else 1

    main.demo = demo
    return main
