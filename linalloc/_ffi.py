"""Load the cffi ABI module for the virtual-memory calls.

Order of preference:

1. ``linalloc/_vm_ffi_<key>.py``, written by ``build_ffi.py`` when the package
   was built or installed;
2. the same module in the user cache directory (``platformdirs``), generated
   there once, the first time a source checkout needs it.

Either way the module holds pre-parsed type data, so loading it parses no C
declarations. ``<key>`` hashes the declarations and the cffi version, so a
stale module is never picked up.
"""

from __future__ import annotations

import os
import sys

from . import _decls

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

# tempfile, contextlib and io are imported where the module is generated: that
# happens once per cache key, and importing tempfile costs more than the rest of
# this module (it pulls in shutil, random and the compression modules).

_loaded: Any = None


def cache_dir() -> str:
    """The directory where a source checkout's generated module is kept."""
    import platformdirs

    return str(platformdirs.user_cache_dir("linalloc"))


def _generate(directory: str, name: str) -> str:
    """Write ``name.py`` into ``directory`` atomically; returns its path.

    The module is written to a temporary file in the same directory and renamed
    into place, so a concurrent reader sees either no file or a whole one.
    """
    import contextlib
    import io
    import tempfile

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name + ".py")
    if os.path.exists(path):
        return path
    fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # cffi prints "generating ..."
            _decls.make_builder(name).emit_python_code(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _import_path(name: str, path: str) -> ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - defensive
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load() -> Any:
    """Return the ``ffi`` object of the generated module, loading it once."""
    global _loaded
    if _loaded is not None:
        return _loaded
    import _cffi_backend

    name = _decls.module_name(_cffi_backend.__version__)
    try:
        # (not importlib.import_module: importing importlib costs more than this module)
        __import__(f"{__package__}.{name}")
        module = sys.modules[f"{__package__}.{name}"]
    except ImportError:
        try:
            path = _generate(cache_dir(), name)
        except OSError:
            # An unwritable cache directory: fall back to a private one.
            import tempfile

            path = _generate(tempfile.mkdtemp(prefix="linalloc-"), name)
        module = _import_path(name, path)
    _loaded = module.ffi
    return _loaded
