"""Load the cffi ABI module for the virtual-memory calls.

Order of preference:

1. ``linalloc/_vm_ffi_<key>.py``, written by ``build_ffi.py`` when the package
   was built or installed;
2. the same module in linalloc's cache directory, generated there once, the
   first time a source checkout needs it;
3. when that directory cannot be written: the module generated in memory
   (pycparser runs again in each such process, and nothing is left on disk).

Either way the module holds pre-parsed type data, so loading it parses no C
declarations. ``<key>`` hashes the declarations and the backend ABI level (see
``_decls``), not the cffi version: the module a wheel ships is used whatever
cffi the user has.

The cache directory is ``$LINALLOC_CACHE_DIR`` when that environment variable
is set and not empty, else the user cache directory that ``platformdirs``
names for ``linalloc`` (``~/.cache/linalloc`` on Linux, ``~/Library/Caches/linalloc``
on macOS, ``%LOCALAPPDATA%\\linalloc\\Cache`` on Windows).

>>> import os
>>> os.environ["LINALLOC_CACHE_DIR"] = "/srv/cache/linalloc"
>>> cache_dir()
'/srv/cache/linalloc'
>>> del os.environ["LINALLOC_CACHE_DIR"]
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

#: The environment variable that overrides the cache directory.
CACHE_ENV = "LINALLOC_CACHE_DIR"

_loaded: Any = None


def cache_dir() -> str:
    """The directory where a source checkout's generated module is kept.

    ``$LINALLOC_CACHE_DIR`` if set and not empty, else ``platformdirs``'
    user cache directory for ``linalloc``.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return override
    import platformdirs

    return str(platformdirs.user_cache_dir("linalloc"))


def _generate(directory: str, name: str) -> str:
    """Write ``name.py`` into ``directory`` atomically; returns its path.

    The module is written to a temporary file in the same directory and renamed
    into place, so a concurrent reader sees either no file or a whole one. When
    the rename fails but the file is there (on Windows, replacing a module that
    another process has open fails; that process wrote the same module), the
    file already there is used. No temporary file is left behind either way.
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
        try:
            os.replace(tmp, path)
        except OSError:
            if not os.path.exists(path):
                raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _generate_in_memory(name: str) -> ModuleType:
    """The module generated into a string and executed, for an unwritable cache."""
    import contextlib
    import io
    import types

    source = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()):  # cffi prints "generating ..."
        _decls.make_builder(name).emit_python_code(source)  # cffi accepts a file object
    module = types.ModuleType(name)
    module.__file__ = f"<{name}, generated in memory>"
    exec(compile(source.getvalue(), module.__file__, "exec"), module.__dict__)
    return module


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
    name = _decls.module_name()
    try:
        # (not importlib.import_module: importing importlib costs more than this module)
        __import__(f"{__package__}.{name}")
        module = sys.modules[f"{__package__}.{name}"]
    except ImportError:
        try:
            path = _generate(cache_dir(), name)
        except OSError:
            # An unwritable cache directory: keep the module in memory only.
            module = _generate_in_memory(name)
        else:
            module = _import_path(name, path)
    _loaded = module.ffi
    return _loaded
