"""Turn a libpq-style DATABASE_URL into the SQLAlchemy + pg8000 URL the engine uses."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def pg8000_url(database_url: str) -> URL:
    """Accept ``postgresql://`` URLs, including a unix socket given as ``?host=/dir``.

    pg8000 takes a socket path (``unix_sock``), not libpq's socket directory, so the
    directory is expanded to ``/dir/.s.PGSQL.<port>``.
    """
    url = make_url(database_url)
    if url.drivername in {"postgres", "postgresql", "postgresql+pg8000"}:
        url = url.set(drivername="postgresql+pg8000")
    else:
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    query = dict(url.query)
    host = query.pop("host", None)
    if isinstance(host, str) and host.startswith("/"):
        port = url.port or 5432
        query["unix_sock"] = f"{host.rstrip('/')}/.s.PGSQL.{port}"
        url = url.set(host=None, port=None)
    if url.password == "":
        url = url.set(password=None)
    return url.set(query=query)
