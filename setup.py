"""Build the Cython core (src/kmc/engine). Everything else is configured in pyproject.toml.

Set KMC_DEBUG=1 to build with bounds checks and C assertions on (slower; for debugging the core).
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("KMC_DEBUG", "0") == "1"
directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
}
extensions = [
    Extension(
        f"kmc.engine.{name}",
        [f"src/kmc/engine/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    )
    for name in ("_sumtree", "_engine", "_placement")
]
setup(ext_modules=cythonize(extensions, compiler_directives=directives))
