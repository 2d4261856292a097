"""``python -m linalloc``: the tour. ``python -m linalloc bench``: the benchmarks."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "bench":
        from ._bench import main as bench_main

        return bench_main(args[1:])
    if args and args[0] in ("-h", "--help"):
        print(
            "usage: python -m linalloc          run the tour\n"
            "       python -m linalloc bench    run the benchmarks (--quick, --json)"
        )
        return 0
    from ._tour import main as tour_main

    return tour_main(args)


if __name__ == "__main__":
    sys.exit(main())
