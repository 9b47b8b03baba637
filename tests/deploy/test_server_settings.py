"""What the cloud's container server is given (terraform/), and what bounds a stalled caller.

In the cloud each function's container runs `functions-framework`, whose gunicorn reads a
request's head and body in one of THREADS threads with no deadline of its own (the container
alone freezes with THREADS stalled bodies: tests/reliability/test_slow_clients.py). What bounds
such a caller there is Cloud Run: at most max_instance_request_concurrency requests an instance,
and the request timeout, after which Cloud Run answers 504 and closes the connection.
"""

from __future__ import annotations

from tests.support.terraform_doc import function_specs, load, resources, server_settings

INTERACTIVE = ("registry", "log", "certify")  # work bounded by the 15 s statement timeout


def test_an_instance_is_given_no_more_requests_than_its_server_has_threads_and_connections():
    settings = server_settings()
    service = resources(load(), "google_cloudfunctions2_function")["function"]["service_config"]
    threads = int(settings["THREADS"])
    assert service[0]["max_instance_request_concurrency"] == threads
    assert int(settings["PLANT_DB_POOL_SIZE"]) >= threads
    assert "WORKERS" not in settings  # one process: the pool is per process


def test_a_stalled_request_holds_an_interactive_function_for_at_most_a_minute():
    declared = function_specs(load())
    service = resources(load(), "google_cloudfunctions2_function")["function"]["service_config"]
    assert service[0]["timeout_seconds"] == "${each.value.timeout}"
    assert {name: declared[name]["timeout"] for name in INTERACTIVE} == dict.fromkeys(
        INTERACTIVE, 60
    )
    assert all(spec["timeout"] <= 540 for spec in declared.values()), declared
