"""Run tests against one mutant of a mutmut run, in a temporary copy of the checkout.

    python tools/mutant.py NAME [PYTEST_ARGS...]

NAME is a mutant as ``mutmut results`` lists it (``linalloc._store.x_root_over__mutmut_3``,
``linalloc._bump.xǁBumpArenaǁgrow__mutmut_2``). The mutated function is read from
``mutants/`` (where ``tools/mutation.sh`` left it) and put in place of the original,
found by its name, in a copy of ``linalloc/`` and ``tests/``; PYTEST_ARGS (default: the
whole ``tests`` folder) run there, child interpreters included. Unlike ``mutmut apply``,
the checkout is not changed. ``--show`` prints the change first.

Exit status: 0 if the tests failed (the mutant is killed), 1 if they passed, 2 on a
usage error.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPIED = ("linalloc", "tests", "README.md", "examples", "build_ffi.py", "pyproject.toml")
Function = (ast.FunctionDef, ast.AsyncFunctionDef)


def _function(body: list[ast.stmt], name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    return next((n for n in body if isinstance(n, Function) and n.name == name), None)


def _method_of(tree: ast.Module, owner: str | None, name: str) -> ast.stmt | None:
    """The function ``name`` at the top of ``tree``, or in its class ``owner``."""
    body = tree.body
    if owner is not None:
        cls = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == owner), None)
        if cls is None:
            return None
        body = cls.body
    return _function(body, name)


def _texts(name: str) -> tuple[str, str, str, str | None, str]:
    """(module path, original function, mutated function, class, plain name) of ``name``.

    Both functions are dedented and carry the function's own name.
    """
    module, mangled = name.rsplit(".", 1)
    path = module.replace(".", "/") + ".py"
    with open(os.path.join(ROOT, "mutants", path), encoding="utf-8") as file:
        mutants = file.read()
    # mutmut writes each mutant as a function named x_NAME__mutmut_N, or
    # xǁCLASSǁNAME__mutmut_N for a method: at the top, or (mutmut 3.8) in the class;
    # the function as it was is x_NAME__mutmut_orig
    base = mangled.rsplit("__mutmut_", 1)[0]
    owner, plain = base.split("ǁ")[1:] if base.startswith("xǁ") else (None, base[2:])
    tree = ast.parse(mutants)
    lines = mutants.splitlines(True)
    texts = []
    for wanted in (f"{base}__mutmut_orig", mangled):
        found = _function(tree.body, wanted)
        for cls in [n for n in tree.body if isinstance(n, ast.ClassDef)] if found is None else []:
            found = found or _function(cls.body, wanted)
        if found is None:
            raise SystemExit(f"no mutant {wanted} in mutants/{path} (run tools/mutation.sh first)")
        text = textwrap.dedent("".join(lines[found.lineno - 1 : found.end_lineno]))
        texts.append(text.replace(f"def {wanted}(", f"def {plain}(", 1))
    return path, texts[0], texts[1], owner, plain


def function_texts(name: str) -> tuple[str, str]:
    """The mutated function of mutant ``name`` as it was, and as the mutant has it."""
    return _texts(name)[1:3]


def mutated_source(name: str) -> tuple[str, str]:
    """(path of the module relative to the checkout, its source with the mutant in place)."""
    path, _, text, owner, plain = _texts(name)
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        original = file.read()
    target = _method_of(ast.parse(original), owner, plain)
    if target is None:
        raise SystemExit(f"{owner + '.' if owner else ''}{plain} is not in {path} any more")
    lines = original.splitlines(True)
    first = lines[target.lineno - 1]  # (decorators stay as they are)
    indent = first[: len(first) - len(first.lstrip())]
    assert target.end_lineno is not None
    mutated = textwrap.indent(text, indent)
    return path, "".join(lines[: target.lineno - 1]) + mutated + "".join(lines[target.end_lineno :])


def main(argv: list[str]) -> int:
    show = "--show" in argv
    argv = [arg for arg in argv if arg != "--show"]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    name, args = argv[0], argv[1:] or ["tests"]
    path, source = mutated_source(name)
    work = tempfile.mkdtemp(prefix="linalloc-mutant-")
    try:
        for item in COPIED:
            here = os.path.join(ROOT, item)
            if os.path.isdir(here):
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(here, os.path.join(work, item), ignore=ignore)
            elif os.path.exists(here):
                shutil.copy(here, os.path.join(work, item))
        with open(os.path.join(work, path), "w", encoding="utf-8") as file:
            file.write(source)
        if show:
            subprocess.run(["diff", "-u", os.path.join(ROOT, path), os.path.join(work, path)])
        env = dict(os.environ, PYTHONPATH=work, PYTHONDONTWRITEBYTECODE="1")
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            *args,
        ]
        tests = subprocess.run(command, cwd=work, env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{name}: {'killed' if tests.returncode else 'survived'}")
    return 0 if tests.returncode else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
