"""How fast data loads: full MNIST from its IDX files, and a folder of 20,000 PNG files.

    python bench/data.py                                  # MNIST from $CONVSCOPE_DATA or ../shared/data/mnist
    python bench/data.py --data-dir /path/to/mnist --repeats 7 --count 20000

Two measurements:
  idx     ``load_dataset("mnist")`` (read and check the four gzipped IDX files,
          split off validation images, scale to float32), median of --repeats
          calls in one process after Keras is imported (its import, 5-20 s here,
          is paid once per process whatever the data and is printed on its own);
          ``read_idx`` of the four files alone is printed beside it.
  folder  a folder of --count PNG files (the first MNIST training digits, one
          sub-folder per class, written once into a temporary folder), decoded by
          ``load_folder_dataset`` and by ``load_dataset("folder:...")`` in fresh
          child processes: images per second and how far peak RSS rises above
          the process's RSS before loading (VmHWM, reset first through /proc/self/clear_refs).
Targets: IDX load < 1 s; the folder's peak RSS growth <= 300 MB (decoding streams
into one uint8 array: 20,000 x 28 x 28 bytes = 16 MB, 63 MB as float32).
The machine may be shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from paths import default_data_dir  # bench/paths.py, beside this script

IDX_TARGET_SECONDS = 1.0
FOLDER_GROWTH_TARGET_MB = 300.0


def read_status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS: now, VmHWM: peak), in MB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def reset_peak_rss() -> bool:
    """Set the peak (VmHWM) to the current RSS, so the peak seen later is the loader's own.

    Writing 5 to /proc/self/clear_refs does this (Linux 4.0+); without it the
    peak may still hold a transient high from importing Keras.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def measure_idx(data_dir: str, repeats: int) -> dict:
    """Median seconds of load_dataset("mnist") and of read_idx on the four files."""
    started = time.perf_counter()
    import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
    import keras  # noqa: F401  (load_dataset asks Keras for the image data format)

    import_seconds = time.perf_counter() - started
    from convscope.data import load_dataset
    from convscope.data.idx import find_idx_files, read_idx

    files = find_idx_files(Path(data_dir))
    if files is None:
        sys.exit(f"{data_dir}: the four MNIST IDX files are not there; pass --data-dir")
    load_seconds, read_seconds = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        data = load_dataset("mnist", data_dir=data_dir, allow_download=False)
        load_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        for part, path in files.items():
            read_idx(path, "images" if part.endswith("images") else "labels")
        read_seconds.append(time.perf_counter() - started)
    return {
        "import_seconds": import_seconds,
        "load_seconds": load_seconds,
        "read_idx_seconds": read_seconds,
        "sizes": {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)},
    }


def write_png_folder(data_dir: str, folder: Path, count: int) -> None:
    """Write the first ``count`` MNIST training digits as PNG files under folder/<digit>/."""
    from PIL import Image

    from convscope.data.idx import find_idx_files, read_idx

    files = find_idx_files(Path(data_dir))
    images = read_idx(files["train_images"], "images")[:count]
    labels = read_idx(files["train_labels"], "labels")[:count]
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(folder / str(label) / f"{index:05d}.png")


def decode_in_child(folder: Path, how: str) -> dict:
    """Run this script's --child mode in a fresh process and return what it measured."""
    command = [sys.executable, __file__, "--child", how, str(folder)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def child(how: str, folder: str) -> None:
    """Decode the folder once; print seconds, image count and RSS figures as one JSON line."""
    import convscope  # noqa: F401
    import keras  # noqa: F401  (imported before measuring: its 0.4 GB are not the decoder's)

    from convscope.data import load_dataset
    from convscope.data.folder import load_folder_dataset

    before = read_status_mb("VmRSS")
    reset = reset_peak_rss()
    started = time.perf_counter()
    if how == "decode":
        raw = load_folder_dataset(Path(folder))
        count = len(raw.y_train) + len(raw.y_test)
    else:
        data = load_dataset(f"folder:{folder}")
        count = len(data.y_train) + len(data.y_val) + len(data.y_test)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "images": count, "rss_before_mb": before, "peak_rss_mb": read_status_mb("VmHWM"), "peak_was_reset": reset}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--repeats", type=int, default=5, help="IDX loads and folder decodes; the median is reported")
    parser.add_argument("--count", type=int, default=20000, help="PNG files in the generated folder")
    parser.add_argument("--child", nargs=2, metavar=("HOW", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    print(f"load average before: {' '.join(f'{value:.1f}' for value in os.getloadavg())} on {os.cpu_count()} cores")
    idx = measure_idx(args.data_dir, args.repeats)
    load, read = statistics.median(idx["load_seconds"]), statistics.median(idx["read_idx_seconds"])
    print(f"import convscope + keras: {idx['import_seconds']:.1f} s (once per process)")
    print(
        f"IDX load_dataset('mnist') {idx['sizes']}: median {load:.2f} s, min {min(idx['load_seconds']):.2f} s "
        f"over {args.repeats} (target < {IDX_TARGET_SECONDS:.0f} s: {'met' if load < IDX_TARGET_SECONDS else 'NOT met'}); "
        f"read_idx of the 4 files alone: median {read:.2f} s"
    )

    with tempfile.TemporaryDirectory(prefix="convscope-bench-png-") as temporary:
        folder = Path(temporary) / "digits"
        started = time.perf_counter()
        write_png_folder(args.data_dir, folder, args.count)
        print(f"wrote {args.count} PNG files in {time.perf_counter() - started:.1f} s")
        for how, label in (("decode", "load_folder_dataset (decode only)"), ("dataset", "load_dataset('folder:...') (decode, split, scale)")):
            runs = [decode_in_child(folder, how) for _ in range(args.repeats)]
            seconds = statistics.median(run["seconds"] for run in runs)
            growth = statistics.median(run["peak_rss_mb"] - run["rss_before_mb"] for run in runs)
            images = runs[0]["images"]
            if not all(run["peak_was_reset"] for run in runs):
                print("  (the peak could not be reset: growth may be understated by the import's transient peak)")
            verdict = "met" if growth <= FOLDER_GROWTH_TARGET_MB else "NOT met"
            print(
                f"{label}: {images} images, median {seconds:.1f} s = {images / seconds:,.0f} images/s; "
                f"peak RSS growth median {growth:.0f} MB (target <= {FOLDER_GROWTH_TARGET_MB:.0f} MB: {verdict}), "
                f"RSS before {runs[0]['rss_before_mb']:.0f} MB"
            )
    print(f"load average after: {' '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
