"""Generate linalloc's out-of-line cffi ABI module (no C compiler involved).

setuptools runs this through ``cffi_modules`` (see setup.py), so built wheels
and installs carry ``linalloc/_vm_ffi_<key>.py``. Run it by hand to write the
module into a source checkout::

    python build_ffi.py

A checkout that never ran it still works: linalloc then generates the module
once into its cache directory. ``<key>`` depends on the declarations and the
backend ABI level only, not on the cffi version that builds it: a module built
here is loaded under any cffi whose backend accepts that level.
"""

from __future__ import annotations

import importlib.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_decls():  # type: ignore[no-untyped-def]
    # Load linalloc/_decls.py by path: importing the package here would try to
    # load the very module this script generates.
    path = os.path.join(_HERE, "linalloc", "_decls.py")
    spec = importlib.util.spec_from_file_location("_linalloc_decls", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_decls = _load_decls()
ffibuilder = _decls.make_builder("linalloc." + _decls.module_name())


def emit(package_dir: str) -> str:
    """Write the generated module into ``package_dir``; returns its path.

    Raises ``RuntimeError`` (and leaves no file) when cffi tags the module with
    an ABI level other than ``_decls.ABI_VERSION``: the module's name would then
    promise a level the file does not have.
    """
    target = os.path.join(package_dir, _decls.module_name() + ".py")
    ffibuilder.emit_python_code(target)
    with open(target) as f:
        source = f.read()
    if f"_version = {_decls.ABI_VERSION:#x}," not in source:
        os.unlink(target)
        raise RuntimeError(
            f"cffi generated {target} for another ABI level than "
            f"{_decls.ABI_VERSION:#x}: update ABI_VERSION in linalloc/_decls.py"
        )
    return target


if __name__ == "__main__":
    emit(os.path.join(_HERE, "linalloc"))
