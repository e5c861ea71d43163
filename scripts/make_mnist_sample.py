"""Build the bundled MNIST sample (src/convscope/data/sample/) from the official files.

Takes 600 training and 100 test images of each digit, chosen with a fixed seed,
in a fixed shuffled order, and writes them as the four gzipped IDX files plus a
README with their MD5 sums. The same source files always give the same bytes.

    python scripts/make_mnist_sample.py --source path/to/mnist      # folder with the four official IDX files
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

import numpy as np

from convscope.data.download import md5_of_file
from convscope.data.idx import IDX_PARTS, find_idx_files, read_idx, write_idx
from convscope.data.sources import CATALOG, IDX_GZ_NAMES
from convscope.fileio import write_text

PER_CLASS = {"train": 600, "test": 100}  # 6,000 + 1,000 images: ~1 MB gzipped, trains to ~97% in a minute on 2 cores
SEED = 20  # any fixed value; changing it changes the committed files
OUTPUT = Path(__file__).resolve().parent.parent / "src" / "convscope" / "data" / "sample"

README = """\
# Bundled MNIST sample

A stratified subset of the MNIST database of handwritten digits: {train} training
images (600 per digit) and {test} test images (100 per digit), drawn with seed {seed}
from the official files and stored in the official IDX format, gzipped.
Rebuild with `python scripts/make_mnist_sample.py --source FOLDER`.

MNIST: Yann LeCun, Corinna Cortes and Christopher J.C. Burges,
http://yann.lecun.com/exdb/mnist/ ; licence CC BY-SA 3.0
(https://creativecommons.org/licenses/by-sa/3.0/). This subset is shared under the same licence.

MD5 of the files:
{md5s}
"""


def choose(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of each digit, in a shuffled order (so first-N subsets mix digits)."""
    chosen = [rng.choice(np.flatnonzero(labels == digit), size=per_class, replace=False) for digit in range(10)]
    return rng.permutation(np.concatenate(chosen))


def check_source(files: dict[str, Path]) -> None:
    """Stop unless the source files hold exactly the official MNIST content."""
    for part, name in zip(IDX_PARTS, IDX_GZ_NAMES):
        data = files[part].read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if hashlib.md5(data, usedforsecurity=False).hexdigest() != CATALOG["mnist"].remotes[name].content_md5:
            raise SystemExit(f"{files[part]}: content differs from the official MNIST file; pass the official files")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="folder holding the four official MNIST IDX files")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="where to write the sample (default: %(default)s)")
    args = parser.parse_args()
    files = find_idx_files(args.source)
    if files is None:
        raise SystemExit(f"{args.source}: the four MNIST IDX files are not all there")
    check_source(files)
    rng = np.random.default_rng(SEED)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(files[f"{split}_images"], "images")
        labels = read_idx(files[f"{split}_labels"], "labels")
        chosen = choose(labels, PER_CLASS[split], rng)
        write_idx(args.out / f"{prefix}-images-idx3-ubyte.gz", images[chosen])
        write_idx(args.out / f"{prefix}-labels-idx1-ubyte.gz", labels[chosen])
    md5s = "\n".join(f"    {md5_of_file(args.out / name)}  {name}" for name in IDX_GZ_NAMES)
    write_text(args.out / "README.md", README.format(train=10 * PER_CLASS["train"], test=10 * PER_CLASS["test"], seed=SEED, md5s=md5s))
    for name in IDX_GZ_NAMES:
        print(f"{args.out / name}: {(args.out / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
