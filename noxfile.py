"""Run the test suite on every supported CPython found on this machine.

    pip install nox
    nox -s tests                 # every version below that is installed
    nox -s tests-3.13            # one version
    nox -s tests -- -k lazy      # arguments after -- go to pytest

Versions that are not installed are skipped, not failed. An interpreter built
by ``tools/cpython.sh`` (kept in its cache directory) is found as well.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = False


def _cpython_sh_cache() -> Path:
    """The directory where tools/cpython.sh keeps its builds."""
    override = os.environ.get("LINALLOC_CPYTHON_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "linalloc-cpython"


# Interpreters on PATH come first; builds of tools/cpython.sh fill the gaps.
for _version in PYTHONS:
    _bin = _cpython_sh_cache() / _version / "bin"
    if (_bin / f"python{_version}").is_file():
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), str(_bin)])


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The README's test command in a fresh virtual environment."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)
