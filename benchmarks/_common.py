"""Helpers shared by the benchmark scripts: isolated fits and table printing."""

import argparse
import ast
import multiprocessing as mp
import os
import resource
import shlex
import statistics
import sys
import time


def parse_sets(items):
    """Turn ``["max_iter=20", "prior='laplace'"]`` into a dict of Python values
    (a value that is not a Python literal stays a string: ``prior=laplace``).
    An item without ``=`` is a ValueError."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def apply_defaults(overrides):
    """Set constants of :mod:`skivae._defaults` in this process (``--default``).

    ``overrides`` maps a constant's name (``"DISTILL_LR"``) to its value; a
    list becomes a tuple. An unknown name is a ValueError. Only what the
    package reads from the module at fit time changes; a constant bound as a
    function's default argument at import would keep its value (the package
    looks its constants up when called, see docs/developers.rst).
    """
    import skivae._defaults as D

    for name, value in (overrides or {}).items():
        if not name.isupper() or not hasattr(D, name):
            raise ValueError(f"--default: skivae._defaults has no constant {name!r}")
        setattr(D, name, tuple(value) if isinstance(value, list) else value)


def parse_cli_settings(parser, sets, defaults):
    """The ``--set`` and ``--default`` items of a benchmark's command line as
    two dicts, the ``--default`` ones applied in this process (so a misspelt
    name fails once, here, not in every fit); a malformed item or an unknown
    constant is ``parser.error``."""
    try:
        params, constants = parse_sets(sets), parse_sets(defaults)
        apply_defaults(constants)
    except ValueError as exc:
        parser.error(str(exc))
    return params, constants


def _child(job):
    fn, kwargs, threads = job
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    result = fn(**kwargs)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    result.setdefault("seconds", seconds)
    result["peak_mb"] = rss * scale / 2**20
    return result


def run_isolated(fn, jobs, n_jobs=1, threads=1):
    """Run ``fn(**kwargs)`` for each kwargs in ``jobs``, one fresh process each.

    A fresh process per fit makes the peak resident memory of each fit
    measurable (``ru_maxrss``) and keeps fits from sharing state. With
    ``n_jobs`` workers, each gets ``threads`` torch threads.
    """
    ctx = mp.get_context("spawn")
    env_threads = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", env_threads)
    with ctx.Pool(n_jobs, maxtasksperchild=1) as pool:
        yield from pool.imap(_child, [(fn, kw, threads) for kw in jobs])


def depth_summary(rows, methods, layers, with_seconds=False):
    """Median ``mcc`` and ``mcc_abs`` per method and mixing depth, one row each."""
    summary = []
    for m in methods:
        row = {"method": m}
        for L in layers:
            vals = [r for r in rows if r["method"] == m and r["n_layers"] == L]
            row[f"L{L}"] = statistics.median(r["mcc"] for r in vals)
            row[f"L{L}|s|"] = statistics.median(r["mcc_abs"] for r in vals)
        if with_seconds:
            row["median_s"] = statistics.median(
                r["seconds"] for r in rows if r["method"] == m
            )
        summary.append(row)
    return summary


def summarize(rows, keys, stats):
    """One summary row per distinct value of the ``keys`` columns.

    Groups come in the order they first appear in ``rows``. Each summary row
    holds the key values, ``fits`` (the rows in the group) and one entry per
    ``(name, column, how)`` of ``stats``, where ``how`` is ``"median"``,
    ``"min"``, ``"max"`` or ``"sum"`` of ``column`` over the group. NaN values
    (a fit that diverged) and missing entries are left out; a group with none
    left gets NaN.
    """
    nan = float("nan")
    how = {"median": statistics.median, "min": min, "max": max, "sum": sum}
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    summary = []
    for values, rs in groups.items():
        row = dict(zip(keys, values), fits=len(rs))
        for name, column, agg in stats:
            vals = [r.get(column, nan) for r in rs]
            vals = [v for v in vals if v == v]  # NaN is not equal to itself
            row[name] = how[agg](vals) if vals else nan
        summary.append(row)
    return summary


#: the usual summary columns: MCC median, worst and best, time, memory
MCC_STATS = [
    ("median_mcc", "mcc", "median"),
    ("min_mcc", "mcc", "min"),
    ("max_mcc", "mcc", "max"),
    ("median_s", "seconds", "median"),
    ("max_peak_mb", "peak_mb", "max"),
]


def probe_jobs(doc, argv, families, *, default_families, default_seeds):
    """The command line of the probe scripts (``probe_start.py``,
    ``probe_heldout.py``): ``--families``, ``--seeds``, ``--jobs``, ``--set``
    and ``--default``. Prints the command and returns the number of parallel
    processes and one job (``family``, ``data_seed``, ``params``,
    ``defaults``) per family and seed."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--families", nargs="+", default=list(default_families))
    p.add_argument("--seeds", type=int, nargs="+", default=list(default_seeds))
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--set", action="append", help="estimator parameter key=value")
    p.add_argument(
        "--default",
        action="append",
        metavar="NAME=VALUE",
        help="a constant of skivae._defaults in every fit",
    )
    args = p.parse_args(argv)
    bad = [f for f in args.families if f not in families]
    if bad:
        p.error(f"unknown families {bad}; choose from {list(families)}")
    params, defaults = parse_cli_settings(p, args.set, args.default)
    words = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    print("command: python " + " ".join(shlex.quote(w) for w in words))
    jobs = [
        dict(family=f, data_seed=s, params=params, defaults=defaults)
        for f in args.families
        for s in args.seeds
    ]
    return args.jobs, jobs


def print_table(rows, columns, file=sys.stdout):
    """Print ``rows`` (dicts) as an aligned text table."""
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)
    ]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)), file=file)
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)), file=file)
    file.flush()


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
