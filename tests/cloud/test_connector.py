"""The real Cloud SQL Python Connector, end to end against a local fake Cloud SQL: its Admin API
and its TLS tunnel on 127.0.0.x:3307, in front of the test PostgreSQL."""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from google.auth import credentials as google_credentials
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.config import load
from shared.errors import ConfigurationError, NotFound
from shared.registry import reads, writes
from shared.security.principal import Principal
from shared.storage import connector
from shared.storage import engine as engine_module
from shared.storage.engine import Database
from tests.fakes.cloudsql import TUNNEL_PORT, FakeCloudSQL, Running

ROOT = Path(__file__).resolve().parents[2]
IAM_USER = "fn-registry@proj.iam"  # how Cloud SQL names a service account's IAM user


LOGIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.login"


class FakeCredentials(google_credentials.Credentials):
    """Real google-auth credentials whose refresh mints a local token (and sets expiry, which
    the connector's IAM path needs). The connector down-scopes a copy to the IAM login scope
    for the database login; its tokens say so."""

    def __init__(self) -> None:
        super().__init__()
        self.refreshes = 0

    def refresh(self, request: object) -> None:
        self.refreshes += 1
        login = LOGIN_SCOPE in (getattr(self, "_scopes", None) or ())
        self.token = f"{'login' if login else 'admin'}-token-{uuid.uuid4().hex[:8]}"
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        self.expiry = now + datetime.timedelta(hours=1)


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
    running = Running(FakeCloudSQL("us-central1", _target(database_url)))
    yield running.fake
    connector.close()
    running.stop()


def _settings(fake: FakeCloudSQL, database_url: str, **extra: str):
    return load(
        {
            "PLANT_ENV": "cloud",
            "INSTANCE_CONNECTION_NAME": fake.connection_name,
            "DB_NAME": make_url(database_url).database,
            "DB_IAM_USER": IAM_USER,
            "PLANT_SQLADMIN_API_ENDPOINT": fake.api_url,
            "PLANT_DB_POOL_SIZE": "2",
            **extra,
        }
    )


def test_create_and_read_through_the_real_connector_with_rls(cloudsql, database_url, monkeypatch):
    creds = FakeCredentials()
    db = Database(connector.connector_engine(_settings(cloudsql, database_url), credentials=creds))
    monkeypatch.setattr(engine_module, "_database", db)  # what the functions use
    tenant, other = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    author = Principal("alice", tenant, frozenset({"author", "reader"}))
    created = writes.create(author, "industries", {"name": "Cloud", "description": "d"}, "r")
    entity_id = created.body["identity"]["id"]
    assert reads.get(author, "industries", entity_id).body["identity"]["name"] == "Cloud"

    with db.transaction(tenant) as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        assert conn.execute(text("SELECT session_user")).scalar_one() == IAM_USER
        assert conn.execute(text("SELECT count(*) FROM log_entries")).scalar_one() >= 1
    with db.transaction(other) as conn:  # no WHERE clause: row-level security alone hides it
        assert conn.execute(text("SELECT count(*) FROM log_entries")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM entity_heads")).scalar_one() == 0
    with pytest.raises(NotFound):
        reads.get(Principal("bob", other, frozenset({"reader"})), "industries", entity_id)

    # What the fake Cloud SQL saw: every Admin API call carried the credentials' token; the
    # certificate request carried a token down-scoped to the IAM login scope (automatic IAM
    # database authentication: the token is bound to the certificate, no password is sent);
    # every tunnel presented such a CA-signed certificate and logged in as the IAM user.
    assert cloudsql.settings_calls >= 1 and cloudsql.ephemeral_calls >= 1
    assert set(cloudsql.admin_tokens) == {creds.token} and creds.token.startswith("admin-")
    assert cloudsql.access_tokens and all(t.startswith("login-") for t in cloudsql.access_tokens)
    assert cloudsql.tunnels and cloudsql.refused == 0
    for tunnel in cloudsql.tunnels:
        assert tunnel.client_cert_subject == "CN=ephemeral"
        assert tunnel.access_token in cloudsql.access_tokens
        assert tunnel.user == IAM_USER


def test_an_expiring_certificate_is_refreshed_on_the_next_connection(cloudsql, database_url):
    cloudsql.cert_lifetime = datetime.timedelta(minutes=3)  # under the connector's 4 min buffer
    engine = connector.connector_engine(
        _settings(cloudsql, database_url), credentials=FakeCredentials()
    )
    for _ in range(2):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == "plant_app"
        engine.dispose()  # the next checkout opens a new tunnel
    assert cloudsql.ephemeral_calls >= 2
    assert len(cloudsql.tunnels) >= 2 and cloudsql.refused == 0


def test_private_ip_setting_selects_the_private_address(cloudsql, database_url):
    cloudsql.ip_types = ("PRIVATE",)  # the instance has no public IP
    # A service account's full email is accepted: the connector trims it for PostgreSQL.
    cfg = _settings(
        cloudsql, database_url, DB_PRIVATE_IP="1", DB_IAM_USER=IAM_USER + ".gserviceaccount.com"
    )
    engine = connector.connector_engine(cfg, credentials=FakeCredentials())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT session_user")).scalar_one() == IAM_USER
    connector.close()

    from google.cloud.sql.connector.exceptions import CloudSQLIPTypeError

    public = connector.connector_engine(
        _settings(cloudsql, database_url), credentials=FakeCredentials()
    )
    with pytest.raises(CloudSQLIPTypeError):
        public.connect()


def test_one_connector_and_one_pool_per_instance_and_role(cloudsql, database_url):
    cfg = _settings(cloudsql, database_url)
    creds = FakeCredentials()
    app = connector.connector_engine(cfg, credentials=creds)
    assert connector.connector_engine(cfg, credentials=creds) is app
    owner = connector.connector_engine(cfg, app_role=False, credentials=creds)
    assert owner is not app
    assert app.pool.size() == 2 and app.pool._max_overflow == 0
    with owner.connect() as conn:  # the migration path acts as its own IAM user
        assert conn.execute(text("SELECT current_user")).scalar_one() == IAM_USER
    assert cloudsql.settings_calls == 1  # one connector, one certificate cache


def test_the_tunnel_refuses_a_client_without_a_certificate(cloudsql):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((cloudsql.tunnel_ip, TUNNEL_PORT), timeout=5)
    with pytest.raises((ssl.SSLError, OSError)), context.wrap_socket(raw) as tls:
        tls.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # a PostgreSQL SSLRequest
        if not tls.recv(1):  # TLS 1.3 reports the refusal on the first read
            raise ConnectionResetError("closed by the tunnel")
    raw.close()
    assert cloudsql.tunnels == []


def test_missing_iam_user_is_a_configuration_error(cloudsql, database_url):
    cfg = _settings(cloudsql, database_url, DB_IAM_USER="")
    with pytest.raises(ConfigurationError, match="DB_IAM_USER"):
        connector.connector_engine(cfg, credentials=FakeCredentials())


def test_local_path_never_imports_the_connector():
    code = (
        "import sys, main, shared.storage.engine, shared.storage.migrate; "
        "print('google.cloud.sql.connector' in sys.modules, "
        "'google.cloud.secretmanager' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]
