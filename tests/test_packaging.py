"""Packaging runs build_ffi.py: wheels (and sdists) carry the generated module.

The project is copied without any generated module first, so the module in
the wheel can only have come from the build. Builds use the running
environment's setuptools and cffi (``--no-build-isolation``). One test installs
the wheel beside another cffi release than the one that built it (fetched from
PyPI by pip): the shipped module must still be the one loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import _cffi_backend
import cffi
import platformdirs
import pytest

from linalloc import _decls

REPO = Path(__file__).resolve().parent.parent
MODULE = _decls.module_name()
#: A cffi release other than this environment's, for the wheel to meet.
OTHER_CFFI = "1.17.1" if cffi.__version__ != "1.17.1" else "2.0.0"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with no generated module and no build leftovers."""
    dest = tmp_path_factory.mktemp("project") / "linalloc-src"
    shutil.copytree(
        REPO,
        dest,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv*",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            ".hypothesis",
            "_vm_ffi_*",
        ),
    )
    return dest


def venv_python(venv: Path) -> Path:
    """The interpreter of a virtual environment, where each system puts it."""
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def pip_wheel(source: Path, out: Path) -> Path:
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        str(out),
        str(source),
        cwd=out.parent,
    )
    [wheel] = out.glob("linalloc-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_wheel(project, tmp_path_factory.mktemp("wheel"))


def test_wheel_carries_the_generated_module_and_py_typed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        generated = zf.read(f"linalloc/{MODULE}.py").decode()
    assert "linalloc/py.typed" in names
    assert f"linalloc/{MODULE}.py" in names
    assert [n for n in names if "_vm_ffi_" in n] == [f"linalloc/{MODULE}.py"]
    assert "_cffi_backend.FFI(" in generated and "pycparser" not in generated


def test_installed_wheel_loads_the_in_package_module(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(
        sys.executable,
        "-m",
        "venv",
        "--system-site-packages",
        "--without-pip",
        str(venv),
        cwd=tmp_path,
    )
    python = venv_python(venv)
    # The dependencies: from wherever this interpreter has them.
    deps = {
        str(Path(cffi.__file__).resolve().parent.parent),
        str(Path(platformdirs.__file__).resolve().parent.parent),
        str(Path(_cffi_backend.__file__).resolve().parent),
    }
    site = Path(
        run(
            str(python), "-c", "import site; print(site.getsitepackages()[0])", cwd=tmp_path
        ).strip()
    )
    (site / "linalloc-test-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--no-index",
        str(wheel),
        cwd=tmp_path,
    )

    cache = tmp_path / "cache"
    cache.mkdir()
    code = f"""
import sys
import linalloc
from linalloc import _ffi
assert linalloc.__file__.startswith({str(site)!r}), linalloc.__file__
arena = linalloc.BumpArenaLazy(1 << 30)
view = arena.alloc_uninit_slice(linalloc.Layout(10))
view[:] = b"0123456789"
module = sys.modules["linalloc.{MODULE}"]
assert module.__file__.startswith({str(site)!r}), module.__file__
assert _ffi.load() is module.ffi
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"cffi", "pycparser"}}))
"""
    env = dict(os.environ, LINALLOC_CACHE_DIR=str(cache))
    env.pop("PYTHONPATH", None)
    out = run(str(python), "-c", code, cwd=tmp_path, env=env)
    assert out.strip() == "[]"
    assert list(cache.iterdir()) == []  # the cache was never needed


def test_sdist_carries_the_builder_and_builds_a_complete_wheel(
    project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sdist"
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"
    name = run(sys.executable, "-c", code, cwd=project).strip().splitlines()[-1]
    sdist = out / name
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"build_ffi.py", "setup.py", "pyproject.toml", f"linalloc/{MODULE}.py"} <= members
    wheel = pip_wheel(sdist, tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as zf:
        assert f"linalloc/{MODULE}.py" in zf.namelist()
        assert "linalloc/py.typed" in zf.namelist()


@pytest.fixture(scope="module")
def other_cffi_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with only ``cffi==OTHER_CFFI`` and the wheel installed."""
    root = tmp_path_factory.mktemp("other-cffi")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=root)
    python = str(venv_python(venv))
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--disable-pip-version-check",
    ]
    run(*pip, f"cffi=={OTHER_CFFI}", cwd=root)
    run(*pip, "--no-deps", "--no-index", str(wheel), cwd=root)
    return venv


def test_wheel_built_with_one_cffi_runs_its_module_under_another(
    other_cffi_venv: Path, wheel: Path, tmp_path: Path
) -> None:
    python = str(venv_python(other_cffi_venv))
    cache = tmp_path / "cache"  # must never be created
    code = f"""
import ctypes, sys
import _cffi_backend, linalloc
from linalloc import _ffi
arena = linalloc.TypedArenaLazy(ctypes.c_int, 1000)
assert arena.alloc(41).value == 41
module = sys.modules["linalloc.{MODULE}"]
assert _ffi.load() is module.ffi
print(_cffi_backend.__version__)
print(module.__file__.startswith(linalloc.__path__[0]))
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"cffi", "pycparser", "platformdirs"}}))
"""
    env = dict(os.environ, LINALLOC_CACHE_DIR=str(cache))
    env.pop("PYTHONPATH", None)
    out = run(python, "-c", code, cwd=tmp_path, env=env).splitlines()
    assert out == [OTHER_CFFI, "True", "[]"]
    assert cffi.__version__ != OTHER_CFFI  # the wheel was built with this one
    with zipfile.ZipFile(wheel) as zf:
        assert f"linalloc/{MODULE}.py" in zf.namelist()
    assert not cache.exists()  # nothing generated, nothing written
