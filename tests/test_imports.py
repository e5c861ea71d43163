"""The import-graph check (scripts/check_imports.py): convscope passes it, and it catches what it should.

The checks on small packages written to tmp_path pass now; convscope itself still
has a cycle, unexplained imports inside functions and long modules while its
restructure is under way, so that test may fail until then.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_imports.py"


def check(package_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(package_dir), *args], capture_output=True, text=True, timeout=60)


def write_package(folder: Path, modules: dict[str, str]) -> Path:
    """A package ``pkg`` under ``folder`` with the given modules ({"a.py": source}); returns its folder."""
    package = folder / "pkg"
    for name, source in {"__init__.py": "", **modules}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return package


def test_convscope_import_graph_is_clean():
    result = check(SCRIPT.parent.parent / "src" / "convscope")
    assert result.returncode == 0, result.stdout


def test_a_clean_package_passes(tmp_path):
    package = write_package(tmp_path, {
        "low.py": "import keras\n",
        "high.py": """
            from pkg import low

            def draw():
                # lazy: keeps the command line's --help from importing Matplotlib
                import matplotlib
                from pkg.sub import leaf  # lazy: leaf is slow to import
                return leaf, matplotlib
            """,
        "sub/__init__.py": "",
        "sub/leaf.py": "from ..low import keras\n",
    })
    result = check(package)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "import graph: clean"


def test_a_cycle_through_an_import_inside_a_function_is_reported_with_its_lines(tmp_path):
    package = write_package(tmp_path, {
        "a.py": "from pkg.b import helper\n",
        "b.py": """
            def helper():
                from pkg import a  # lazy: a imports this module
                return a
            """,
    })
    result = check(package)
    assert result.returncode == 1
    assert "pkg.a -> pkg.b -> pkg.a" in result.stdout
    assert "pkg/a.py:1: from pkg.b import helper" in result.stdout and "pkg/b.py:3 (in helper): from pkg import a" in result.stdout


def test_imports_inside_functions_need_a_reason(tmp_path):
    package = write_package(tmp_path, {
        "a.py": """
            import json

            def load():
                import json as parsing  # standard library: no reason needed
                from . import b
                import tensorflow as tf  # noqa: F401
                # loads the model
                import keras
                return parsing, b, tf, keras, json
            """,
        "b.py": "",
    })
    result = check(package)
    assert result.returncode == 1
    offenders = [line.strip() for line in result.stdout.splitlines() if "(in load)" in line]
    assert offenders == [
        "pkg/a.py:6 (in load): from . import b",
        "pkg/a.py:7 (in load): import tensorflow as tf  # noqa: F401",  # a pragma is not a reason
    ]


def test_long_modules_are_reported(tmp_path):
    package = write_package(tmp_path, {"long.py": "x = 1\n" * 601, "short.py": "x = 1\n" * 600})
    result = check(package)
    assert result.returncode == 1
    assert "modules over 600 lines (1):" in result.stdout and "pkg/long.py: 601 lines" in result.stdout
    assert check(package, "--max-lines", "601").returncode == 0
