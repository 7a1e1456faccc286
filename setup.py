"""Build the Cython extensions in ext/ into the package `ezero_async._ext`.

Compiler directives live here and nowhere else. Set EZERO_DEBUG_BUILD=1 to turn bounds
checks, wraparound and initialisation checks back on (and optimisation off) for a debug
build; set EZERO_NO_OPENMP=1 to build without OpenMP. During development,
`python setup.py build_ext --inplace` rebuilds the modules next to the package sources.
"""
import os
import shutil
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("EZERO_DEBUG_BUILD", "0") == "1"
# Development convenience: EZERO_EXT=ctree,sumtree compiles only those modules.
ONLY = {name for name in os.environ.get("EZERO_EXT", "").split(",") if name}
OPENMP = os.environ.get("EZERO_NO_OPENMP", "0") != "1" and sys.platform.startswith("linux")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": not DEBUG,
    "infer_types": True,
    "embedsignature": True,
}

compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
link_args = []
if OPENMP:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
# Exact IEEE double semantics are part of the search spec: never -ffast-math, and no
# contraction of a*b+c into FMA (that changes rounding against the Python reference).
compile_args.append("-ffp-contract=off")

# Cython looks up the .pxd of module `ezero_async._ext.<stem>` as ezero_async/_ext/<stem>.pxd on
# its include path, while the sources live in ext/: stage the declarations under their package
# name in the build folder (a copy, so the sources stay the single place to edit).
PXD_ROOT = Path("build") / "pxd"
(PXD_ROOT / "ezero_async" / "_ext").mkdir(parents=True, exist_ok=True)
for pxd in Path("ext").glob("*.pxd"):
    shutil.copyfile(pxd, PXD_ROOT / "ezero_async" / "_ext" / pxd.name)

extensions = [
    Extension(
        f"ezero_async._ext.{path.stem}",
        [str(path)],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for path in sorted(Path("ext").glob("*.pyx"))
    if not ONLY or path.stem in ONLY
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        include_path=[str(PXD_ROOT), "ext"],
        compile_time_env={"EZERO_DEBUG": DEBUG},
    ),
)
