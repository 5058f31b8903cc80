"""Put a quickstart run's table and timings into README.md ("What the quickstart shows").

    judgeforge quickstart -o /tmp/qs --no-progress      # a quiet machine, seed 0
    python scripts/readme_quickstart_table.py /tmp/qs [--readme README.md] [--check]

The table is the quickstart's own (``report.json``'s ``table_md``: every value with its n and
its format's parse failures), so the README never shows numbers shaped differently from what
``judgeforge quickstart`` prints.  ``--check`` exits 1 when the README differs from the run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HEADER = "| judge (tiny, mini data) |"


def timings_line(t: dict) -> str:
    total = t.get("total_s") or 0
    m, s = divmod(int(round(total)), 60)
    return (f"({m} min {s} s in all: shared base {t.get('base_s', 0):.0f} s, absolute expert "
            f"{t.get('absolute_s', 0):.0f} s, relative expert {t.get('relative_s', 0):.0f} s, merge "
            f"{t.get('merge_s', 0):.1f} s,\nevaluation {t.get('eval_s', 0):.0f} s.)")


def updated(readme: str, report: dict) -> str:
    lines = readme.split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.startswith(HEADER)), None)
    if start is None:
        raise SystemExit(f"README: no table starting with '{HEADER}'")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines[start:end] = report["table_md"].split("\n")
    text = "\n".join(lines)
    # the timings paragraph right after the table: "(N min M s in all: ... evaluation K s.)"
    return re.sub(r"\(\d+ min \d+ s in all:.*?evaluation [\d.]+ s\.\)", timings_line(report["timings"]), text,
                  count=1, flags=re.DOTALL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="the quickstart's -o folder (or its report.json)")
    p.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when the README differs")
    args = p.parse_args(argv)
    path = Path(args.run)
    report = json.loads((path / "report.json" if path.is_dir() else path).read_text())
    readme = Path(args.readme)
    old = readme.read_text()
    new = updated(old, report)
    if args.check:
        print("README matches the run" if new == old else "README differs from the run")
        return 0 if new == old else 1
    readme.write_text(new)
    print(f"{readme}: table and timings from {path} (seed {report['config']['seed']}, {report.get('dtype')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
