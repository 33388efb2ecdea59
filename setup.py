"""Build hook for the optional compiled pickle skimmer (all metadata lives in pyproject.toml).

``optional=True``: without a C compiler or Python headers the install still succeeds and
``scanners.pickle_vm`` runs its pure-Python walk (the reference the extension is tested against).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "scanners._pickle_accel",
            ["scanners/_pickle_accel.c"],
            optional=True,
        )
    ]
)
