"""Scale benchmark: wide layers against the machine's matmul peak, and one device against
several.

Workloads: one training batch (`fit`'s compiled step) of `pc` (20 Euler inference steps,
Adam), `ep` (30 free and 10 nudged Euler steps each way, Adam) and the always-on prospective
`microcircuit` (t_pres 2 ms, dt 0.1 ms: 20 Euler steps in which neurons and weights move,
one stream per sample), all 784-4096-4096-10 with batches of 256 (random inputs: the cost
does not depend on the values).

1. Achieved GFLOP/s: the matmul FLOPs of the step's compiled program (every `dot` in XLA's
   optimised HLO, 2 m n k each, times the trip counts of the loops around it: the Euler
   steps, the streams' samples) over the fastest of `--repeats` timed calls; elementwise
   work is not counted, so the figure is a lower bound on the work done.
2. The matmul peak, measured in the same run: `jnp.dot` of the workload's layer shapes
   (batch x n_in by n_in x n_out, each layer), the fastest GFLOP/s of them. Target: the PC
   and EP steps at >= 50% of it on CPU.
3. Sharded vs one device: the same step with its batch split over `--devices` devices
   (`dynlearn.fit`'s data parallelism: weights replicated, reductions by XLA); printed as
   the speed-up (one device's seconds over the split step's). On a CPU the devices are
   `jax_num_cpu_devices` slices of one machine sharing its cores, so no speed-up is
   expected there; on several GPUs it is the point.

Run: `python -m experiments.bench_scale` (or `dynlearn bench scale`); `--quick` for a smoke
run (784-256-256-10, batch 64, one repeat; timings printed, not judged).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time

import jax

from experiments._options import positive_int

RULES = ("pc", "ep", "microcircuit")
JUDGED = ("pc", "ep")  # the target (>= 50% of the matmul peak) is for the wide PC/EP steps
TARGET = 0.5
PEAK_DOTS = 10


def matmul_flops(hlo: str) -> float:
    """FLOPs of the matrix products in a compiled program's optimised HLO text
    (`compiled.as_text()`): 2 m n k per `dot` (batch dimensions included), summed through
    fusions and calls, times the trip count XLA knows for every loop around it (the scans
    of Euler steps and of the streams' samples), the costlier branch of a conditional.
    Counted after XLA's optimisations, so a product it merged or dropped is not counted.
    Refused (ValueError) where a loop that multiplies matrices has no known trip count, or
    where the products became library calls (`custom-call`s, e.g. cuBLAS on a GPU)."""
    computations: dict[str, list[str]] = {}
    entry, current = None, None
    for line in hlo.splitlines():
        header = _HEADER.match(line)
        if header:
            current = computations.setdefault(header.group(1), [])
            entry = header.group(1) if line.startswith("ENTRY") else entry
        elif line.startswith("}"):
            current = None
        elif current is not None:
            current.append(line)
    if re.search(r'custom_call_target="[^"]*(gemm|matmul|dot)', hlo, re.IGNORECASE):
        raise ValueError("matmul_flops: the products are library calls (custom-call).")
    done: dict[str, float] = {}

    def flops(name: str) -> float:
        if name not in done:
            done[name] = _computation_flops(computations[name], flops)
        return done[name]

    return flops(entry)


_HEADER = re.compile(r"^(?:ENTRY\s+)?%([^\s(]+)\s*\(.*\{\s*$")
_ARRAY = re.compile(r"^\s*(?:ROOT\s+)?%([^\s=]+)\s*=\s*\w+\[([\d,]*)\]")


def _computation_flops(lines: list[str], flops) -> float:
    shapes, total = {}, 0.0
    for line in lines:
        array = _ARRAY.match(line)
        if array:
            shapes[array.group(1)] = [int(d) for d in array.group(2).split(",") if d]
        if " dot(" in line:
            lhs = shapes[re.search(r" dot\(%([^,\s)]+)", line).group(1)]
            dims = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line).group(1)
            contracted = math.prod(lhs[int(i)] for i in dims.split(",") if i)
            total += 2.0 * math.prod(shapes[array.group(1)]) * contracted
        elif " while(" in line:
            body = flops(re.search(r"body=%([^\s,]+)", line).group(1))
            trip = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', line)
            if body and trip is None:
                raise ValueError(
                    "matmul_flops: a loop multiplies matrices an unknown number of times."
                )
            total += body * (int(trip.group(1)) if trip else 1)
        elif " conditional(" in line:
            listed = re.search(r"branch_computations=\{([^}]*)\}", line)
            if listed:
                names = re.findall(r"%([^\s,}]+)", listed.group(1))
            else:
                names = re.findall(r"(?:true|false)_computation=%([^\s,]+)", line)
            total += max((flops(n) for n in names), default=0.0)
        else:
            total += sum(flops(c) for c in re.findall(r"(?:calls|to_apply)=%([^\s,]+)", line))
    return total


def workload(rule: str, sizes: list[int], batch: int):
    """`(mode, learner, mode state)` of `rule` at `sizes`; the always-on microcircuit gets
    one stream per sample of the batch."""
    import equinox as eqx

    import dynlearn
    from dynlearn import registry

    recipe = registry.load("rules", rule)(sizes, jax.random.key(0))
    mode = recipe.mode
    if isinstance(mode, dynlearn.AlwaysOn):
        p = mode.presentation
        wide = dynlearn.Presentation(
            t_pres=p.t_pres, dt=p.dt, streams=batch, tau_filter=p.tau_filter
        )
        mode = eqx.tree_at(lambda m: m.presentation, mode, wide)
    return mode, recipe.learner, mode.init(recipe.learner)


def step_and_inputs(rule: str, sizes: list[int], batch: int, mesh):
    """A compiled call of `fit`'s training step on one random batch (split over `mesh`, or
    on one device) and its matmul FLOPs."""
    import equinox as eqx
    import numpy as np

    from dynlearn._batches import train_chunk
    from dynlearn._sharding import replicate, split

    mode, learner, state = workload(rule, sizes, batch)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (1, batch, sizes[0])).astype(np.float32)
    labels = rng.integers(0, sizes[-1], (1, batch)).astype(np.int32)
    y = np.eye(sizes[-1], dtype=np.float32)[labels]
    keys = jax.random.split(jax.random.key(0), 1)
    batch_arrays = [split(a, mesh, 1) for a in (x, y, labels)] + [replicate(keys, mesh)]
    params, static = eqx.partition(replicate((mode, learner, state), mesh), eqx.is_array)

    def step(params, *batch_arrays):
        # everything the step gives (the learner, the mode's state, losses): nothing of it
        # is dead code that XLA could drop while its products are counted
        return train_chunk(*eqx.combine(params, static), *batch_arrays)

    compiled = jax.jit(step).lower(params, *batch_arrays).compile()
    return (lambda: compiled(params, *batch_arrays)), matmul_flops(compiled.as_text())


def fastest(fn, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls (after one warm-up call)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - tic)
    return min(times)


def matmul_peak(sizes: list[int], batch: int, repeats: int) -> tuple[float, list[str]]:
    """The fastest GFLOP/s of `jnp.dot` over the workload's layer shapes, and a line per
    shape. Each is timed as `PEAK_DOTS` dependent products in one compiled scan, so that
    small shapes are not measured by their dispatch (the steps run many products per call
    too)."""
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    best, lines = 0.0, []
    for n_in, n_out in sorted(set(zip(sizes[:-1], sizes[1:]))):
        a = jnp.asarray(rng.standard_normal((batch, n_in), np.float32))
        w = jnp.asarray(rng.standard_normal((n_in, n_out), np.float32))

        @jax.jit
        def dots(a, w):
            def body(scale, _):  # each product depends on the last: none is skipped
                out = jnp.dot(a * scale, w)
                return scale + 1e-30 * out[0, 0], None

            return jax.lax.scan(body, jnp.float32(1.0), length=PEAK_DOTS)[0]

        seconds = fastest(lambda a=a, w=w, dots=dots: dots(a, w), max(repeats, 5))
        gflops = PEAK_DOTS * 2 * batch * n_in * n_out / seconds / 1e9
        best = max(best, gflops)
        lines.append(f"  jnp.dot ({batch} x {n_in}) @ ({n_in} x {n_out}): {gflops:8.1f} GFLOP/s")
    return best, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dynlearn bench scale", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    parser.add_argument("--sizes", type=positive_int, nargs="+", help="default 784 4096 4096 10")
    parser.add_argument("--batch", type=positive_int, help="default 256")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument(
        "--devices",
        type=positive_int,
        help="devices to split the batch over (default: every GPU/TPU; on CPU, 2 "
        "`jax_num_cpu_devices` devices)",
    )
    parser.add_argument("--quick", action="store_true", help="small layers, one repeat")
    opts = parser.parse_args(argv)
    sizes = opts.sizes or ([784, 256, 256, 10] if opts.quick else [784, 4096, 4096, 10])
    batch = opts.batch or (64 if opts.quick else 256)
    repeats = 1 if opts.quick else opts.repeats
    if len(sizes) < 2:
        parser.error("--sizes: expected at least an input and an output width")

    try:  # CPU devices are slices of the machine, made before any backend starts
        jax.config.update("jax_num_cpu_devices", opts.devices or 2)
    except RuntimeError as err:
        print(f"(the CPU devices could not be set: {err})")
    cpu = jax.default_backend() == "cpu"
    from dynlearn._sharding import data_mesh

    n_devices = min(opts.devices or len(jax.devices()), len(jax.devices()))
    mesh = data_mesh(n_devices, batch, "--batch") if n_devices > 1 else None
    device = jax.devices()[0]
    print(
        f"scale: {'-'.join(map(str, sizes))}, batch {batch}, {device.platform} "
        f"({getattr(device, 'device_kind', '?')}), {len(jax.devices())} devices, "
        f"JAX {jax.__version__}"
    )
    peak, lines = matmul_peak(sizes, batch, repeats)
    print("\n".join(lines))
    print(f"  matmul peak: {peak:.1f} GFLOP/s")
    ok = True
    for rule in opts.rules:
        run, flops = step_and_inputs(rule, sizes, batch, None)
        seconds = fastest(run, repeats)
        rate = flops / seconds / 1e9
        line = (
            f"{rule:<13} {flops / 1e9:8.1f} GFLOP per batch, {seconds:7.3f} s: "
            f"{rate:7.1f} GFLOP/s = {rate / peak:5.1%} of the matmul peak"
        )
        if rule in JUDGED and cpu:
            ok &= rate >= TARGET * peak
            line += f" (target >= {TARGET:.0%})"
        if mesh is not None:
            run_split, _ = step_and_inputs(rule, sizes, batch, mesh)
            split_seconds = fastest(run_split, repeats)
            speed_up = seconds / split_seconds
            line += f"; split over {mesh.size}: {split_seconds:7.3f} s, speed-up {speed_up:4.2f}x"
        print(line, flush=True)
    print("PASS" if ok else "MISS (see the ratios above)")
    if opts.quick:
        print("(--quick: timings not judged)")
        return 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
