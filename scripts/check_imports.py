"""Check convscope's import graph: no cycles, every import inside a function explained, no module over 600 lines.

Usage:

    python scripts/check_imports.py                 # checks src/convscope
    python scripts/check_imports.py PACKAGE_DIR [--max-lines 600]

Exits 0 when clean, 1 with a list of offenders. The rules are DESIGN.md's:
imports only point down, counting imports inside functions (an import that runs
late still makes a cycle, it only hides it); a module past about 500 lines is two
concerns. An import inside a function of the package's own modules, or of
Keras, TensorFlow, Matplotlib or Jinja2, needs a comment on its line or the line
above saying why it is there and not at the top:

    def main(argv=None):
        # lazy: keeps `convscope --help` from importing TensorFlow
        from convscope import pipeline
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

MAX_LINES = 600  # DESIGN.md: "a module that grows past about 500 lines is two concerns"
HEAVY_PACKAGES = {"keras", "tensorflow", "matplotlib", "jinja2"}  # slow to import: an import inside a function says why
PRAGMAS = ("noqa", "type:", "pragma", "pylint:", "fmt:", "isort:")  # a comment that is only one of these gives no reason
DEFAULT_PACKAGE = Path(__file__).resolve().parent.parent / "src" / "convscope"


@dataclass(frozen=True)
class ImportStatement:
    """One import statement of the package: where it is and which of the package's modules it loads."""

    module: str  # the importing module, dotted
    path: Path
    line: int
    text: str  # the statement's first line, stripped
    function: str | None  # the enclosing function's name; None at module level
    package_targets: tuple[str, ...]  # the package's modules it loads
    top_level_names: tuple[str, ...]  # first component of every absolute name: "keras", "convscope"
    explained: bool  # a comment on its line or the line above


@dataclass(frozen=True)
class Report:
    cycles: list[list[tuple[str, str, ImportStatement]]]  # each cycle as its edges in order
    unexplained: list[ImportStatement]
    long_modules: list[tuple[Path, int]]

    @property
    def clean(self) -> bool:
        return not (self.cycles or self.unexplained or self.long_modules)


# ---------------------------------------------------------------- reading the package


def find_modules(package_dir: Path) -> dict[str, Path]:
    """Dotted name -> file for every module of the package (a package is its ``__init__.py``)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def commented_lines(source: str) -> tuple[set[int], set[int]]:
    """Line numbers with a comment that gives a reason, and those of them that hold nothing but the comment."""
    with_comment, comment_only = set(), set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        text = token.string.lstrip("#").strip()
        if not text or text.startswith(PRAGMAS):
            continue
        row, column = token.start
        with_comment.add(row)
        if not token.line[:column].strip():
            comment_only.add(row)
    return with_comment, comment_only


def named_modules(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> tuple[list[str], list[str]]:
    """The absolute names an import statement loads, and which of them are the package's modules."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from . import x, from ..data import y
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        attributes_too = len(submodules) < len(node.names)  # `from pkg import function` runs pkg's __init__
        names = submodules + ([base] if attributes_too or not submodules else [])
    return names, [name for name in names if name in modules]


def read_imports(module: str, path: Path, modules: dict[str, Path]) -> list[ImportStatement]:
    source = path.read_text(encoding="utf-8")
    with_comment, comment_only = commented_lines(source)
    lines = source.splitlines()
    is_package = path.name == "__init__.py"
    statements = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, function or child.name)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                names, targets = named_modules(module, is_package, child, modules)
                statement_lines = set(range(child.lineno, (child.end_lineno or child.lineno) + 1))
                statements.append(ImportStatement(
                    module=module,
                    path=path,
                    line=child.lineno,
                    text=lines[child.lineno - 1].strip(),
                    function=function,
                    package_targets=tuple(targets),
                    top_level_names=tuple(sorted({name.split(".")[0] for name in names if name})),
                    explained=bool(statement_lines & with_comment) or child.lineno - 1 in comment_only,
                ))
            else:
                visit(child, function)

    visit(ast.parse(source, filename=str(path)), None)
    return statements


# ---------------------------------------------------------------- the checks


def find_cycles(edges: dict[str, dict[str, ImportStatement]]) -> list[list[tuple[str, str, ImportStatement]]]:
    """One shortest cycle per strongly connected group of modules (Tarjan), as its edges in order."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges[module]:
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = set()
            while module not in group:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
            if len(group) > 1:
                groups.append(group)

    for module in sorted(edges):
        if module not in index:
            connect(module)
    return [shortest_cycle(min(group), group, edges) for group in groups]


def shortest_cycle(start: str, group: set[str], edges: dict[str, dict[str, ImportStatement]]) -> list[tuple[str, str, ImportStatement]]:
    """Breadth-first from ``start`` back to itself, inside ``group``."""
    came_from = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(edges[module]):
                if target == start:
                    path, step = [(module, start)], module
                    while came_from[step] is not None:
                        path.append((came_from[step], step))
                        step = came_from[step]
                    return [(source, target, edges[source][target]) for source, target in reversed(path)]
                if target in group and target not in came_from:
                    came_from[target] = module
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected group but no cycle leads back to it")


def check_package(package_dir: Path, max_lines: int = MAX_LINES) -> Report:
    package = package_dir.name
    modules = find_modules(package_dir)
    statements = [statement for module, path in modules.items() for statement in read_imports(module, path, modules)]
    # Every module's import runs the package's __init__ first; the face that re-exports the API is not an edge.
    edges = {module: {} for module in modules}
    for statement in statements:
        for target in statement.package_targets:
            if target not in (statement.module, package):
                edges[statement.module].setdefault(target, statement)
    needs_reason = HEAVY_PACKAGES | {package}
    unexplained = [
        statement for statement in statements
        if statement.function and not statement.explained and needs_reason & set(statement.top_level_names)
    ]
    line_counts = ((path, len(path.read_text(encoding="utf-8").splitlines())) for path in modules.values())
    long_modules = sorted(((path, count) for path, count in line_counts if count > max_lines), key=lambda item: -item[1])
    return Report(find_cycles(edges), unexplained, long_modules)


# ---------------------------------------------------------------- output


def format_report(report: Report, root: Path, max_lines: int) -> str:
    def where(statement: ImportStatement) -> str:
        inside = f" (in {statement.function})" if statement.function else ""
        return f"{statement.path.relative_to(root)}:{statement.line}{inside}"

    lines = []
    if report.cycles:
        lines.append(f"import cycles, counting imports inside functions ({len(report.cycles)}):")
        for cycle in report.cycles:
            lines.append("  " + " -> ".join([cycle[0][0]] + [target for _, target, _ in cycle]))
            for source, target, statement in cycle:
                lines.append(f"    {where(statement)}: {statement.text}")
    if report.unexplained:
        lines.append(f"imports inside functions without a comment saying why ({len(report.unexplained)}):")
        lines.extend(f"  {where(statement)}: {statement.text}" for statement in report.unexplained)
    if report.long_modules:
        lines.append(f"modules over {max_lines} lines ({len(report.long_modules)}):")
        lines.extend(f"  {path.relative_to(root)}: {count} lines" for path, count in report.long_modules)
    problems = len(report.cycles) + len(report.unexplained) + len(report.long_modules)
    lines.append("import graph: clean" if report.clean else f"import graph: {problems} problem(s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", nargs="?", type=Path, default=DEFAULT_PACKAGE, help="the package folder (default: src/convscope)")
    parser.add_argument("--max-lines", type=int, default=MAX_LINES, help="longest module allowed, in lines (default: %(default)s)")
    args = parser.parse_args(argv)
    package_dir = args.package_dir.resolve()
    if not (package_dir / "__init__.py").is_file():
        parser.error(f"{package_dir}: not a package folder (no __init__.py); pass the folder of the package, e.g. src/convscope")
    report = check_package(package_dir, args.max_lines)
    shown_from = Path.cwd() if package_dir.is_relative_to(Path.cwd()) else package_dir.parent  # paths as the reader typed them
    print(format_report(report, shown_from, args.max_lines))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
