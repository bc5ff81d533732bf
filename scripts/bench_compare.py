"""Compare this tree with another revision, scenario by scenario, in one run on one machine.

    python scripts/bench_compare.py BASE [--this REV] [--rounds N] [--quick] [--only NAME ...] [--json FILE]

BASE is any git revision (``main``, ``HEAD~3``, a commit).  It is checked out in a temporary
worktree (and so is ``--this REV``, instead of this working tree, when given), and
``scripts/bench.py`` runs in both trees, alternately (base, this, this, base, ...: ``--rounds``
of each), so the machine's drift falls on both sides alike.  Each tree measures
*its own* code against the same baselines (its package first on ``PYTHONPATH``).

A scenario is judged on its ratio to its baseline where it has one (the baseline runs in the
same invocation, so the ratio cancels most of the machine's noise), else on its value; the
report gives, per scenario, the median over the rounds of each tree and ``change``: this
tree's figure over the base's, where below 1.0 is better for times and sizes and above 1.0
is better for rates (``better`` says which way the change goes, ``=`` within ``--noise``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HIGHER_IS_BETTER = frozenset({"MiB/s", "calls/s"})


def _revision(name: str) -> str | None:
    found = subprocess.run(
        ["git", "rev-parse", "--verify", f"{name}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def _worktree(scratch: Path, side: str, commit: str) -> Path:
    tree = scratch / f"{side}-{commit[:10]}"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), commit], cwd=REPO, check=True)
    return tree


def _run_bench(tree: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    argv = [sys.executable, str(tree / "scripts" / "bench.py"), "--json", str(out)]
    if args.quick:
        argv.append("--quick")
    if args.only:
        argv += ["--only", *args.only]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    print(f"bench_compare: {tree.name if tree != REPO else 'this tree'}: {' '.join(argv[1:])}", flush=True)
    subprocess.run(argv, cwd=tree, env=env, check=False, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text()) if out.exists() else {"scenarios": []}


def _figure(result: dict[str, Any]) -> float | None:
    if result.get("status") != "ok":
        return None
    ratio, value = result.get("ratio"), result.get("value")
    return float(ratio) if ratio is not None else (float(value) if value is not None else None)


def _report(runs: dict[str, list[dict[str, Any]]], noise: float) -> list[dict[str, Any]]:
    figures: dict[str, dict[str, list[float]]] = {}
    units: dict[str, str] = {}
    judged_on: dict[str, str] = {}
    for side, documents in runs.items():
        for document in documents:
            for result in document["scenarios"]:
                figure = _figure(result)
                if figure is None:
                    continue
                figures.setdefault(result["name"], {"base": [], "this": []})[side].append(figure)
                units[result["name"]] = result["unit"]
                judged_on[result["name"]] = "ratio" if result.get("ratio") is not None else "value"
    rows = []
    for name, sides in figures.items():
        if not sides["base"] or not sides["this"]:
            continue
        base, this = statistics.median(sides["base"]), statistics.median(sides["this"])
        change = this / base if base else None
        better = "?"
        if change is not None:
            if abs(change - 1) <= noise:
                better = "="
            else:
                improved = change > 1 if units[name] in HIGHER_IS_BETTER else change < 1
                better = "better" if improved else "worse"
        rows.append(
            {
                "name": name,
                "unit": units[name],
                "judged_on": judged_on[name],
                "base": base,
                "this": this,
                "change": change,
                "better": better,
                "rounds": {"base": sides["base"], "this": sides["this"]},
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the git revision to compare with")
    parser.add_argument("--this", metavar="REV", help="measure this revision instead of the working tree")
    parser.add_argument("--rounds", type=int, default=2, help="bench runs of each tree (default 2)")
    parser.add_argument("--quick", action="store_true", help="bench.py --quick")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these scenarios")
    parser.add_argument("--noise", type=float, default=0.1, help="a change within this is '=' (default 0.1)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the comparison as JSON")
    args = parser.parse_args()
    base = _revision(args.base)
    this = _revision(args.this) if args.this else None
    if base is None or (args.this and this is None):
        print(f"bench_compare: {args.base!r} or {args.this!r} is not a revision of {REPO}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="p2p-bench-compare-") as scratch:
        trees = {"base": _worktree(Path(scratch), "base", base)}
        trees["this"] = _worktree(Path(scratch), "this", this) if this else REPO
        try:
            runs: dict[str, list[dict[str, Any]]] = {"base": [], "this": []}
            for round_ in range(args.rounds):
                order = ["base", "this"] if round_ % 2 == 0 else ["this", "base"]
                for side in order:
                    runs[side].append(_run_bench(trees[side], args, Path(scratch) / f"{side}-{round_}.json"))
        finally:
            for tree in trees.values():
                if tree != REPO:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)
    rows = _report(runs, args.noise)
    print(f"\n{'scenario':<24} {'unit':<8} {'on':<6} {'base':>10} {'this':>10} {'change':>7}")
    for row in rows:
        change = f"{row['change']:.2f}" if row["change"] is not None else "-"
        print(
            f"{row['name']:<24} {row['unit']:<8} {row['judged_on']:<6} {row['base']:>10.3f} "
            f"{row['this']:>10.3f} {change:>7}  {row['better']}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"base": base, "this": this or "working tree", "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
