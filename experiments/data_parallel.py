"""Experiment: one rule trained across processes or hosts (`jax.distributed`).

Every process runs this same command; `dynlearn.initialize_distributed` joins them, and
`dynlearn.fit` splits each batch over all processes' devices (each process computes the
same batch order and sends only its own shards; the weights are replicated). Process 0
prints the test accuracy and writes `--run-dir` and `--weights`. The result equals one
process's run to float32 round-off (`tests/test_sharding.py` checks two processes on one
machine against one).

Launch, two processes on one machine (CPU, two devices each):

    dynlearn run data-parallel --rule bp --num-processes 2 --process-id 0 \\
        --coordinator localhost:12355 --cpu-devices 2 &
    dynlearn run data-parallel --rule bp --num-processes 2 --process-id 1 \\
        --coordinator localhost:12355 --cpu-devices 2

On a cluster, one process per host (or per GPU) with the coordinator on the first host:
`--coordinator host0:12355 --num-processes N --process-id I`, or no options at all under
SLURM with `--from-environment` (`srun dynlearn run data-parallel --from-environment`: JAX
reads the job's environment; also Open MPI, or `JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`). Without these options it runs as one process (the
reference the distributed run must equal).

Run: `python -m experiments.data_parallel` (or `dynlearn run data-parallel`); `--quick` is the
default configuration (digits, one epoch), accepted for uniformity with the other scripts.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from experiments._options import non_negative_int, positive_int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynlearn run data-parallel", description=__doc__)
    parser.add_argument("--rule", default="bp", help="a registered rule (default bp)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[32])
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument("--batch-size", type=positive_int, help="default: the rule's")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--coordinator", help="host:port of process 0")
    parser.add_argument("--num-processes", type=positive_int)
    parser.add_argument("--process-id", type=non_negative_int)
    parser.add_argument(
        "--from-environment",
        action="store_true",
        help="find the processes in the environment (SLURM, Open MPI, JAX_* variables)",
    )
    parser.add_argument("--cpu-devices", type=positive_int, help="CPU devices per process")
    parser.add_argument("--quick", action="store_true", help="the default configuration")
    parser.add_argument("--run-dir", help="metrics and checkpoints (written by process 0)")
    parser.add_argument("--weights", help="save the trained arrays here (.npz, process 0)")
    opts = parser.parse_args(argv)

    import equinox as eqx  # after parsing: --help needs no JAX
    import jax

    import dynlearn
    from dynlearn import registry

    given = (opts.coordinator, opts.process_id, opts.num_processes)
    if opts.from_environment or (any(v is not None for v in given) and opts.num_processes != 1):
        dynlearn.initialize_distributed(
            opts.coordinator, opts.num_processes, opts.process_id, cpu_devices=opts.cpu_devices
        )
    elif opts.cpu_devices is not None:
        jax.config.update("jax_num_cpu_devices", opts.cpu_devices)
    data = dynlearn.data.load(opts.dataset)
    sizes = [data.n_features, *opts.hidden, data.n_classes]
    recipe = registry.load("rules", opts.rule)(sizes, jax.random.key(opts.seed))
    batch_size = opts.batch_size or recipe.batch_size
    result = dynlearn.fit(
        recipe.learner,
        data,
        recipe.mode,
        epochs=opts.epochs,
        batch_size=batch_size,
        seed=opts.seed,
        run_dir=opts.run_dir,
        progress=False,
    )
    arrays = [
        dynlearn.to_host(leaf) for leaf in jax.tree.leaves(eqx.filter(result.learner, eqx.is_array))
    ]
    if jax.process_index() == 0:
        devices = jax.devices()
        print(
            f"{opts.rule} {'-'.join(map(str, sizes))} on {len(devices)} devices of "
            f"{jax.process_count()} processes: test accuracy "
            f"{100 * float(result.metrics.test_accuracy[-1]):.2f}%"
        )
        if opts.weights:
            np.savez(opts.weights, *arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
