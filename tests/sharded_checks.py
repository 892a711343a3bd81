"""Sharded training against one device, in a process with four CPU devices.

Run by `tests/test_sharding.py` in a subprocess (the test session's JAX has one CPU device,
fixed when its backend started). Prints one JSON object: per check the largest difference
between the four-device and the one-device results, and the layout of the results.
"""

from __future__ import annotations

import json

import jax

jax.config.update("jax_num_cpu_devices", 4)

import equinox as eqx  # noqa: E402
import numpy as np  # noqa: E402

import dynlearn  # noqa: E402
from dynlearn import registry  # noqa: E402
from dynlearn._batches import train_chunk  # noqa: E402
from dynlearn._sharding import data_mesh, replicate, split  # noqa: E402

SIZES = [64, 16, 10]


def arrays(tree) -> list[jax.Array]:
    return jax.tree.leaves(eqx.filter(tree, eqx.is_array))


def largest_difference(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def layout(leaf: jax.Array) -> dict:
    return {
        "devices": len(leaf.sharding.device_set),
        "replicated": bool(leaf.sharding.is_fully_replicated),
        "shard_shape": list(leaf.sharding.shard_shape(leaf.shape)),
        "shape": list(leaf.shape),
    }


def compiled_step(rule: str, batch_size: int) -> dict:
    """What XLA compiles for `fit`'s training step on four devices: the batch each device
    holds, and the cross-device reductions it inserted."""
    recipe = registry.load("rules", rule)(SIZES, jax.random.key(0))
    mesh = data_mesh(4, batch_size, "batch_size")
    x = split(np.zeros((2, batch_size, SIZES[0]), np.float32), mesh, 1)
    y = split(np.zeros((2, batch_size, SIZES[-1]), np.float32), mesh, 1)
    labels = split(np.zeros((2, batch_size), np.int32), mesh, 1)
    keys = replicate(jax.random.split(jax.random.key(0), 2), mesh)
    learner, state = replicate((recipe.learner, recipe.mode.init(recipe.learner)), mesh)
    params, static = eqx.partition((recipe.mode, learner, state), eqx.is_array)

    def step(params, *batch):
        return train_chunk(*eqx.combine(params, static), *batch)

    text = jax.jit(step).lower(params, x, y, labels, keys).compile().as_text()
    per_device = f"f32[2,{batch_size // 4},{SIZES[0]}]"
    return {"per_device_batch": per_device in text, "all_reduces": text.count("all-reduce(")}


def check_fit(rule: str, data, batch_size: int) -> dict:
    recipe = registry.load("rules", rule)(SIZES, jax.random.key(0))
    results = {
        devices: dynlearn.fit(
            recipe.learner,
            data,
            recipe.mode,
            epochs=1,
            batch_size=batch_size,
            progress=False,
            devices=devices,
        )
        for devices in (1, 4)
    }
    one, four = (arrays(results[d].learner) for d in (1, 4))
    return {
        "difference": largest_difference(one, four),
        "accuracy": [float(results[d].metrics.test_accuracy[-1]) for d in (1, 4)],
        "layout": layout(four[0]),
        "mode": type(recipe.mode).__name__,
    }


def check_fit_seeds(rule: str, data, batch_size: int) -> dict:
    factory = registry.load("rules", rule)
    recipes = [factory(SIZES, jax.random.key(seed)) for seed in range(4)]
    stacked = dynlearn.stack([r.learner for r in recipes])
    results = {
        devices: dynlearn.fit_seeds(
            stacked,
            data,
            recipes[0].mode,
            seeds=[0, 1, 2, 3],
            epochs=1,
            batch_size=batch_size,
            devices=devices,
        )
        for devices in (1, 4)
    }
    one, four = (arrays(results[d][0]) for d in (1, 4))
    return {
        "difference": largest_difference(one, four),
        "accuracy": [results[d][1][:, -1].tolist() for d in (1, 4)],
        "layout": layout(four[0]),
    }


def refusals(data) -> list[str]:
    """The errors for devices that do not divide the batch (bp) or the streams (le)."""
    messages = []
    for rule, batch_size, devices in (("bp", 30, 4), ("le", 64, 3)):
        recipe = registry.load("rules", rule)(SIZES, jax.random.key(0))
        try:
            dynlearn.fit(recipe.learner, data, recipe.mode, batch_size=batch_size, devices=devices)
            messages.append("accepted")
        except ValueError as err:
            messages.append(str(err))
    return messages


def main() -> None:
    data = dynlearn.data.load("digits", fraction=0.5)
    report = {
        "devices": len(jax.devices()),
        "fit": check_fit("bp", data, 32),
        "compiled": compiled_step("bp", 32),
        "fit_settling": check_fit("pc", data, 32),
        "streaming": check_fit("le", data, 64),  # AlwaysOn: 16 streams, 4 per device
        "fit_seeds": check_fit_seeds("bp", data, 32),
        "errors": refusals(data),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
