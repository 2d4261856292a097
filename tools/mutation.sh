#!/usr/bin/env bash
# Mutation testing of the safety-critical modules with mutmut (3.x).
#
#   tools/mutation.sh [MODULE...]        e.g. tools/mutation.sh _layout _store
#
# With no MODULE, every module listed under [tool.mutmut] only_mutate in
# pyproject.toml is mutated. With MUTATION_KEEP=1 the modules named run one after
# another, in that order. Each mutant runs the tests of the
# pytest_add_cli_args_test_selection list that reach the mutated function,
# two at a time, and the whole run stops after MUTATION_TIME_LIMIT seconds
# (default 1800); mutants not reached by then are reported as not checked.
# Prints the score (caught / checked) and every surviving mutant: explained by a
# verdict in tools/mutation_verdicts.toml (tools/mutation_report.py says how), or
# shown with its diff; the exit status is 1 while one is unexplained.
# Work files go to ./mutants (deleted first unless MUTATION_KEEP=1, which keeps the
# results and runs only the mutants without one: a run stopped by its time limit goes
# on from there). Each run saves its results in tools/mutation_results (committed), from
# which MUTATION_KEEP=1 goes on in a fresh checkout. After adding tests,
# MUTATION_RECHECK=1 also runs again the mutants that survived or timed out.
# Every run first maps each function to all the tests that reach it (about ten
# minutes on these 2 cores).
set -u
cd "$(dirname "$0")/.."
root=$PWD
limit=${MUTATION_TIME_LIMIT:-1800}
children=${MUTATION_CHILDREN:-2}

patterns=()
for module in "$@"; do
    module=${module%.py}
    module=${module#linalloc/}
    module=${module#linalloc.}
    patterns+=("linalloc.${module}.*")
done

command -v mutmut >/dev/null || { echo "mutmut is not installed: pip install 'mutmut>=3.3'" >&2; exit 2; }

# MUTATION_RECHECK=1: keep the last run's results; run the mutants that have none
# (new ones, those of functions changed since: mutmut compares each function's
# source, and those not reached before the time limit), then again those that
# survived or timed out (after new tests).
recheck=()
if [ "${MUTATION_RECHECK:-0}" = 1 ] && [ -d mutants ]; then
    MUTATION_KEEP=1
    mapfile -t recheck < <(mutmut results 2>/dev/null |
        awk -F': ' '$2 ~ /survived|suspicious|no tests|timeout/ {gsub(/^ +/, "", $1); print $1}' |
        python -c 'import fnmatch, sys; p = sys.argv[1:] or ["*"]
for line in sys.stdin:
    name = line.strip()
    if any(fnmatch.fnmatch(name, x) for x in p): print(name)' "${patterns[@]+"${patterns[@]}"}")
    echo "rechecking ${#recheck[@]} mutants that survived or timed out"
fi
[ "${MUTATION_KEEP:-0}" = 1 ] || rm -rf mutants
# The results of the last run are kept in the repository (tools/mutation_results, one
# mutmut .meta file a module: each mutant's exit code, and a digest of each function):
# with MUTATION_KEEP=1 and no results here yet, start from them. mutmut makes the
# mutants again and keeps a result only for a function whose digest is unchanged.
saved=tools/mutation_results
if [ "${MUTATION_KEEP:-0}" = 1 ] && [ -d "$saved" ]; then
    for meta in "$saved"/*.py.meta; do
        target=mutants/linalloc/$(basename "$meta")
        if [ ! -f "$target" ]; then
            mkdir -p mutants/linalloc
            cp "$meta" "$target"
            rm -f "${target%.meta}"
        fi
    done
fi
# A module listed in only_mutate since ./mutants was made has a plain copy there, which
# mutmut takes as up to date (it goes by the files' times): drop it, to be mutated. So
# for a listed module whose copy has no mutant in it, whatever made it (its results,
# all "no tests", would be wrong: the tests ran the plain copy).
if [ -d mutants ]; then
    for listed in $(python -c 'import tomllib
print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["only_mutate"])'); do
        if [ -f "mutants/$listed" ] && ! grep -q '__mutmut_' "mutants/$listed"; then
            rm -f "mutants/$listed" "mutants/$listed.meta"
        fi
    done
fi
# mutmut maps each function to the tests that reached it when it collected its
# stats, and on a later run collects them again for new tests only: a function
# added or changed since would be tested by the new tests alone (its mutants then
# survive, or hang, unseen). Collect them for every test again (the verdicts stay).
rm -f mutants/mutmut-stats.json
# mutmut puts ./mutants first on sys.path itself (child interpreters of the tests get
# it from tests/conftest.py). A PYTHONPATH entry for it made before it exists would be
# cached as empty, and an installed linalloc imported instead: drop such entries.
PYTHONPATH=$(printf '%s' "${PYTHONPATH:-}" | tr ':' '\n' | grep -v '/mutants/\?$' | paste -sd: -)
export PYTHONPATH
export PYTHONDONTWRITEBYTECODE=1

start=$SECONDS
# mutmut runs again every mutant a name or pattern given to it matches, result or
# not: when results are kept, make the mutants and map the tests first (mutmut stops,
# failing, at a name no mutant has), then name the mutants of these modules that have
# no result yet (new, changed since, or not reached).
targets=(${patterns[@]+"${patterns[@]}"})
if [ "${MUTATION_KEEP:-0}" = 1 ] && [ "${#patterns[@]}" -gt 0 ]; then
    if mutmut run --max-children "$children" "linalloc.no-such-mutant" 2>&1 |
        tr '\r' '\n' | grep -q "failed to collect stats"; then
        echo "mutmut could not map the tests to the functions: a test of the selection" \
            "fails under mutmut (run it from ./mutants with mutmut imported)" >&2
        exit 2
    fi
    mapfile -t targets < <(mutmut results --all true 2>/dev/null |
        awk -F': ' '$2 ~ /not checked/ {gsub(/^ +/, "", $1); print $1}' |
        python -c 'import fnmatch, sys; p = sys.argv[1:]
for line in sys.stdin:
    name = line.strip()
    if any(fnmatch.fnmatch(name, x) for x in p): print(name)' "${patterns[@]}")
    echo "${#targets[@]} mutants of these modules have no result yet"
fi
# A mutant can make a loop that allocates without end (two of _layout._walk's did, a
# gigabyte a minute): mutmut's CPU limit for a function most tests reach is long, so
# stop any worker past MUTATION_MAX_RSS_MB resident (default 3000) with SIGXCPU, which
# mutmut records as a time-out. (Not a ulimit on address space: lazy arenas reserve
# far more address space than they use.)
max_rss_kb=$(( ${MUTATION_MAX_RSS_MB:-3000} * 1024 ))
(
    while sleep 5; do
        for pid in $(pgrep -f "mutmut run"); do
            rss=$(ps -o rss= -p "$pid" 2>/dev/null | tr -d ' ')
            if [ -n "$rss" ] && [ "$rss" -gt "$max_rss_kb" ]; then
                echo "worker $pid past ${MUTATION_MAX_RSS_MB:-3000} MB resident: stopped (time-out)" >&2
                kill -XCPU "$pid" 2>/dev/null
            fi
        done
    done
) &
watchdog=$!
trap 'kill "$watchdog" 2>/dev/null' EXIT
status=0
if [ "${MUTATION_KEEP:-0}" = 1 ] && [ "${#patterns[@]}" -gt 0 ]; then
    # One module after another, in the order given: a run stopped by its time limit
    # has finished the first ones.
    for pattern in "${patterns[@]}"; do
        left=$((limit - (SECONDS - start)))
        [ "$left" -gt 0 ] || { status=124; break; }
        names=()
        for name in ${targets[@]+"${targets[@]}"}; do
            case "$name" in $pattern) names+=("$name") ;; esac
        done
        [ "${#names[@]}" -gt 0 ] || continue
        echo "${pattern%.\*}: ${#names[@]} mutants"
        timeout --signal=INT --kill-after=60 "$left" \
            mutmut run --max-children "$children" "${names[@]}"
        status=$?
        [ "$status" = 124 ] && break
    done
elif [ "${#patterns[@]}" = 0 ] || [ "${#targets[@]}" -gt 0 ]; then
    timeout --signal=INT --kill-after=60 "$limit" \
        mutmut run --max-children "$children" ${targets[@]+"${targets[@]}"}
    status=$?
fi
left=$((limit - (SECONDS - start)))
if [ "${#recheck[@]}" -gt 0 ] && [ "$status" != 124 ] && [ "$left" -gt 0 ]; then
    # (mutants of a function that changed were made again: keep the names still there)
    mapfile -t recheck < <(mutmut results --all true 2>/dev/null |
        awk -F': ' '{gsub(/^ +/, "", $1); print $1}' | grep -Fx -f <(printf '%s\n' "${recheck[@]}"))
    timeout --signal=INT --kill-after=60 "$left" \
        mutmut run --max-children "$children" "${recheck[@]}"
    status=$?
fi
[ "$status" = 124 ] && echo "time limit of ${limit}s reached: the mutants not run are not checked"

mutmut results --all true >mutants/results.txt 2>/dev/null
# keep the results for the next run, anywhere (MUTATION_KEEP=1)
mkdir -p "$saved"
for module in $(python -c 'import tomllib
print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["only_mutate"])'); do
    [ -f "mutants/$module.meta" ] && python -c 'import json, sys
meta = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    json.dump(meta, out, indent=0, sort_keys=True)
    out.write("\n")' "mutants/$module.meta" "$saved/$(basename "$module").meta"
done
# the score, and each survivor: explained by tools/mutation_verdicts.toml, or shown
python tools/mutation_report.py "${patterns[@]+"${patterns[@]}"}"
