"""How fast the live viewer answers: POST /api/predict for one drawn 28x28 digit, beside a bare ``model(x)``.

    python bench/view_latency.py                              # mnist_convnet and cnn_2conv, 200 requests each, then the load test
    python bench/view_latency.py --models cnn_2conv --requests 50 --clients 0

Each model is saved into a scratch run folder and served by the command itself,
``python -m convscope view RUN --port 0 --no-browser``, in its own process (as a
browser would be apart from it), and asked over HTTP with keep-alive, the way
the page asks after a stroke: one PNG in, every layer's output as tiles, the
Grad-CAM and saliency overlays and the first layer's responses out. Each
request is interleaved with a bare ``model(x, training=False)`` on the same
prepared image, so both see the same machine load. The first call of each is
a warm-up (Keras builds its functions) and is left out. Target: median under
100 ms, the usual threshold for a response that feels instant.

Load test (--clients N --per-client M): N threads, each with its own HTTP
client, send M requests each at once; no request may fail, and the server
process's RSS after may exceed its RSS before (after warm-up) by at most 50 MB.

Models are untrained (weights do not change the work) on the bundled MNIST
sample: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
import httpx
import numpy as np
from PIL import Image

from convscope.config import Config, save_config
from convscope.data import load_dataset
from convscope.models import create_model
from convscope.predict import prepare_image_bytes, read_input_spec
from convscope.runfolder import RunFolder

TARGET_MS = 100.0
RSS_LIMIT_MB = 50.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def drawn_digit() -> bytes:
    """A 28 x 28 PNG of a hand-drawn-looking 7, as the page's canvas sends it."""
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:9, 7:21] = 255
    for row in range(9, 24):
        column = 20 - (row - 9) // 2
        pixels[row, column - 1 : column + 2] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def scratch_run(folder: Path, name: str, dataset) -> tuple[RunFolder, object]:
    """An untrained zoo model in a run folder, as `convscope view` reads one."""
    run = RunFolder(folder / name)
    config = Config()
    config.data.dataset, config.model.name = dataset.name, name
    save_config(config, run.config_path)
    run.write_data_description(dataset)
    model = create_model(name, dataset.input_shape, dataset.num_classes)
    run.save_model(model)
    return run, model


class ViewProcess:
    """`convscope view RUN` in its own process; ``url`` once it prints it."""

    def __init__(self, run: RunFolder):
        command = [sys.executable, "-m", "convscope", "view", str(run.path), "--port", "0", "--no-browser"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if " at " not in line:
            raise SystemExit(f"convscope view did not start: {line!r}")
        self.url = line.split(" at ", 1)[1]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


def measure_latency(name: str, dataset, requests: int, body: bytes, folder: Path):
    run, model = scratch_run(folder, name, dataset)
    x, _ = prepare_image_bytes(body, read_input_spec(run, model))
    running = ViewProcess(run)
    bare, served, inside = [], [], []
    try:
        with httpx.Client(base_url=running.url, headers={"Content-Type": "image/png"}, timeout=60) as client:
            for index in range(requests + 1):
                started = time.perf_counter()
                model(x, training=False)
                bare_seconds = time.perf_counter() - started
                started = time.perf_counter()
                response = client.post("api/predict", content=body)
                served_seconds = time.perf_counter() - started
                response.raise_for_status()
                if index == 0:
                    continue  # warm-up
                bare.append(1000 * bare_seconds)
                served.append(1000 * served_seconds)
                inside.append(1000 * response.json()["seconds"]["model"])
        answer = response.json()
        covered = f"{len(answer['layers'])} layers, Grad-CAM on {answer['grad_cam']['layer']}, saliency, {answer['first_layer']['responses']['channels']} first-layer responses"
        size_kb = len(response.content) / 1024
    finally:
        running.stop()
    print(f"\n{name}: {covered}; answer {size_kb:.0f} kB of JSON")
    print(f"  {'':34s} {'median':>8s} {'p95':>8s}")
    print(f"  {'POST /api/predict (HTTP, whole)':34s} {statistics.median(served):7.1f}ms {percentile(served, 95):7.1f}ms   target median < {TARGET_MS:.0f} ms: {'met' if statistics.median(served) < TARGET_MS else 'NOT met'}")
    print(f"  {'  of which the probe model + grads':34s} {statistics.median(inside):7.1f}ms {percentile(inside, 95):7.1f}ms")
    print(f"  {'bare model(x), one image':34s} {statistics.median(bare):7.1f}ms {percentile(bare, 95):7.1f}ms")
    print(f"  ratio whole request / bare model(x): {statistics.median(served) / statistics.median(bare):.1f}x")


def load_test(name: str, dataset, clients: int, per_client: int, body: bytes, folder: Path) -> None:
    run = RunFolder(folder / name)
    running = ViewProcess(run if run.model_path.is_file() else scratch_run(folder, name, dataset)[0])
    try:
        with httpx.Client(base_url=running.url, headers={"Content-Type": "image/png"}, timeout=120) as client:
            for _ in range(10):  # warm-up: Keras' functions, the thread pool, uvicorn's buffers
                client.post("api/predict", content=body).raise_for_status()
        before = rss_mb(running.process.pid)
        times, failures, lock = [], [], threading.Lock()

        def worker():
            with httpx.Client(base_url=running.url, headers={"Content-Type": "image/png"}, timeout=120) as client:
                for _ in range(per_client):
                    started = time.perf_counter()
                    try:
                        response = client.post("api/predict", content=body)
                        ok = response.status_code == 200 and "probabilities" in response.json()
                    except httpx.HTTPError as error:
                        ok, response = False, error
                    with lock:
                        (times if ok else failures).append(1000 * (time.perf_counter() - started) if ok else repr(response))

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        after = rss_mb(running.process.pid)
    finally:
        running.stop()
    total = clients * per_client
    print(f"\nload test, {name}: {clients} clients x {per_client} requests = {total} in {wall:.1f} s ({total / wall:.1f} requests/s, served one at a time)")
    print(f"  failures: {len(failures)}{' ' + failures[0] if failures else ''}")
    print(f"  latency under load: median {statistics.median(times):.0f} ms, p95 {percentile(times, 95):.0f} ms (each waits for the requests ahead of it)")
    grown = after - before
    print(f"  server RSS {before:.0f} MB before, {after:.0f} MB after: {grown:+.1f} MB (limit +{RSS_LIMIT_MB:.0f} MB: {'met' if grown <= RSS_LIMIT_MB else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", default="mnist_convnet,cnn_2conv", help="zoo models to serve")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per model after one warm-up")
    parser.add_argument("--clients", type=int, default=8, help="load test: concurrent clients (0: no load test)")
    parser.add_argument("--per-client", type=int, default=50, help="load test: requests per client")
    args = parser.parse_args()

    dataset = load_dataset("mnist-sample")
    body = drawn_digit()
    print(f"{os.cpu_count()} CPU cores, load average {load_average()} before")
    with tempfile.TemporaryDirectory(prefix="convscope-view-bench-") as scratch:
        for name in [item.strip() for item in args.models.split(",") if item.strip()]:
            measure_latency(name, dataset, args.requests, body, Path(scratch))
        if args.clients:
            load_test(args.models.split(",")[0].strip(), dataset, args.clients, args.per_client, body, Path(scratch))
    print(f"\nload average {load_average()} after")


if __name__ == "__main__":
    main()
