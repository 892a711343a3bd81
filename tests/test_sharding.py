"""Data parallelism: sharded `fit`, `fit_seeds` and always-on streaming equal one device's
results, run on four devices, and a two-process run equals a one-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import dynlearn
from dynlearn._sharding import data_mesh

ROOT = Path(__file__).resolve().parents[1]
# Four devices against one: the same float32 operations summed in another order (the batch
# means become all-reduces over partial sums), ~1e-7 per update over ~20 updates.
ROUND_OFF = 1e-5


def test_four_devices_equal_one():
    """`tests/sharded_checks.py`, run in a process with four CPU devices (this session's
    JAX has one, fixed when its backend started): `fit` (bp; pc, which settles), always-on
    streaming (le: 16 streams, 4 per device) and `fit_seeds` (one seed per device) against
    one device; what XLA compiled; the refusals. One subprocess for all (pytest-xdist
    would run a shared fixture once per worker)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sharded_checks.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4
    for check in ("fit", "fit_settling", "streaming", "fit_seeds"):
        assert report[check]["difference"] < ROUND_OFF, check
        assert report[check]["accuracy"][0] == report[check]["accuracy"][1], check
    assert report["streaming"]["mode"] == "AlwaysOn"
    for check in ("fit", "fit_settling", "streaming"):  # trained weights on all four devices
        layout = report[check]["layout"]
        assert layout["devices"] == 4 and layout["replicated"], check
    layout = report["fit_seeds"]["layout"]  # one seed per device
    assert layout["devices"] == 4 and not layout["replicated"]
    assert layout["shard_shape"] == [1, *layout["shape"][1:]]
    compiled = report["compiled"]
    assert compiled["per_device_batch"]  # each device holds 8 of the batch's 32 samples
    assert compiled["all_reduces"] >= 1  # the weight updates' batch means, across devices
    batch, streams = report["errors"]
    assert "batch_size of 30 does not split over 4 devices" in batch
    assert "presentation.streams) of 16 does not split over 3 devices" in streams


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    """Two processes (one CPU device each, gloo collectives) train bp on digits as one
    process does."""
    command = [sys.executable, "-m", "experiments.data_parallel", "--rule", "bp", "--epochs", "1"]
    env = os.environ | {"JAX_PLATFORMS": "cpu"}
    address = f"localhost:{_free_port()}"
    workers = [
        subprocess.Popen(
            [
                *command,
                *("--coordinator", address, "--num-processes", "2", "--process-id", str(i)),
                *("--cpu-devices", "1", "--weights", str(tmp_path / "two.npz")),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    single = subprocess.run(
        [*command, "--num-processes", "1", "--weights", str(tmp_path / "one.npz")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    assert "on 2 devices of 2 processes" in outputs[0][0]
    two, one = np.load(tmp_path / "two.npz"), np.load(tmp_path / "one.npz")
    assert sorted(two) == sorted(one)
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=0, atol=ROUND_OFF)
    accuracy = [line.rsplit(" ", 1)[-1] for line in (outputs[0][0], single.stdout)]
    assert accuracy[0] == accuracy[1]


def test_device_options_are_checked():
    with pytest.raises(ValueError, match="devices: expected between 1"):
        data_mesh(len(jax.devices()) + 1, 8, "batch_size")
    with pytest.raises(ValueError, match="devices: expected None"):
        data_mesh("gpu", 8, "batch_size")
    with pytest.raises(ValueError, match="listed twice"):
        data_mesh(list(jax.devices()) * 2, 8, "batch_size")
    assert data_mesh(None, 8, "batch_size") is None  # one device: nothing is placed


def test_a_coordinator_without_a_port_is_refused():
    with pytest.raises(ValueError, match="coordinator: expected 'host:port'"):
        dynlearn.initialize_distributed("localhost")
