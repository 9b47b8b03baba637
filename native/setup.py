"""The extension's build (setuptools' ext-modules table in pyproject.toml is still experimental)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "plant_map_native",
            sources=[
                "plant_map_native.c",
                "strata_update.c",
                "plant_audit_rows.c",
                "head_checks.c",
                "map_rebuild.c",
                "version_rows.c",
                "receipt_rows.c",
            ],
            depends=["plant_native.h"],
            extra_compile_args=["-O2"],
        )
    ]
)
