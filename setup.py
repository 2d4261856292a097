"""Build hook: setuptools runs build_ffi.py so wheels carry the generated cffi module.

All metadata lives in pyproject.toml; this file only names the cffi builder,
which setuptools reads as the ``cffi_modules`` keyword (cffi's setuptools plugin).
"""

from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])
