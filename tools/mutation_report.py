"""The score of a mutmut run, and its survivors: explained by a verdict, or not.

    python tools/mutation_report.py [PATTERN...]   score, and every survivor
    python tools/mutation_report.py --stub NAME...  verdict entries to fill in
    python tools/mutation_report.py --check-killed  run each "killed" verdict's test

``--also FILE`` (before the rest, repeatable) reads verdicts from FILE too.

Reads the results ``tools/mutation.sh`` left in ``./mutants`` (PATTERN: fnmatch
patterns of mutant names, default all). A survivor (survived, suspicious, or no tests)
is explained when ``tools/mutation_verdicts.toml`` has a verdict for the same change in
the same function *as the function is now*: each verdict records a digest of the
function's source, so any change to the function makes its verdicts stale, and its
survivors are shown as unexplained again, with their diff. Mutant numbers may shift;
a verdict is matched by function, digest and change, not by number.

A verdict is either ``kind = "equivalent"`` (no test can tell: ``why`` says why) or
``kind = "killed"`` with ``by``: a test outside mutmut's selection (a child
interpreter, a state machine), or one added after the run (which the next
``MUTATION_RECHECK=1`` run scores), that kills it, checked with ``python tools/mutant.py
NAME TEST`` (``--check-killed`` runs them all, and fails if one survives).

Exit status: 0 when every survivor is explained, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import os
import subprocess
import sys

import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mutant import ROOT, function_texts  # noqa: E402

VERDICTS = os.path.join(ROOT, "tools", "mutation_verdicts.toml")
SURVIVING = ("survived", "suspicious", "no tests")
# a crash of the tests, a time-out, a type-check failure: caught too
CAUGHT = ("killed", "segfault", "timeout", "caught by type check")


def results() -> dict[str, str]:
    """Each mutant's status, as ``mutmut results --all true`` gives it."""
    listed = subprocess.run(
        ["mutmut", "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    status = {}
    for line in listed.splitlines():
        if ":" in line:
            name, _, state = line.strip().rpartition(":")
            status[name.strip()] = state.strip()
    return status


def identity(name: str) -> tuple[str, str, list[str]]:
    """(function, digest of its source, the mutant's changed lines) of mutant ``name``."""
    before, after = function_texts(name)
    digest = hashlib.sha256(before.encode()).hexdigest()[:16]
    change = [
        line.rstrip()
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=0)
        # (with the hunks' line numbers within the function: two mutants can make the
        # same change on two lines)
        if line[:1] in "+-@" and not line.startswith(("+++", "---"))
    ]
    return name.rsplit("__mutmut_", 1)[0], digest, change


ALSO: list[str] = []  # more verdict files (--also)


def load_verdicts() -> dict[tuple[str, str, tuple[str, ...]], dict[str, str]]:
    entries = []
    for path in [VERDICTS, *ALSO]:
        if os.path.exists(path):
            with open(path, "rb") as file:
                entries += tomllib.load(file).get("verdict", [])
    table = {}
    for entry in entries:
        if entry.get("kind") not in ("equivalent", "killed") or not entry.get("why"):
            raise SystemExit(f"{VERDICTS}: a verdict needs a kind and a why: {entry}")
        if entry["kind"] == "killed" and not entry.get("by"):
            raise SystemExit(f"{VERDICTS}: a 'killed' verdict needs 'by': {entry}")
        key = (entry["function"], entry["digest"], tuple(entry["change"]))
        table[key] = entry
    return table


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stub(name: str) -> str:
    function, digest, change = identity(name)
    lines = ",\n".join(f"    {_toml_string(line)}" for line in change)
    return (
        f"[[verdict]]  # {name.rsplit('.', 1)[1]}\n"
        f"function = {_toml_string(function)}\n"
        f'digest = "{digest}"\n'
        f"change = [\n{lines},\n]\n"
        'kind = "equivalent"\n'
        'why = ""\n'
    )


def check_killed() -> int:
    """Run each "killed" verdict's test on its mutant; 1 if one survives."""
    status = results()
    by_identity = {}
    for name, state in status.items():
        if state in SURVIVING:
            function, digest, change = identity(name)
            by_identity[(function, digest, tuple(change))] = name
    failed = 0
    for key, verdict in load_verdicts().items():
        if verdict["kind"] != "killed" or key not in by_identity:
            continue
        name = by_identity[key]
        tool = os.path.join(ROOT, "tools", "mutant.py")
        run = subprocess.run(
            [sys.executable, tool, name, *verdict["by"].split()], capture_output=True, text=True
        )
        print(f"{name}: {'killed' if run.returncode == 0 else 'SURVIVED'} by {verdict['by']}")
        failed += run.returncode != 0
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    while argv[:1] == ["--also"] and len(argv) > 1:
        ALSO.append(argv[1])
        argv = argv[2:]
    if argv == ["--check-killed"]:
        return check_killed()
    if argv[:1] == ["--stub"]:
        if len(argv) < 2:
            print(__doc__, file=sys.stderr)
            return 2
        print("\n".join(stub(name) for name in argv[1:]))
        return 0
    patterns = argv or ["*"]
    status = {
        name: state
        for name, state in results().items()
        if any(fnmatch.fnmatch(name, p) for p in patterns)
    }
    if not status:
        print("no mutant matches: run tools/mutation.sh first", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for state in status.values():
        counts[state] = counts.get(state, 0) + 1
    caught = sum(counts.get(s, 0) for s in CAUGHT)
    surviving = sorted(name for name, state in status.items() if state in SURVIVING)
    checked = caught + len(surviving)
    verdicts = load_verdicts()
    explained, unexplained = [], []
    for name in surviving:
        function, digest, change = identity(name)
        verdict = verdicts.get((function, digest, tuple(change)))
        (explained if verdict else unexplained).append((name, change, verdict))
    print("mutants by status:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if checked:
        print(f"mutation score: {caught}/{checked} caught = {100 * caught / checked:.1f}%")
    print(
        f"survivors: {len(surviving)}, explained {len(explained)}, unexplained {len(unexplained)}"
    )
    for name, _, verdict in explained:
        assert verdict is not None
        print(f"  {name}: {verdict['kind']}{' by ' + verdict['by'] if 'by' in verdict else ''}")
    for name, change, _ in unexplained:
        print(f"\n=== unexplained ({status[name]}): {name}")
        print("\n".join(change))
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
