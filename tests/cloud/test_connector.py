"""The real Cloud SQL Python Connector, end to end against a local fake Cloud SQL."""

from __future__ import annotations

import datetime
import random
import subprocess
import sys
import uuid

import pytest
from fakes.cloudsql import FakeCloudSQL, Running
from google.auth import credentials as google_credentials
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared import entities
from shared.auth import Principal
from shared.config import load
from shared.storage import connector
from shared.storage.engine import Database

IAM_USER = "fn-registry@proj.iam"


class FakeCredentials(google_credentials.Credentials):
    """Real google-auth credentials whose refresh mints a local token."""

    def __init__(self) -> None:
        super().__init__()
        self.refreshes = 0

    def refresh(self, request) -> None:
        self.refreshes += 1
        self.token = f"iam-token-{self.refreshes}"
        self.expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(
            hours=1
        )


def _target(database_url: str) -> tuple[str, object]:
    url = make_url(database_url)
    host = url.query.get("host")
    if isinstance(host, str) and host.startswith("/"):
        return "unix", f"{host}/.s.PGSQL.{url.port or 5432}"
    return "tcp", (url.host or "127.0.0.1", url.port or 5432)


@pytest.fixture
def cloudsql(database_url, superuser):
    with superuser.connect() as conn:
        conn.execute(
            text(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{IAM_USER}') "
                f'THEN CREATE ROLE "{IAM_USER}" LOGIN; END IF; END $$'
            )
        )
        conn.execute(text(f'GRANT plant_app TO "{IAM_USER}"'))
    ip = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    fake = FakeCloudSQL("us-central1", ip, _target(database_url))
    running = Running(fake)
    yield fake
    connector.close()
    running.stop()


def _settings(fake: FakeCloudSQL, database_url: str):
    return load(
        {
            "PLANT_ENV": "cloud",
            "INSTANCE_CONNECTION_NAME": "proj:us-central1:plant",
            "DB_NAME": make_url(database_url).database,
            "DB_IAM_USER": IAM_USER,
            "PLANT_SQLADMIN_API_ENDPOINT": fake.api_url,
            "PLANT_DB_POOL_SIZE": "2",
        }
    )


def test_create_and_read_through_the_real_connector(cloudsql, database_url, monkeypatch):
    creds = FakeCredentials()
    engine = connector.connector_engine(_settings(cloudsql, database_url), credentials=creds)
    db = Database(engine)
    from shared.storage import engine as engine_module

    monkeypatch.setattr(engine_module, "_database", db)
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    author = Principal("alice", tenant, frozenset({"author", "reader"}))
    created = entities.create(author, "industries", {"name": "Cloud", "description": "d"}, "r")
    read = entities.get(author, "industries", created.body["identity"]["id"])
    assert read.body["identity"]["name"] == "Cloud"
    with db.transaction(tenant) as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        assert conn.execute(text("SELECT session_user")).scalar_one() == IAM_USER
    with db.transaction(tenant + "-other") as conn:
        assert conn.execute(text("SELECT count(*) FROM log_entries")).scalar_one() == 0
    assert cloudsql.settings_calls >= 1 and cloudsql.ephemeral_calls >= 1
    assert cloudsql.access_tokens[0].startswith("iam-token-")  # IAM database authentication
    assert IAM_USER in cloudsql.startup_users
    assert all("ephemeral" in s for s in cloudsql.client_cert_subjects)


def test_an_expiring_certificate_is_refreshed_on_the_next_connection(cloudsql, database_url):
    cloudsql.cert_lifetime = datetime.timedelta(minutes=3)  # under the connector's 4 min buffer
    engine = connector.connector_engine(
        _settings(cloudsql, database_url), credentials=FakeCredentials()
    )
    for _ in range(2):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        engine.dispose()
    assert cloudsql.ephemeral_calls >= 2


def test_local_path_never_imports_the_connector():
    code = (
        "import sys, main, shared.storage.engine, shared.storage.migrate; "
        "print('google.cloud.sql.connector' in sys.modules, "
        "'google.cloud.secretmanager' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
