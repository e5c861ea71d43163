"""Peak memory and speed of `convscope train` on image folders of 5,000, 20,000 and 100,000 PNGs.

    PYTHONPATH=src .venv/bin/python bench/stream.py            # folders cached in /tmp/convscope-bench-stream
    PYTHONPATH=src .venv/bin/python bench/stream.py --sizes 5000 20000

Generates 64x64 RGB PNG folders once (10 classes, Pillow compress_level=1, a process
pool), then runs in a fresh process each

    convscope train --dataset folder:D --image-size 64,64 --color-mode rgb --model cnn_small --epochs E

and reads its peak RSS (os.wait4's resource usage of that child) and history.csv: epoch 1 is
the first decode plus training (images/s over the training images), epoch 2 reads the
cache. In the bench's own process it also times the scan and the decode alone (the tf.data
pipeline over the training images, no cache, no model). Every size streams with --epochs 1; the 5,000 set also runs with --epochs 4
streamed (cache memory) and in memory (--stream off), side by side, for the speed ratio
(median images/s of epochs 2-4, read from the cache or the array).
The issue's figures on the old loader (everything decoded up front): 1.68 GB at 5,000,
4.46 GB at 20,000.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

CACHE = Path(tempfile.gettempdir()) / "convscope-bench-stream"
CLASSES = 10
REFERENCE_GB = {5000: 1.68, 20000: 4.46}  # old main, from the issue
SPEED_EPOCHS = 4  # an epoch of 3,600 images takes 2 s here: the median of epochs 2-4 steadies the ratio


def _write_chunk(args) -> None:
    from PIL import Image  # lazy: only the pool's workers draw images

    root, start, stop = args
    for index in range(start, stop):
        rng = np.random.default_rng(index)
        label = index % CLASSES
        pixels = rng.integers(0, 96, (64, 64, 3), dtype=np.uint8)
        pixels[:, :, label % 3] += np.uint8(60 + 15 * label)  # a learnable class signal
        Image.fromarray(pixels).save(Path(root) / f"c{label}" / f"{index:06d}.png", compress_level=1)


def make_folder(count: int) -> Path:
    root = CACHE / f"png-{count}"
    done = root / ".complete"
    if done.exists():
        return root
    for label in range(CLASSES):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
    step = 1000
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_chunk, [(str(root), start, min(start + step, count)) for start in range(0, count, step)]))
    done.write_text("")
    print(f"generated {count:,} PNGs in {time.perf_counter() - started:.0f}s at {root}", flush=True)
    return root


def run_train(folder: Path, out: Path, name: str, epochs: int, *extra: str) -> dict:
    command = [
        sys.executable, "-m", "convscope", "train", "--dataset", f"folder:{folder}", "--image-size", "64,64",
        "--color-mode", "rgb", "--model", "cnn_small", "--epochs", str(epochs), "--out", str(out), "--name", name, *extra,
    ]
    env = {**os.environ, "CONVSCOPE_CACHE": str(out / "cache")}
    started = time.perf_counter()
    with open(out / f"{name}.err", "w") as stderr:
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS (kB on Linux)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    peak_kb = usage.ru_maxrss
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(out / f'{name}.err').read_text()}")
    with open(out / name / "history.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    sizes = __import__("json").loads((out / name / "data.json").read_text())["preprocessing"]["sizes"]
    rates = [sizes["train"] / float(row["seconds"]) for row in rows]
    return {"peak_gb": peak_kb * 1024 / 1e9, "rates": rates, "wall": wall, "train": sizes["train"], "command": " ".join(command[1:])}


def decode_rates(folder: Path) -> tuple[float, float]:
    """(files scanned per second, images decoded per second through the tf.data pipeline, no cache, no model)."""
    from convscope.data import load_dataset  # lazy: generating folders needs no TensorFlow
    from convscope.data.source import data_source

    started = time.perf_counter()
    data = load_dataset(f"folder:{folder}", image_size=(64, 64), color_mode="rgb", cache="none")
    scanned = time.perf_counter()
    count = sum(len(y) for _, y in data_source(data.x_train, data.y_train).in_order(128))
    decoded = time.perf_counter()
    total = len(data.y_train) + len(data.y_val) + len(data.y_test)
    return total / (scanned - started), count / (decoded - scanned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    args = parser.parse_args()
    folders = {count: make_folder(count) for count in args.sizes}
    out = Path(tempfile.mkdtemp(prefix="convscope-bench-runs-"))
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores", flush=True)
    smallest = min(args.sizes)
    rows = []
    speed = {}
    for label, extra in (("in memory (--stream off)", ("--stream", "off")), ("streamed (cache memory)", ("--cache", "memory"))):
        result = speed[label] = run_train(folders[smallest], out, f"speed-{extra[-1]}", SPEED_EPOCHS, *extra)
        result["cached"] = float(np.median(result["rates"][1:]))
        later = ", ".join(f"{rate:,.0f}" for rate in result["rates"][1:])
        print(f"{smallest:,} {label}: epoch 1 {result['rates'][0]:,.0f} img/s, epochs 2-{SPEED_EPOCHS} {later} img/s (median {result['cached']:,.0f})", flush=True)
    for count in args.sizes:
        result = run_train(folders[count], out, f"rss-{count}", 1)
        rows.append((count, result))
        result["scan"], result["decode"] = decode_rates(folders[count])
        reference = f" (old main: {REFERENCE_GB[count]:.2f} GB)" if count in REFERENCE_GB else ""
        peak = f"{result['peak_gb']:.2f} GB"
        print(
            f"{count:,} streamed: peak RSS {peak}{reference}; first epoch (decode + train) {result['rates'][0]:,.0f} img/s over "
            f"{result['train']:,} training images; scan {result['scan']:,.0f} files/s, decode alone {result['decode']:,.0f} img/s",
            flush=True,
        )
    print()
    print("| images | peak RSS | old main | first epoch images/s (decode + train) | decode alone images/s | scan files/s | cache |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for count, result in rows:
        cache = "memory" if count * 12288 <= 512 << 20 else "disk"
        print(f"| {count:,} | {result['peak_gb']:.2f} GB | {REFERENCE_GB.get(count, '-')} | {result['rates'][0]:,.0f} | {result['decode']:,.0f} | {result['scan']:,.0f} | {cache} |")
    memory, streamed = speed["in memory (--stream off)"], speed["streamed (cache memory)"]
    print(f"\ntraining images/s on {smallest:,}, median of epochs 2-{SPEED_EPOCHS}: streamed {streamed['cached']:,.0f} / in memory {memory['cached']:,.0f} = {streamed['cached'] / memory['cached']:.2f} (target >= 0.8)")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"peak RSS {last[0]:,} / {first[0]:,}: {last[1]['peak_gb']:.2f} / {first[1]['peak_gb']:.2f} GB = {last[1]['peak_gb'] / first[1]['peak_gb']:.2f} (target <= 1.2, and <= 2.5 GB)")
    print(f"peak RSS in memory (--stream off) at {smallest:,}: {memory['peak_gb']:.2f} GB")
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min); runs in {out}")


if __name__ == "__main__":
    main()
