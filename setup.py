"""Build hook: setuptools runs build_ffi.py so wheels carry the generated cffi module.

All metadata lives in pyproject.toml; this file only names the cffi builder,
which setuptools reads as the ``cffi_modules`` keyword (cffi's setuptools plugin),
and makes the sdist carry that builder (a wheel built from the sdist runs it)
and the module it generates.
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup
from setuptools.command.sdist import sdist

_HERE = os.path.dirname(os.path.abspath(__file__))


class sdist_with_ffi(sdist):
    """An sdist that also ships build_ffi.py and linalloc/_vm_ffi_<key>.py."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        builder_path = os.path.join(_HERE, "build_ffi.py")
        self.copy_file(builder_path, os.path.join(base_dir, "build_ffi.py"))
        runpy.run_path(builder_path)["emit"](os.path.join(base_dir, "linalloc"))


setup(cffi_modules=["build_ffi.py:ffibuilder"], cmdclass={"sdist": sdist_with_ffi})
