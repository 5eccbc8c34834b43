"""Mutation testing of the money paths (issue 19): run mutmut, print the score per module.

    python scripts/mutation.py                 # every mutant of the targets (`make mutation`)
    python scripts/mutation.py --sample 4      # a fixed, seeded sample (`make mutation-ci`)
    python scripts/mutation.py --module operators.batch --max-children 1   # one module's mutants

mutmut (configured in ``pyproject.toml`` under ``[tool.mutmut]``) copies the package into
``mutants/``, mutates the money modules, and runs for each mutant the unit tests that reach
the mutated function. This script chooses which mutants run, then reads mutmut's results and
prints per module: mutants generated (in the targets), checked, killed, survived,
allow-listed (``tests/mutation_allowlist.txt``: equivalent mutants, one line each with a
reason) and the time spent. It fails when a module scores below ``--threshold`` or when any
mutant of a money line (submit, re-attach, budget) survives and is not allow-listed.

The sample is mutant numbers drawn once from a seeded generator, taken from *every* target
function (mutmut numbers each function's mutants from 1): the same mutants on every run and
machine, spread over every module; a sample always adds every mutant of the money lines.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_seedance"
ALLOWLIST = REPO / "tests" / "mutation_allowlist.txt"

#: Module -> the functions whose mutants count ("*" = all of them). mutmut names a mutant
#: ``<module>.x_<function>__mutmut_<n>`` or ``<module>.xǁ<Class>ǁ<method>__mutmut_<n>``.
TARGETS: dict[str, tuple[str, ...]] = {
    "models": ("*",),
    "results": ("*",),
    "reattach": ("*",),
    "exceptions": ("*",),
    "task_identity": ("*",),
    "operators.seedance": ("*",),
    "operators.batch": ("*",),
    "triggers.seedance": ("*",),
    "triggers.batch": ("*",),
    # the wait settings a trigger keeps and checks (a bad one must end its task, not the triggerer)
    "triggers.polling": ("*",),
    "values": ("*",),
    # delivery: the existing-video check, the MP4 check and the pre-POST destination check only
    "hooks.delivery": ("x_existing_video", "x_describe_non_video", "x_probe_destination", "x__make_parent"),
    # the hook: the generate POST and the status read, down to the one sync exchange
    # (tests/unit/hooks/test_hook_submit_status.py drives them over a scripted requests adapter)
    "hooks.seedance": (
        "xǁSeedanceHookǁsubmit_request",
        "xǁSeedanceHookǁget_status",
        "xǁSeedanceHookǁ_read_status",
        "xǁSeedanceHookǁ_status_once",
        "xǁSeedanceHookǁ_exchange",
        "x__not_sent",
        "x__checked_task_id",
    ),
}

#: The money lines: every mutant of these must be killed (or allow-listed as equivalent).
MONEY: dict[str, tuple[str, ...]] = {
    "operators.seedance": (
        "xǁSeedanceGenerateOperatorǁcheck_budget",
        "xǁSeedanceGenerateOperatorǁ_attach_or_submit",
        "xǁSeedanceGenerateOperatorǁ_submit",
        "xǁSeedanceGenerateOperatorǁ_reserve",
        "xǁSeedanceGenerateOperatorǁ_release",
        "xǁSeedanceGenerateOperatorǁ_bind",
    ),
    "operators.batch": (
        "xǁSeedanceBatchGenerateOperatorǁexecute",
        "xǁSeedanceBatchGenerateOperatorǁ_reattach",
        "xǁSeedanceBatchGenerateOperatorǁ_needs_submission",
        "xǁSeedanceBatchGenerateOperatorǁ_submit",
        "xǁSeedanceBatchGenerateOperatorǁcheck_budget",
        "xǁSeedanceBatchGenerateOperatorǁ_reserve_items",
        "xǁSeedanceBatchGenerateOperatorǁ_bind_or_release",
    ),
    "reattach": (
        "xǁSubmissionRecordǁget",
        "xǁSubmissionRecordǁmark_submitting",
        "xǁSubmissionRecordǁmark_submitted",
        "xǁSubmissionRecordǁmark_rejected",
        "xǁSubmissionRecordǁforget_attempt",
    ),
    "exceptions": ("x_never_created",),
    # the identity a submission record is found by: read wrong, a retry finds no record and pays again
    "task_identity": ("x_instance_identity", "x_try_identity"),
    # the generate POST: sent once, again only when it provably never left
    "hooks.seedance": ("xǁSeedanceHookǁsubmit_request", "x__not_sent"),
}

KILLED = {"killed", "timeout", "caught by type check"}
SURVIVED = {"survived", "no tests"}
_LINE = re.compile(r"^\s*(\S+): (.+?)\s*$")


@dataclass
class Score:
    generated: int = 0
    checked: int = 0
    killed: int = 0
    survived: list[str] = field(default_factory=list)
    allowed: int = 0
    other: int = 0  # suspicious, skipped, segfault: neither killed nor survived
    seconds: float = 0.0

    @property
    def percent(self) -> float:
        counted = self.killed + len(self.survived) + self.allowed
        return 100.0 * (self.killed + self.allowed) / counted if counted else 100.0


def module_of(name: str) -> str | None:
    """``models`` for ``airflow_provider_seedance.models.x_f__mutmut_3``."""
    dotted = name.split(".x", 1)[0] if ".x" in name else ""
    prefix = PACKAGE + "."
    return dotted[len(prefix) :] if dotted.startswith(prefix) else None


def function_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0] if "__mutmut_" in name else ""


def in_targets(name: str, targets: dict[str, tuple[str, ...]]) -> bool:
    module = module_of(name)
    wanted = targets.get(module or "", ())
    return "*" in wanted or function_of(name) in wanted


def patterns(numbers: list[int] | None, targets: dict[str, tuple[str, ...]] = TARGETS) -> list[str]:
    """mutmut name patterns (fnmatch) for the targets: all mutants, or the sampled numbers."""
    suffixes = ["*"] if numbers is None else [str(n) for n in numbers]
    found = []
    for module, functions in targets.items():
        for function in functions:
            # "*" stands for "any function": mutmut's names start with "x" either way
            stem = "x*" if function == "*" else function
            found += [f"{PACKAGE}.{module}.{stem}__mutmut_{suffix}" for suffix in suffixes]
    return found


def read_allowlist() -> dict[str, str]:
    allowed: dict[str, str] = {}
    for raw in ALLOWLIST.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip().lstrip("#").strip():
            sys.exit(
                f"{ALLOWLIST.name}: {name} has no reason (one line: '<mutant> # <why it is equivalent>')"
            )
        allowed[name] = reason.strip().lstrip("#").strip()
    return allowed


def read_results(mutmut: str) -> dict[str, str]:
    """Every generated mutant and its status, from ``mutmut results --all true``."""
    out = subprocess.run([mutmut, "results", "--all", "true"], cwd=REPO, capture_output=True, text=True)
    statuses = {}
    for line in out.stdout.splitlines():
        match = _LINE.match(line)
        if match:
            statuses[match.group(1)] = match.group(2)
    return statuses


def read_durations() -> dict[str, float]:
    durations: dict[str, float] = {}
    for meta in (REPO / "mutants").rglob("*.py.meta"):
        durations.update(json.loads(meta.read_text()).get("durations_by_key") or {})
    return durations


#: mutmut's exit codes of a mutant no test killed (survived, no tests).
_UNKILLED_CODES = {0, 5, 33}


def forget_unkilled() -> int:
    """Clear mutmut's cached verdict of every mutant that was not killed, so that a run with
    the kept ``mutants/`` tries them again (with any tests added since); killed ones stay
    killed, since adding tests cannot revive a mutant."""
    count = 0
    for meta in (REPO / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key") or {}
        for name, code in codes.items():
            if code in _UNKILLED_CODES:
                codes[name] = None
                count += 1
        meta.write_text(json.dumps(data, indent=4))
    return count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sample", type=int, default=0, help="mutant numbers per function (0: all)")
    parser.add_argument("--seed", type=int, default=19, help="seed of the sample")
    parser.add_argument("--max-number", type=int, default=40, help="draw the sample from 1..N")
    parser.add_argument("--threshold", type=float, default=90.0, help="minimum score per module, in %%")
    parser.add_argument("--min-total", type=float, default=0.0, help="minimum score over all modules, in %%")
    parser.add_argument("--max-children", type=int, default=2, help="mutants run at once")
    parser.add_argument(
        "--keep", action="store_true", help="reuse mutants/ (mutmut's cache) from a run before"
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="reuse mutants/ and run again only the mutants that were not killed (after adding tests)",
    )
    parser.add_argument("--money-only", action="store_true", help="run only the money lines' mutants")
    parser.add_argument(
        "--module",
        action="append",
        choices=sorted(TARGETS),
        metavar="MODULE",
        help="run and score only this target module (repeatable), e.g. operators.batch; "
        f"one of: {', '.join(TARGETS)}",
    )
    parser.add_argument("--report-only", action="store_true", help="score the last run, run nothing")
    args = parser.parse_args()

    mutmut = str(Path(sys.executable).with_name("mutmut"))
    targets = {m: f for m, f in TARGETS.items() if not args.module or m in args.module}
    money = {m: f for m, f in MONEY.items() if m in targets}
    numbers = None
    if args.sample:
        numbers = sorted(
            random.Random(args.seed).sample(  # noqa: S311 - a reproducible sample, not a secret
                range(1, args.max_number + 1), args.sample
            )
        )
    started = time.monotonic()
    if args.recheck and not args.report_only:
        print(f">> rechecking {forget_unkilled()} mutants that were not killed", flush=True)
    if not args.report_only:
        if not (args.keep or args.recheck):
            shutil.rmtree(REPO / "mutants", ignore_errors=True)
        what = "every mutant" if numbers is None else f"mutants numbered {numbers} of every function"
        what += " of the money lines" if args.money_only else " of the money paths"
        if args.module:
            what += f" in {', '.join(targets)}"
        selection = patterns(numbers, money if args.money_only else targets)
        if numbers is not None:
            selection += patterns(None, money)  # a sample still runs every money-line mutant
            what += ", and every mutant of the money lines"
        print(f">> mutmut: {what} (unit tests; see [tool.mutmut])", flush=True)
        run = subprocess.run(
            [
                mutmut,
                "run",
                "--max-children",
                str(args.max_children),
                *selection,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,  # a spinner; the results are read below
            stderr=subprocess.PIPE,
            text=True,
        )
        if run.returncode != 0:
            print(run.stderr[-4000:], file=sys.stderr)
            print(f"mutmut run failed (exit {run.returncode})", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started

    allow = read_allowlist()
    statuses = read_results(mutmut)
    durations = read_durations()
    scores: dict[str, Score] = defaultdict(Score)
    money_survivors: list[str] = []
    for name, status in statuses.items():
        if not in_targets(name, targets):
            continue
        score = scores[module_of(name) or "?"]
        score.generated += 1
        if status == "not checked":
            continue
        score.checked += 1
        score.seconds += durations.get(name, 0.0)
        if status in KILLED:
            score.killed += 1
        elif status in SURVIVED and name in allow:
            score.allowed += 1
        elif status in SURVIVED:
            score.survived.append(name)
            if in_targets(name, money):
                money_survivors.append(name)
        else:
            score.other += 1
    stale = sorted(name for name in allow if name not in statuses and in_targets(name, targets))

    header = f"{'module':<22}{'generated':>10}{'checked':>9}{'killed':>8}{'survived':>10}{'allowed':>9}"
    print(f"\n{header}{'score':>8}{'time':>9}")
    total = Score()
    failing = []
    for module in targets:
        s = scores.get(module, Score())
        print(
            f"{module:<22}{s.generated:>10}{s.checked:>9}{s.killed:>8}{len(s.survived):>10}{s.allowed:>9}"
            f"{s.percent:>7.1f}%{s.seconds:>8.0f}s"
        )
        total.generated += s.generated
        total.checked += s.checked
        total.killed += s.killed
        total.survived += s.survived
        total.allowed += s.allowed
        total.seconds += s.seconds
        if s.checked and s.percent < args.threshold:
            failing.append(module)
    print(
        f"{'total':<22}{total.generated:>10}{total.checked:>9}{total.killed:>8}{len(total.survived):>10}"
        f"{total.allowed:>9}{total.percent:>7.1f}%{total.seconds:>8.0f}s"
    )
    print(f"wall time {elapsed:.0f}s (mutant time is summed over {args.max_children} workers)")
    if total.survived:
        print("\nsurvivors (`.venv/bin/mutmut show <name>` shows the change):")
        for name in sorted(total.survived):
            print(f"  {'MONEY ' if name in money_survivors else ''}{name}")
    if stale:
        print(f"\nallow-list entries no run has generated (renumbered? remove them): {', '.join(stale)}")
    if failing:
        print(f"\nFAIL: below {args.threshold:.0f}% killed: {', '.join(failing)}")
    if money_survivors:
        print(f"\nFAIL: {len(money_survivors)} mutants of the submit/re-attach/budget lines survived")
    low_total = total.checked > 0 and total.percent < args.min_total
    if low_total:
        print(f"\nFAIL: {total.percent:.1f}% killed over all modules, below {args.min_total:.0f}%")
    return 1 if failing or money_survivors or low_total else 0


if __name__ == "__main__":
    sys.exit(main())
