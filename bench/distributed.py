"""What data-parallel training costs on one machine: one process, 2 local workers, 2 logical devices.

    python bench/distributed.py                      # mnist_convnet on mnist-sample, 5 epochs, batch 128
    python bench/distributed.py --model mnist_fast --epochs 4 --batch-size 256

Three ``convscope train`` runs with the same global batch and seed, each in fresh
processes: one process (``model.fit``), ``--local-workers 2``
(MultiWorkerMirroredStrategy over localhost) and ``--devices 2`` (MirroredStrategy
over 2 logical CPU devices). Images/s are the training images over the epoch
seconds of history.csv, epochs 2 onward (the first one traces the step).
Communication: the all-reduce of one step's gradients (a tensor of each trainable
variable's shape, summed over the replicas), timed alone, median of --repeats
rounds of 20, in 2 workers started by this script and under 2 logical devices.
On 2 cores no speed-up is expected: both replicas share the same cores. The
point is that it runs and what it costs. The load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(name: str, extra: list[str], args, out: Path) -> dict:
    """One `convscope train` run; its images/s over epochs 2.. and seconds per step."""
    command = [
        sys.executable, "-m", "convscope", "train", "--dataset", "mnist-sample", "--model", args.model,
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--out", str(out), "--name", name, *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stdout}\n{done.stderr}")
    with open(out / name / "history.csv", newline="") as handle:
        seconds = [float(row["seconds"]) for row in csv.DictReader(handle)][1:]
    images = json.loads((out / name / "data.json").read_text())["preprocessing"]["sizes"]["train"]
    steps = -(-images // args.batch_size)
    epoch_seconds = statistics.median(seconds)
    return {"images_per_second": images / epoch_seconds, "step_ms": 1000 * epoch_seconds / steps, "wall_seconds": wall}


def communication_worker(args) -> None:
    """In a worker (TF_CONFIG set) or under --devices: time the all-reduce of one step's gradients; print JSON."""
    import convscope  # noqa: F401  # lazy: process settings first
    from convscope.distribute import join_cluster  # lazy: a bench child
    from convscope.models import create_model  # lazy: a bench child

    cluster = join_cluster(args.devices)
    import tensorflow as tf  # lazy: after the logical devices are set

    shapes = [tuple(variable.shape) for variable in create_model(args.model, (28, 28, 1), 10).trainable_variables]
    tensors = [tf.ones(shape) for shape in shapes]

    @tf.function
    def all_reduce():
        def replica():
            return tf.distribute.get_replica_context().all_reduce("SUM", tensors)

        return cluster.strategy.run(replica)

    all_reduce()  # trace, and wait for every peer
    rounds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in range(20):
            result = all_reduce()
        cluster.strategy.experimental_local_results(result)[0][0].numpy()
        rounds.append((time.perf_counter() - started) / 20)
    values = sum(int(tf.size(tensor)) for tensor in tensors)
    print(json.dumps({"ms": 1000 * statistics.median(rounds), "floats": values}))


def communication(args, mode: str) -> dict:
    """The all-reduce time per step under 2 workers or 2 logical devices."""
    base = [sys.executable, str(Path(__file__).resolve()), "--communication-worker", "--model", args.model, "--repeats", str(args.repeats)]
    environment = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    if mode == "devices":
        done = subprocess.run([*base, "--devices", "2"], capture_output=True, text=True, env=environment, cwd=ROOT)
        return json.loads(done.stdout.strip().splitlines()[-1])
    sys.path.insert(0, str(ROOT / "src"))
    from convscope.launcher import free_ports, tf_config  # lazy: after the path is set

    addresses = [f"localhost:{port}" for port in free_ports(2)]
    workers = [
        subprocess.Popen(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**environment, "TF_CONFIG": tf_config(addresses, index)}, cwd=ROOT)
        for index in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        if worker.returncode != 0:
            raise SystemExit(f"communication worker failed:\n{stderr}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist_convnet")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--communication-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.communication_worker:
        communication_worker(args)
        return
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; other processes share them)")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        rows = {
            "one process (model.fit)": train("single", [], args, out),
            "2 local workers": train("workers", ["--local-workers", "2"], args, out),
            "2 logical devices": train("devices", ["--devices", "2"], args, out),
        }
    comms = {"2 local workers": communication(args, "workers"), "2 logical devices": communication(args, "devices")}
    reference = rows["one process (model.fit)"]["images_per_second"]
    print(f"\n{args.model}, global batch {args.batch_size}, {args.epochs} epochs on mnist-sample")
    print(f"{'':26} {'images/s':>9} {'vs one':>7} {'ms/step':>8} {'all-reduce ms/step':>19}")
    for name, row in rows.items():
        comm = f"{comms[name]['ms']:.2f}" if name in comms else "-"
        print(f"{name:26} {row['images_per_second']:9.0f} {row['images_per_second'] / reference:7.2f} {row['step_ms']:8.1f} {comm:>19}")
    floats = next(iter(comms.values()))["floats"]
    print(f"(all-reduce of {floats:,} float32 gradients, {4 * floats / 1e6:.2f} MB, per step)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
