"""A long fuzzing campaign over the parsers; failing inputs become regression cases.

    python tests/fuzz_campaign.py --minutes 30                 # every target, round-robin
    python tests/fuzz_campaign.py --minutes 10 --target vmdk --target ova
    python tests/fuzz_campaign.py --list

Runs the targets of ``tests/adversarial/fuzz.py`` with the hypothesis ``campaign``
profile in rounds of ``--batch`` examples each (a fresh random seed per round, the
example database in ``.hypothesis/``) until the time is up.  When a property fails,
hypothesis shrinks the input and the minimal one is written to
``tests/regressions/<target>/<sha256-prefix>.bin``, which ``tests/test_fuzz_regressions.py``
replays in the normal suite; the campaign goes on with the other targets.  Exit
status 1 if anything failed.

The same strategies with more examples in pytest: ``HYPOTHESIS_PROFILE=campaign
python -m pytest tests/test_fuzz_parsers.py`` (no time bound, nothing kept).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HYPOTHESIS_PROFILE", "campaign")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.adversarial.fuzz import KNOWN_BUGS, TARGETS, Target, keep_regression  # noqa: E402


def run_round(target: Target, examples: int) -> tuple[bytes, str] | None:
    """``examples`` examples of one target; the shrunk failing input and its error, if any."""
    failing: dict[str, bytes] = {}

    @settings(settings.get_profile("campaign"), max_examples=examples, database=None)
    @given(data=st.data())
    def prop(data: st.DataObject) -> None:
        value = data.draw(target.strategy())
        try:
            target.run(value)
        except BaseException:
            failing["input"] = value  # the last one raised is hypothesis's shrunk replay
            raise

    try:
        prop()
    except Exception as exc:
        if "input" not in failing:  # hypothesis itself (a flaky strategy): report, go on
            print(f"{target.name}: hypothesis error, round skipped: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0] if str(exc) else ''}")  # fmt: skip
            return None
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return failing["input"], detail.splitlines()[0] if detail else type(exc).__name__
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    p.add_argument("--target", action="append", choices=sorted(TARGETS), help="repeatable")
    p.add_argument("--batch", type=int, default=200, help="examples per round (default 200)")
    p.add_argument("--include-known", action="store_true",
                   help=f"also run targets with known bugs ({', '.join(KNOWN_BUGS)})")  # fmt: skip
    p.add_argument("--list", action="store_true", help="list the targets and exit")
    opts = p.parse_args(argv)
    if opts.list:
        for name, t in sorted(TARGETS.items()):
            known = "  [known bug]" if name in KNOWN_BUGS else ""
            print(f"{name:18} {t.doc}{known}")
        return 0
    names = opts.target or [n for n in sorted(TARGETS) if opts.include_known or n not in KNOWN_BUGS]
    deadline = time.monotonic() + opts.minutes * 60
    found: dict[str, list[Path]] = {}
    rounds: dict[str, int] = dict.fromkeys(names, 0)
    while time.monotonic() < deadline and names:
        for name in list(names):
            if time.monotonic() >= deadline:
                break
            started = time.monotonic()
            failure = run_round(TARGETS[name], opts.batch)
            rounds[name] += 1
            took = time.monotonic() - started
            if failure is None:
                print(f"{name}: round {rounds[name]} ok ({opts.batch} examples, {took:.1f} s)")
                continue
            data, detail = failure
            path = keep_regression(name, data)
            found.setdefault(name, []).append(path)
            print(f"{name}: FAILED: {detail}\n  kept {path.relative_to(ROOT)} ({len(data)} bytes)")
            if len(found[name]) >= 3:  # the same bug again and again: move on
                names.remove(name)
    total = sum(rounds.values()) * opts.batch
    print(f"done: {total} examples in {sum(rounds.values())} rounds; "
          f"{sum(map(len, found.values()))} failing inputs kept")  # fmt: skip
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
