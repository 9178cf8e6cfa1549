"""Inventory for the issue 13 refactor plan (run from a worktree root: python issue13_inventory.py).

Prints, for pfflake/*.py (ast, no imports of pfflake):
  1. top-level definitions with line spans (decorators and leading comments not included)
  2. every function-local import of the package's own modules (enclosing function)
  3. every use of another module's private name (``from .x import _y``, ``x._y``)
  4. the import graph (top level, TYPE_CHECKING, function-local) and its cycles
Re-run it after issues 11 and 12 merge: the plan's tables were made from its output.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PKG = Path(sys.argv[1] if len(sys.argv) > 1 else "pfflake")
MODS = {p.stem: p for p in sorted(PKG.glob("*.py"))}


def target(node: ast.ImportFrom | ast.Import, here: str) -> list[tuple[str, list[str]]]:
    """Own modules imported by ``node`` and the names taken from them."""
    out = []
    if isinstance(node, ast.ImportFrom):
        if node.level == 1 and node.module:
            out.append((node.module.split(".")[0], [a.name for a in node.names]))
        elif node.level == 1:  # from . import x
            for a in node.names:
                out.append((a.name, []) if a.name in MODS else ("__init__", [a.name]))
        elif node.module and node.module.startswith("pfflake"):
            parts = node.module.split(".")
            out.append((parts[1] if len(parts) > 1 else "__init__", [a.name for a in node.names]))
    else:
        for a in node.names:
            if a.name.startswith("pfflake."):
                out.append((a.name.split(".")[1], []))
    return out


def walk(tree: ast.Module):
    """(node, enclosing function qualname or None, under TYPE_CHECKING)."""

    def rec(node, func, tc):
        for child in ast.iter_child_nodes(node):
            f, t = func, tc
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                f = f"{func}.{child.name}" if func else child.name
            elif isinstance(child, ast.ClassDef):
                f = f"{func}.{child.name}" if func else None
                if func is None:
                    cls_name = child.name
                    for sub in ast.iter_child_nodes(child):
                        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                            yield from rec_fn(sub, f"{cls_name}.{sub.name}", tc)
                        else:
                            yield sub, None, tc
                            yield from rec(sub, None, tc)
                    continue
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                t = True
            yield child, f, t
            yield from rec(child, f, t)

    def rec_fn(node, name, tc):
        yield node, name, tc
        yield from rec(node, name, tc)

    yield from rec(tree, None, False)


def main() -> None:
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    local_imports, private_uses = [], []
    print("== 1. top-level definitions (name: first-last, lines)")
    for name, path in MODS.items():
        src = path.read_text()
        tree = ast.parse(src)
        n_lines = len(src.splitlines())
        print(f"\n-- {name}.py ({n_lines} lines)")
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *[d.lineno for d in node.decorator_list]])
                kind = "class" if isinstance(node, ast.ClassDef) else "def"
                end = node.end_lineno
                print(f"  {kind} {node.name}: {start}-{end} ({end - start + 1})")
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [ast.unparse(t) for t in targets]
                print(f"  = {', '.join(names)}: {node.lineno}-{node.end_lineno}")
        module_aliases = {}
        for node, func, tc in walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for mod, names in target(node, name):
                    kind = "type" if tc else ("local" if func else "top")
                    edges[name][mod].add(kind)
                    if func and not tc:
                        local_imports.append((name, node.lineno, func, mod, names))
                    for n in names:
                        if n.startswith("_") and not n.startswith("__") and mod != name:
                            private_uses.append((name, node.lineno, f"from .{mod} import {n}"))
                    if isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module:
                        for a in node.names:
                            if a.name in MODS:
                                module_aliases[a.asname or a.name] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                private_uses.append((name, node.lineno, f"{node.value.id}.{node.attr}"))
    print("\n== 2. function-local imports of the package's own modules")
    for i, (mod, line, func, tgt, names) in enumerate(local_imports, 1):
        print(f"  {i:3d} {mod}.py:{line} in {func}: .{tgt} {', '.join(names)}")
    print("\n== 3. private names of another module")
    for mod, line, what in private_uses:
        print(f"  {mod}.py:{line}: {what}")
    print("\n== 4. import graph (kinds: top, local, type)")
    for a in sorted(edges):
        targets = sorted(edges[a].items())
        print(f"  {a} -> " + ", ".join(f"{b}[{'/'.join(sorted(k))}]" for b, k in targets))
    print("\n   cycles (runtime edges: top + local), as strongly connected components:")
    graph = {a: {b for b, k in bs.items() if k - {"type"} and b != a} for a, bs in edges.items()}
    for comp in scc(graph):
        if len(comp) > 1:
            print("   ", sorted(comp))
            for a in sorted(comp):
                back = sorted(b for b in graph.get(a, ()) if b in comp)
                print(f"      {a} -> {back}")


def scc(graph: dict[str, set[str]]) -> list[set[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10_000)
    for v in list(graph):
        if v not in index:
            strong(v)
    return out


if __name__ == "__main__":
    main()


def documented_names(root: Path = Path(".")) -> None:
    """5. Names of pfflake modules used by README, docs/, notebooks, tests, benchmarks, sql."""
    import json
    import re

    uses: dict[str, set[str]] = defaultdict(set)

    def scan_code(code: str, where: str) -> None:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            tree = None
        aliases = {}
        if tree is not None:
            for node in ast.walk(tree):
                mod = node.module if isinstance(node, ast.ImportFrom) else None
                if mod and mod.startswith("pfflake"):
                    for a in node.names:
                        sub = f"{node.module}.{a.name}"
                        top = sub.removeprefix("pfflake.").split(".")[0]
                        if top in MODS and node.module == "pfflake":
                            aliases[a.asname or a.name] = sub
                        uses[f"{node.module}.{a.name}"].add(where)
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name.startswith("pfflake"):
                            aliases[a.asname or a.name] = a.name
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute):
                    base = ast.unparse(node.value)
                    if base in aliases:
                        uses[f"{aliases[base]}.{node.attr}"].add(where)
        for m in re.finditer(r"[\"'](pfflake(?:\.\w+)+)[\"']", code):  # monkeypatch targets
            uses[m.group(1)].add(where)

    for p in sorted([*root.glob("tests/**/*.py"), *root.glob("benchmarks/*.py")]):
        scan_code(p.read_text(), str(p))
    for p in sorted(root.glob("notebooks/*.ipynb")):
        nb = json.loads(p.read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        lines = [ln for ln in code.splitlines() if not ln.lstrip().startswith(("!", "%"))]
        scan_code("\n".join(lines), str(p))
    for p in [root / "README.md", *sorted(root.glob("docs/*.md"))]:
        text = p.read_text()
        for block in re.findall(r"```(?:python|py)?\n(.*?)```", text, re.S):
            scan_code(block, str(p))
        for m in re.finditer(r"`(pfflake(?:\.\w+)+)`", text):
            uses[m.group(1)].add(str(p))
        for m in re.finditer(r"`(\w+)\.(\w+)`", text):  # `lake.images`-style mentions
            if m.group(1) in MODS:
                uses[f"pfflake.{m.group(1)}.{m.group(2)}"].add(str(p))
    print("\n== 5. names of pfflake used outside the package (name: where)")
    for name in sorted(uses):
        where = sorted({w.split("/")[0] if "/" in w else w for w in uses[name]})
        print(f"  {name}: {', '.join(where)}")


if __name__ == "__main__":
    documented_names()
