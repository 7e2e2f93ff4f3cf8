"""Fuzz every input a user or a player controls, thousands of inputs per kind (issue 17).

    python bench/fuzz.py [--examples 1500] [--kinds config demo ...] [--seed 0] [--timeout 10]

Runs the properties of ``tests/fuzzing.py`` (the same strategies and checks as the fuzz tests)
with Hypothesis generating ``--examples`` inputs per kind (no shrinking), each under a
``--timeout`` second alarm, and prints per kind how many inputs were accepted, refused with the
project's own error, or found a defect (any other exception, or an error without a proper
message) or a hang; then one line per distinct defect. Exit code 1 if any defect or hang.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import time
import warnings
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzzing import KINDS, Outcome, classify


def run_kind(
    name: str, examples: int, seed_value: int, timeout: float
) -> tuple[collections.Counter[Outcome], collections.Counter[str], float]:
    """Outcome counts, distinct defects (with counts) and seconds for one kind."""
    kind = KINDS[name]
    kind.warm_up()
    outcomes: collections.Counter[Outcome] = collections.Counter()
    defects: collections.Counter[str] = collections.Counter()

    @seed(seed_value)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(kind.strategy())
    def fuzz(value: object) -> None:
        outcome, detail = classify(kind.check, value, timeout)
        outcomes[outcome] += 1
        if detail:
            defects[f"{outcome.value}: {detail}"] += 1

    start = time.perf_counter()
    fuzz()
    return outcomes, defects, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1500, help="inputs per kind")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per input")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # dropped messages are logged; that is expected here
    warnings.simplefilter("ignore")

    columns = ("kind", "inputs", "accepted", "project error", "defect", "hang", "seconds")
    rows = []
    all_defects: dict[str, collections.Counter[str]] = {}
    for name in args.kinds:
        outcomes, defects, seconds = run_kind(name, args.examples, args.seed, args.timeout)
        all_defects[name] = defects
        counts = [outcomes[o] for o in Outcome]
        rows.append((name, str(sum(counts)), *map(str, counts), f"{seconds:.0f}"))
        print(f"{name}: {sum(counts)} inputs in {seconds:.0f} s", file=sys.stderr, flush=True)
    totals = [sum(int(r[i]) for r in rows) for i in range(1, 6)]
    rows.append(("total", *map(str, totals), f"{sum(float(r[6]) for r in rows):.0f}"))

    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if i == 0 else "--:" for i in range(len(columns))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    found = False
    for name, defects in all_defects.items():
        for text, count in defects.most_common():
            found = True
            print(f"{name} x{count}: {text}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
