"""How fast `convscope predict model.onnx img.png` starts and answers, beside `convscope predict RUN img.png`.

    python bench/predict_onnx.py                     # trains mnist_convnet for 2 epochs on the bundled sample first
    python bench/predict_onnx.py runs/mnist-demo     # an existing run (exported to ONNX first if it has no export/model.onnx)
    python bench/predict_onnx.py --repeats 7

Both commands run as fresh processes, alternating, --repeats times each; the
median is printed. Measured per path:
  wall      `python -m convscope predict X img.png`, the whole command;
  start-up  a process that imports what that path imports and loads the model
            (model.keras through Keras, or the .onnx file in onnxruntime), up to the
            first image: what a deployed predictor pays before it can answer;
  and, for reference, a bare `python -c pass` on the same machine.
The two paths must print the same top-3 classes; the bench checks it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
STARTUP = {
    "keras": "from convscope.predict import predict_images\nfrom convscope.runfolder import open_run\nopen_run({run!r}).load_model()",
    "onnx": "from convscope.onnx_predict import open_session\nfrom pathlib import Path\nopen_session(Path({onnx!r}))",
}


def timed(command: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a fresh process; a failure stops the bench with its stderr."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{finished.stderr}")
    return seconds, finished.stdout


def prepare(run: Path | None, work: Path) -> tuple[Path, Path, Path]:
    """(run folder, its model.onnx, one test image as PNG): trains and exports what is missing."""
    python = [sys.executable, "-m", "convscope"]
    if run is None:
        run = work / "bench-run"
        timed([*python, "train", "--model", "mnist_convnet", "--epochs", "2", "--out", str(work), "--name", run.name])
    onnx = run / "export" / "model.onnx"
    if not onnx.is_file():
        timed([*python, "export", str(run), "--format", "onnx"])
    image = work / "test0.png"
    script = (
        "import convscope\nfrom PIL import Image\nfrom convscope.runfolder import open_run\n"
        f"data = open_run({str(run)!r}).load_dataset()\npixels = data.display_images(data.x_test[:1])[0]\n"
        f"Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save({str(image)!r})\n"
    )
    timed([sys.executable, "-c", script])
    return run, onnx, image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run", nargs="?", type=Path, help="run folder (default: train a small one in a temporary folder)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement; the median is reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        run, onnx, image = prepare(args.run, Path(work))
        python = [sys.executable, "-m", "convscope", "predict"]
        commands = {"keras": [*python, str(run), str(image)], "onnx": [*python, str(onnx), str(image)]}
        startups = {path: [sys.executable, "-c", "import convscope\n" + code.format(run=str(run), onnx=str(onnx))] for path, code in STARTUP.items()}
        print(f"{run}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the start")
        wall, startup, bare, outputs = {"keras": [], "onnx": []}, {"keras": [], "onnx": []}, [], {}
        for _ in range(args.repeats):  # alternate, so that a change in the machine's load hits both paths alike
            bare.append(timed([sys.executable, "-c", "pass"])[0])
            for path in ("keras", "onnx"):
                seconds, outputs[path] = timed(commands[path])
                wall[path].append(seconds)
                startup[path].append(timed(startups[path])[0])
        print(f"load average {os.getloadavg()[0]:.1f} at the end; medians of {args.repeats} runs each\n")
        print(f"{'':38}{'wall':>8}{'start-up':>10}")
        for path, label in (("keras", "convscope predict RUN img.png"), ("onnx", "convscope predict model.onnx img.png")):
            print(f"{label:38}{statistics.median(wall[path]):7.2f}s{statistics.median(startup[path]):9.2f}s")
        print(f"{'python -c pass (reference)':38}{statistics.median(bare):7.2f}s")
        ratio = statistics.median(wall["keras"]) / statistics.median(wall["onnx"])
        print(f"\nthe .onnx path answers {ratio:.1f}x sooner; same top-3: {outputs['keras'].splitlines()[1:] == outputs['onnx'].splitlines()[1:]}")
        print("keras:", outputs["keras"].splitlines()[1].strip())
        print("onnx: ", outputs["onnx"].splitlines()[1].strip())


if __name__ == "__main__":
    main()
