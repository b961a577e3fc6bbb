"""The package's layout in numbers: import graph, cycles, sizes, overrides.

Reads the source files with :mod:`ast` (nothing is imported or run), so it
works on any checkout:

    python tools/layout_report.py            # this checkout's skivae/
    python tools/layout_report.py --root /path/to/other/checkout

It prints

- every internal import edge ``a -> b`` (imports inside functions included,
  marked ``(in function)``), then the import cycles among skivae's modules,
  if any (exit status 1 when there is a cycle);
- the line count of each class in ``_base.py``, ``_ivae.py`` and ``_nica.py``
  and the largest functions of the package (code lines: not blank, not
  comments, not docstrings);
- per estimator, the methods of ``_BaseLatentEstimator`` it overrides.
"""

import argparse
import ast
import os
import sys


def _module_name(path, root):
    rel = os.path.relpath(path, root)[: -len(".py")]
    parts = rel.split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(root):
    pkg = os.path.join(root, "skivae")
    out = {}
    for dirpath, _, files in os.walk(pkg):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                out[_module_name(path, root)] = path
    return out


def _resolve(name, modules):
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in modules:
            return cand
        parts.pop()
    return None


def _imports(tree, this, modules):
    """``(target, in_function)`` for every import of a package module."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef)
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, inner))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = this.split(".")
                    if not modules[this].endswith("__init__.py"):
                        pkg = pkg[:-1]
                    pkg = pkg[: len(pkg) - child.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                for alias in child.names:
                    found.append((f"{base}.{alias.name}", inner))
            visit(child, inner)

    visit(tree, False)
    edges = {}
    for name, in_function in found:
        target = _resolve(name, modules)
        if target and target != this:
            edges[target] = edges.get(target, True) and in_function
    return edges


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

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
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return comps


def _code_lines(node, source_lines):
    """Lines of ``node`` that are code: not blank, comment or docstring."""
    skip = set()
    for sub in ast.walk(node):
        body = getattr(sub, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    count = 0
    for i in range(node.lineno, node.end_lineno + 1):
        text = source_lines[i - 1].strip()
        if text and not text.startswith("#") and i not in skip:
            count += 1
    return count


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    p.add_argument("--top", type=int, default=12, help="largest functions shown")
    args = p.parse_args(argv)
    root = os.path.abspath(args.root)
    modules = _modules(root)
    trees, sources = {}, {}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as fh:
            sources[name] = fh.read()
        trees[name] = ast.parse(sources[name])

    graph = {}
    print("== import edges (a -> b: a imports b)")
    for name in sorted(modules):
        edges = _imports(trees[name], name, modules)
        graph[name] = sorted(edges)
        for target in sorted(edges):
            mark = "  (in function)" if edges[target] else ""
            print(f"{name} -> {target}{mark}")
    # The package itself imports every public module: leave ``skivae`` (its
    # __init__) out of the cycle search, as nothing below it may import it.
    below = {k: [t for t in v if t != "skivae"] for k, v in graph.items()}
    up = sorted(k for k, v in graph.items() if "skivae" in v and k != "skivae")
    cycles = _cycles(below)
    print("\n== cycles among skivae's modules")
    print("\n".join(" <-> ".join(c) for c in cycles) or "none")
    print("modules importing the package itself (skivae/__init__):", up or "none")
    est = {"skivae._ivae", "skivae._nica"}
    for m in sorted(est):
        bad = [t for t in graph.get(m, ()) if t in est | {"skivae"}]
        print(f"{m} imports an estimator module: {bad or 'no'}")

    print("\n== classes (code lines)")
    for name in ("skivae._base", "skivae._ivae", "skivae._nica"):
        lines = sources[name].splitlines()
        for node in trees[name].body:
            if isinstance(node, ast.ClassDef):
                n_methods = sum(
                    isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for b in node.body
                )
                print(
                    f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines, "
                    f"{_code_lines(node, lines)} code lines, {n_methods} methods"
                )

    print(f"\n== the {args.top} largest functions (code lines)")
    funcs = []
    for name, tree in trees.items():
        lines = sources[name].splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((_code_lines(node, lines), f"{name}.{node.name}"))
    for n, f in sorted(funcs, reverse=True)[: args.top]:
        print(f"{n:4d}  {f}")

    print("\n== methods of _BaseLatentEstimator overridden per estimator")
    base_methods = set()
    for node in trees["skivae._base"].body:
        if isinstance(node, ast.ClassDef) and node.name == "_BaseLatentEstimator":
            base_methods = {b.name for b in node.body if isinstance(b, ast.FunctionDef)}
    hooks = {
        n
        for n in base_methods
        if n.startswith("_")
        and not n.startswith("__")
        and n
        in {
            "_build_module",
            "_n_statistics",
            "_resolve_settings",
            "_aux_u_type",
            "_check_aux",
            "_fit_x_scaling",
            "_after_fit",
            "_check_params",
            "_accepts_missing",
        }
    }
    for name, cls in (
        ("skivae._ivae", "IdentifiableVAE"),
        ("skivae._nica", "NonlinearICA"),
    ):
        for node in trees[name].body:
            if isinstance(node, ast.ClassDef) and node.name == cls:
                own = {b.name for b in node.body if isinstance(b, ast.FunctionDef)}
                over = sorted(own & base_methods - {"__init__"})
                hook = [m for m in over if m in hooks]
                rest = [m for m in over if m not in hooks]
                print(f"{cls}: {len(over)} overrides; hooks: {hook}; others: {rest}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
