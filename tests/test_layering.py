"""The package's layering rules (issue 13), checked on the source of pfflake/:

(a) no module over 600 lines; (b) no import of another module's private names; (c)
function-local imports of the package's own modules only where a reason is written down
here; (d) the import contract (pyproject's ``[tool.importlinter]``: layers, no cycles)
passes ``lint-imports``.

The allow-lists below are debts with an owner, not exemptions: each check also fails when an
entry is no longer needed, so the lists only shrink. Entries marked TEMPORARY belong to work
in progress this session; the coordinator removes them after merging. Each scanner is also
run on a small made-up package with a violation, so none of these checks can pass vacuously.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pfflake"
MAX_LINES = 600

# ----------------------------------------------------------------------------- (a) size

# Modules other engineers are splitting this session (TEMPORARY: empty after the merge).
OVER_600_ALLOWED = {
}

# ---------------------------------------------------------------- (b) private names

# (importer, "module._name") -> owner. Empty since A's console.py (issue 13); keep it empty.
PRIVATE_ALLOWED: dict[tuple[str, str], str] = {}

# ------------------------------------------------------- (c) function-local imports

_NO_PYARROW = "keeps pyarrow out of `import pfflake` (the reader never needs it)"
_NO_PYDANTIC = "keeps pydantic out of `import pfflake` (models load on first validation)"
_CLI = "CLI startup: a command imports only what it runs (`pfflake --help` loads no pyarrow)"

# (importer, imported module) -> why it is imported inside a function.
LOCAL_IMPORTS_ALLOWED = {
    # The few with a lasting reason
    ("pfflake", "pfflake.lake"): "`pfflake.Lake` without loading pyarrow/duckdb at import",
    ("pfflake.run", "pfflake.hk"): _NO_PYARROW,
    ("pfflake.run", "pfflake.models"): _NO_PYDANTIC,
    ("pfflake.sequence", "pfflake.arrow"): _NO_PYARROW,
    ("pfflake.sequence", "pfflake.models"): _NO_PYDANTIC,
    ("pfflake.pypff.io", "pfflake.hk"): "`from pfflake.pypff.io import datapff` loads no pyarrow",
    ("pfflake.cli", "pfflake.cli_events"): _CLI,
    ("pfflake.cli", "pfflake.cli_runs"): _CLI,
    ("pfflake.cli", "pfflake.demo"): _CLI,
    ("pfflake.cli", "pfflake.lake"): _CLI,
    ("pfflake.cli", "pfflake.lake.images"): _CLI + " (`images --as-of`, B)",
    ("pfflake.cli", "pfflake.lake.maintain"): _CLI + " (remove/compact/vacuum)",
    ("pfflake.cli", "pfflake.report.command"): _CLI,
    ("pfflake.cli", "pfflake.zarr"): _CLI,
    ("pfflake.cli", "pfflake.png"): _CLI,
    ("pfflake.cli", "pfflake.profile"): _CLI,
    ("pfflake.cli_events", "pfflake.lake"): _CLI + " (A)",
    ("pfflake.cli_events", "pfflake.cuts"): _CLI + " (A)",
    ("pfflake.cli_events", "pfflake.timing"): _CLI + " (A)",
    # Lazy by design
    ("pfflake.report", "pfflake.report.housekeeping"): "report sections load on write_report",
    ("pfflake.report", "pfflake.report.html"): "report sections load on write_report",
    ("pfflake.report", "pfflake.report.pixels"): "report sections load on write_report",
    ("pfflake.report", "pfflake.report.quality"): "report sections load on write_report",
    ("pfflake.report", "pfflake.report.timing"): "report sections load on write_report",
}


# ----------------------------------------------------------------------------- scanners


def _modules(package: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``), for every .py under it."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_pkg)
    return found


def _resolve(module: str, is_pkg: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join([*base, name] if name else base)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_modules(node, module, is_pkg, root, modules) -> list[str]:
    """The package modules an import statement loads (``from . import x`` -> ``pkg.x``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == root]
    source = _resolve(module, is_pkg, node.level, node.module)
    if source.split(".")[0] != root:
        return []
    out = []
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        out.append(sub if sub in modules else source)
    return out


def oversized(package: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Modules over ``limit`` lines -> their line count."""
    return {
        name: n
        for name, (path, _) in _modules(package).items()
        if (n := len(path.read_text().splitlines())) > limit
    }


def private_imports(package: Path) -> dict[tuple[str, str], list[int]]:
    """``(importer, "module._name")`` -> lines, for ``from m import _name`` and ``m._name``
    on a name bound by an import of the package's own code (dunders are not private)."""
    root = package.name
    modules = _modules(package)
    found: dict[tuple[str, str], list[int]] = defaultdict(list)

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for module, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text())
        bound: dict[str, str] = {}  # local name -> what it refers to in the package
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_pkg, node.level, node.module)
                if source.split(".")[0] != root:
                    continue
                for alias in node.names:
                    if private(alias.name):
                        found[(module, f"{source}.{alias.name}")].append(node.lineno)
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == root:
                        local = alias.asname or alias.name.split(".")[0]
                        bound[local] = alias.name if alias.asname else local
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and private(node.attr)
            ):
                found[(module, f"{bound[node.value.id]}.{node.attr}")].append(node.lineno)
    return dict(found)


def local_imports(package: Path) -> dict[tuple[str, str], list[int]]:
    """``(importer, imported module)`` -> lines, for imports of the package's own modules
    inside a function or method (``if TYPE_CHECKING:`` blocks do not run and do not count)."""
    root = package.name
    modules = _modules(package)
    found: dict[tuple[str, str], list[int]] = defaultdict(list)
    for module, (path, is_pkg) in modules.items():

        def visit(node: ast.AST, in_function: bool, module=module, is_pkg=is_pkg) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child.test):
                    for other in child.orelse:
                        visit(other, in_function)
                    continue
                inner = in_function or isinstance(
                    child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                )
                if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                    for target in _imported_modules(child, module, is_pkg, root, modules):
                        if target != module:
                            found[(module, target)].append(child.lineno)
                visit(child, inner)

        visit(ast.parse(path.read_text()), False)
    return dict(found)


def _stale_and_new(found: dict, allowed: dict) -> tuple[list, list]:
    return sorted(set(allowed) - set(found)), sorted(set(found) - set(allowed))


# -------------------------------------------------------------------------------- tests


def test_no_module_over_600_lines():
    found = oversized(PACKAGE)
    stale, new = _stale_and_new(found, OVER_600_ALLOWED)
    assert not new, f"modules over {MAX_LINES} lines: { {m: found[m] for m in new} }; split them"
    assert not stale, f"now at most {MAX_LINES} lines, remove from OVER_600_ALLOWED: {stale}"


def test_no_private_names_across_modules():
    found = private_imports(PACKAGE)
    stale, new = _stale_and_new(found, PRIVATE_ALLOWED)
    assert not new, (
        "another module's private name is used (make it public where it is defined): "
        + "; ".join(f"{imp} uses {name} (line {found[imp, name]})" for imp, name in new)
    )
    assert not stale, f"fixed, remove from PRIVATE_ALLOWED: {stale}"


def test_function_local_imports_have_a_reason():
    found = local_imports(PACKAGE)
    stale, new = _stale_and_new(found, LOCAL_IMPORTS_ALLOWED)
    assert not new, (
        "function-local import of the package's own module without a reason (import it at "
        "the top, or add it to LOCAL_IMPORTS_ALLOWED with why): "
        + "; ".join(f"{a} -> {b} (line {found[a, b]})" for a, b in new)
    )
    assert not stale, f"no longer imported in a function, remove from the list: {stale}"
    assert all(reason.strip() for reason in LOCAL_IMPORTS_ALLOWED.values())


def _lint_imports() -> Path:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is not installed (it is in the dev group: uv sync)")
        exe = Path(found)
    return exe


def _run_lint_imports(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(_lint_imports()), "--no-cache", "--no-logo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contract_is_kept():
    """pyproject's [tool.importlinter]: layers (function-local imports count), no cycles."""
    result = _run_lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# ------------------------------------------------- the checks fail on a violation


def _made_up_package(tmp_path: Path) -> Path:
    pkg = tmp_path / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def _hidden():\n    pass\n\n\ndef shown():\n    pass\n")
    (pkg / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (pkg / "sub" / "high.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import low\n"
        "from ..low import _hidden\n"
        "if TYPE_CHECKING:\n"
        "    from ..big import x\n"
        "def f():\n"
        "    from .. import big\n"
        "    from fakepkg.low import shown\n"
        "    return low._hidden, big, shown\n"
    )
    return pkg


def test_the_scanners_see_violations(tmp_path):
    pkg = _made_up_package(tmp_path)
    assert oversized(pkg) == {"fakepkg.big": MAX_LINES + 1}
    assert private_imports(pkg) == {("fakepkg.sub.high", "fakepkg.low._hidden"): [3, 9]}
    assert local_imports(pkg) == {
        ("fakepkg.sub.high", "fakepkg.big"): [7],  # not the TYPE_CHECKING one (line 5)
        ("fakepkg.sub.high", "fakepkg.low"): [8],
    }


def test_lint_imports_fails_on_a_broken_contract(tmp_path):
    """The same tool on the real package with a contract the code breaks (products imports
    errors, so errors cannot sit above products) exits non-zero: a kept contract means something."""
    config = tmp_path / "broken.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "pfflake"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "upside down"\ntype = "layers"\ncontainers = ["pfflake"]\n'
        'layers = ["errors", "products"]\n'
    )
    result = _run_lint_imports(str(config))
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout
    assert "pfflake.products -> pfflake.errors" in result.stdout
