"""Data parallelism over a device mesh (`jax.sharding`), for `fit`, `fit_seeds` and
always-on streaming.

One axis of the work is split over the devices of a one-dimensional mesh — the samples of
a batch (`SettleThenUpdate`), the parallel streams of an always-on batch (`AlwaysOn`), or
the seeds of a stack (`fit_seeds`) — and everything else (the learner, the optimizer's
state, the batch keys) is replicated. The compiled programs are the single-device ones:
XLA's partitioner (GSPMD) propagates the layout and inserts the reductions (the batch means
of the weight updates become all-reduces), so the results equal one device's to float32
round-off. Random draws are the same on any mesh (`jax_threefry_partitionable`, JAX's
default).

Across processes (`jax.distributed.initialize`), the mesh spans every process's devices;
each process computes the same batch order and transfers only its own shards
(`jax.make_array_from_callback` asks for the addressable ones), and results come back with
`to_host` (an all-gather where a process holds only part of an array).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "AXIS",
    "data_mesh",
    "split",
    "replicate",
    "to_host",
    "mesh_of",
    "is_main_process",
    "initialize_distributed",
]

AXIS = "data"  # the mesh axis the work is split over

Devices = None | int | Sequence[jax.Device] | Mesh


def data_mesh(devices: Devices, axis_size: int, what: str) -> Mesh | None:
    """The one-axis mesh to split an axis of `axis_size` over, or None for one device
    (then nothing is placed: the programs run as they always have).

    `devices`: None (every device, `jax.devices()`; in one process as many of them as
    divide `axis_size`), an int (the first that many), a sequence of devices, or a
    one-axis `jax.sharding.Mesh`. `what` names the split axis in errors.
    """
    if isinstance(devices, Mesh):
        if devices.devices.ndim != 1:
            raise ValueError(
                f"devices: expected a one-axis mesh (e.g. jax.make_mesh(({devices.size},), "
                f"('{AXIS}',))); got axes {devices.axis_names} of shape "
                f"{devices.devices.shape}."
            )
        found = list(devices.devices)
    elif devices is None:
        found = jax.devices()
        if jax.process_count() == 1:
            found = found[: max(n for n in range(1, len(found) + 1) if axis_size % n == 0)]
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"devices: expected between 1 and the {len(available)} available devices; "
                f"got {devices}."
            )
        found = available[: int(devices)]
    elif (
        isinstance(devices, Sequence)
        and devices
        and all(isinstance(d, jax.Device) for d in devices)
    ):
        found = list(devices)
        if len({d.id for d in found}) != len(found):
            raise ValueError("devices: the same device is listed twice.")
    else:
        raise ValueError(
            "devices: expected None (all devices), a number of devices, a list of "
            f"jax.Device or a one-axis jax.sharding.Mesh; got {devices!r}."
        )
    if axis_size % len(found):
        raise ValueError(
            f"devices: {what} of {axis_size} does not split over {len(found)} devices; "
            f"choose a multiple of {len(found)} or other devices."
        )
    if jax.process_count() > 1:
        owners = {d.process_index for d in found}
        if jax.process_index() not in owners:
            raise ValueError(
                f"devices: process {jax.process_index()} has no device in the mesh; every "
                "process of a distributed run must hold part of it."
            )
    if len(found) == 1 and jax.process_count() == 1:
        return None
    if isinstance(devices, Mesh):
        return Mesh(devices.devices, (AXIS,))
    return Mesh(np.array(found), (AXIS,))


def split(tree, mesh: Mesh | None, axis: int):
    """Every array of `tree` (host or device arrays, PRNG keys, a stacked learner) as a
    global array split along `axis` over `mesh`; each process transfers only its own
    shards. Without a mesh: `tree` as is, its numpy arrays on the default device."""
    if mesh is None:
        return jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, np.ndarray) else x, tree)
    sharding = NamedSharding(mesh, PartitionSpec(*([None] * axis), AXIS))
    return jax.tree.map(lambda x: _place(x, sharding) if eqx.is_array(x) else x, tree)


def replicate(tree, mesh: Mesh | None):
    """Every array of `tree` (a learner, an optimizer state, keys) replicated on every
    device of `mesh`. Without a mesh: `tree` as is."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: _place(x, sharding) if eqx.is_array(x) else x, tree)


def _place(value, sharding: NamedSharding):
    if isinstance(value, jax.Array) and value.sharding == sharding:
        return value
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        data = _place(jax.random.key_data(value), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(value))
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def mesh_of(tree) -> Mesh | None:
    """The mesh the arrays of `tree` are split or replicated over (`split`, `replicate`),
    or None when they sit on one device."""
    for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_array)):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, NamedSharding):
            return sharding.mesh
    return None


def to_host(value) -> np.ndarray:
    """A (possibly sharded) array as one numpy array on this process: gathered from the
    other processes where this one holds only part of it."""
    if isinstance(value, jax.Array) and not (
        value.is_fully_addressable or value.is_fully_replicated
    ):
        return np.asarray(multihost_utils.process_allgather(value, tiled=True))
    return np.asarray(value)


def is_main_process() -> bool:
    """Whether this process writes files and shows progress (process 0 of a distributed
    run; always, in one process)."""
    return jax.process_index() == 0


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    cpu_devices: int | None = None,
) -> None:
    """Join a multi-process run (`jax.distributed.initialize`) before any JAX computation.

    Every process calls it alike, then `fit`/`fit_seeds` as in one process: the default
    devices are then all processes' devices. Without arguments JAX finds them in the
    environment (SLURM, Open MPI, or `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
    `JAX_PROCESS_ID`). On CPUs the collectives go through gloo (set here), and
    `cpu_devices` gives each process that many CPU devices (`jax_num_cpu_devices`).

    **Arguments:** `coordinator` (`"host:port"` of process 0), `num_processes`,
    `process_id` (0 ... num_processes - 1), `cpu_devices`.
    """
    if coordinator is not None and ":" not in coordinator:
        raise ValueError(f"coordinator: expected 'host:port' of process 0; got {coordinator!r}.")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes: expected >= 1; got {num_processes}.")
    if process_id is not None and not (0 <= process_id < (num_processes or process_id + 1)):
        raise ValueError(
            f"process_id: expected 0 ... num_processes - 1 = {num_processes - 1}; got {process_id}."
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if cpu_devices is not None:
        jax.config.update("jax_num_cpu_devices", int(cpu_devices))
    jax.distributed.initialize(coordinator, num_processes, process_id)
