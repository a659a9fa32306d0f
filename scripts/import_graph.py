"""Measure aisec's import graph: modules, import cycles and imports that go against the layers.

Reads ``src/aisec`` with :mod:`ast` (nothing is imported), so it works on a broken tree too. Every
``import`` counts, also the ones inside functions: a lazy import is still a dependency, it only
hides a cycle from the interpreter. Imports under ``if TYPE_CHECKING:`` count as well.

    python scripts/import_graph.py            # counts and the offending edges
    python scripts/import_graph.py --dot      # the package graph as Graphviz dot
    python scripts/import_graph.py --json     # everything, for tests and notes

The layers (lower may never import higher), as ``docs/architecture.md`` draws them:
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

# rank of each top-level package (or root module) of aisec; imports may only go to a rank <= own.
LAYERS: dict[str, int] = {
    "core": 0,
    "data": 1, "targets": 1, "models": 1,
    "attacks": 2, "metrics": 2, "explain": 2, "detect": 2, "defences": 2, "certify": 2,
    "checks": 3,
    "policy": 4, "store": 4, "report": 4, "export": 4, "graph": 4,
    "api": 5,
    "campaigns": 6, "demo": 6, "testing": 6,
    "cli": 7, "web": 7,
    "__init__": 8, "__main__": 8,
}
SRC = Path(__file__).resolve().parent.parent / "src" / "aisec"  # --src changes it


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The aisec modules ``path`` imports (resolved to modules that exist)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()

    def resolve(mod: str) -> str | None:
        while mod and mod not in known:
            mod = mod.rpartition(".")[0]
        return mod or None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "aisec":
                    target = resolve(alias.name)
                    if target:
                        found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "aisec":
                continue
            for alias in node.names:
                target = resolve(f"{mod}.{alias.name}") if f"{mod}.{alias.name}" in known else resolve(mod)
                if target:
                    found.add(target)
    found.discard(name)
    return found


def private_imports(path: Path, name: str, known: set[str]) -> list[str]:
    """Imports of a ``_``-prefixed module or name from outside the package that owns it.

    ``_`` means one thing: private to its package. ``aisec.report.figures._png`` may be used anywhere
    in ``aisec.report``; ``aisec.checks._attack_spec`` anywhere in ``aisec.checks``; neither outside.
    """
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = []

    def owner(dotted: str) -> str | None:
        parts = dotted.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                own = ".".join(parts[:i])
                if not (SRC.parent / Path(*parts[:i])).is_dir():  # a private name in a module: its package owns it
                    own = own.rpartition(".")[0]
                return own
        return None

    for node in ast.walk(tree):
        dotted: list[str] = []
        if isinstance(node, ast.Import):
            dotted = [a.name for a in node.names if a.name.startswith("aisec.")]
        elif isinstance(node, ast.ImportFrom):
            mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            if mod.split(".")[0] == "aisec":
                dotted = [f"{mod}.{a.name}" for a in node.names]
        for d in dotted:
            own = owner(d)
            if own is not None and not (name == own or name.startswith(own + ".")):
                out.append(f"{name} -> {d}")
    return out


def top(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def analyse() -> dict[str, object]:
    files = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}
    known = set(files)
    graph = {m: imports_of(p, m, known) for m, p in files.items()}
    # a package's own __init__ importing its children (or a child importing its parent package) is
    # re-exporting, not a cycle between nouns, so edges between a module and its own package are dropped
    for m in graph:
        graph[m] = {t for t in graph[m] if not (t.startswith(m + ".") or m.startswith(t + "."))}
    pkg_graph: dict[str, set[str]] = {}
    for m, targets in graph.items():
        pkg_graph.setdefault(top(m), set()).update(top(t) for t in targets if top(t) != top(m))
    unknown = sorted({top(m) for m in graph} - set(LAYERS))
    upward = sorted(
        f"{m} -> {t}" for m, targets in graph.items() for t in targets
        if top(m) in LAYERS and top(t) in LAYERS and LAYERS[top(t)] > LAYERS[top(m)]
    )
    private = sorted(p for m, path in files.items() for p in private_imports(path, m, known))
    root_modules = sorted(m for m, p in files.items() if p.parent == SRC and p.stem not in ("__init__", "__main__"))
    return {
        "modules": len(files),
        "packages": sorted({top(m) for m in graph if "." in m and files[m].parent != SRC} - {"__init__"}),
        "root_modules": root_modules,
        "module_cycles": sccs(graph),
        "package_cycles": sccs(pkg_graph),
        "upward_imports": upward,
        "unlayered": unknown,
        "private_imports": private,
        "package_graph": {k: sorted(v) for k, v in sorted(pkg_graph.items())},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dot", action="store_true")
    ap.add_argument("--src", type=Path, help="another checkout's src/aisec (e.g. an old commit, to compare)")
    args = ap.parse_args()
    if args.src is not None:
        global SRC
        SRC = args.src.resolve()
    info = analyse()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if args.dot:
        print("digraph aisec {\n  rankdir=BT;")
        for k, vs in info["package_graph"].items():  # type: ignore[union-attr]
            for v in vs:
                print(f'  "{k}" -> "{v}";')
        print("}")
        return 0
    print(f"modules: {info['modules']}  packages: {len(info['packages'])}  root modules: {len(info['root_modules'])}")
    print(f"module cycles: {len(info['module_cycles'])}  package cycles: {len(info['package_cycles'])}  "
          f"upward imports: {len(info['upward_imports'])}  private imports across packages: "
          f"{len(info['private_imports'])}  unlayered: {info['unlayered']}")
    for c in info["module_cycles"]:  # type: ignore[union-attr]
        print("  cycle:", " <-> ".join(c))
    for c in info["package_cycles"]:  # type: ignore[union-attr]
        print("  package cycle:", " <-> ".join(c))
    for u in info["upward_imports"]:  # type: ignore[union-attr]
        print("  upward:", u)
    for u in info["private_imports"]:  # type: ignore[union-attr]
        print("  private:", u)
    return 0


if __name__ == "__main__":
    sys.exit(main())
