"""What loading the code costs: ``import main`` loads no function's module (nor the
database layer) until its first request, and nothing on the local path loads the cloud-only
client libraries."""

from __future__ import annotations

from tests.support.interpreter import modules_after

CLOUD_ONLY = (
    "google.cloud.secretmanager",
    "google.cloud.sql",
    "google.cloud.storage",
    "google.auth",
)


def test_import_main_loads_no_function_module():
    loaded = modules_after("import main")
    assert not [m for m in loaded if m.startswith("functions.")]


def test_import_main_leaves_the_database_layer_to_the_first_request():
    # SQLAlchemy is a third of main's import time (issue #7's target is 400 ms); the http
    # helper every function imports must not pull it in through the engine module.
    loaded = modules_after("import main")
    assert "shared.web.router" in loaded
    assert not [m for m in loaded if m.startswith(("sqlalchemy", "pg8000", "shared.storage"))]
    served = modules_after("import main\nmain._function('registry')")
    assert "sqlalchemy" in served  # the check sees the layer once a function loads


def test_the_local_path_loads_no_cloud_client_library():
    loaded = modules_after(
        "import main\n"
        + "".join(
            f"main._function({name!r})\n"
            for name in ("registry", "log", "certify", "audit", "export")
        )
    )
    assert "functions.audit" in loaded  # the functions really were loaded
    assert not [m for m in loaded if m.startswith(CLOUD_ONLY)]
