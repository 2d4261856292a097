"""Run linalloc's benchmarks: the same as ``python -m linalloc bench``.

    python benchmarks/run.py [--quick] [--json] [--only NAME,...] [--list]

See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Prefer the checkout this script lives in over an installed linalloc.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from linalloc._bench import main

    sys.exit(main(sys.argv[1:]))
