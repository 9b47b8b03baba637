"""The extension's build (setuptools' ext-modules table in pyproject.toml is still experimental)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "plant_map_native",
            sources=["plant_map_native.c", "strata_update.c"],
            depends=["plant_map.h"],
            extra_compile_args=["-O2"],
        )
    ]
)
