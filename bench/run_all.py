"""Run every benchmark in bench/ and write bench/results/<name>.json.

Convention: each ``bench/<name>.py`` (not starting with ``_``, and not this file) defines
``main() -> dict``. Its dict is written as JSON to ``bench/results/<name>.json``. If the
dict has a ``"table"`` key (a list of flat dicts), it is printed as a table; a
``"targets"`` key is printed too.

Usage: ``.venv/bin/python bench/run_all.py [name ...]`` (default: every script).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any


BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def discover(names: list[str]) -> list[Path]:
    """The benchmark scripts to run, by name or all of them."""
    scripts = sorted(
        p for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.name != "run_all.py"
    )
    if names:
        scripts = [p for p in scripts if p.stem in names]
    return scripts


def load_main(path: Path) -> Any:
    """Import a script by path and return its ``main``."""
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as a normal import does: dataclasses with postponed
    # annotations look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.main


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print a list of flat dicts as an aligned text table."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; returns a process exit code."""
    names = sys.argv[1:] if argv is None else argv
    RESULTS.mkdir(exist_ok=True)
    failed = 0
    for path in discover(names):
        print(f"== {path.stem}", flush=True)
        started = time.perf_counter()
        try:
            result = load_main(path)()
        except Exception as exc:  # one broken benchmark must not hide the others
            print(f"!! {path.stem} failed: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        out = RESULTS / f"{path.stem}.json"
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        if isinstance(result.get("table"), list):
            print_table(result["table"])
        if "targets" in result:
            print("targets:", json.dumps(result["targets"], ensure_ascii=False))
        print(f"-> {out.relative_to(BENCH.parent)} ({time.perf_counter() - started:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
