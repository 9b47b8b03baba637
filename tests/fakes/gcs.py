"""A small Cloud Storage JSON API on loopback: enough of it for the anchor store (create-only
uploads with ifGenerationMatch=0, metadata, media download, listing by prefix)."""

from __future__ import annotations

import json
import re
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


class FakeGCS:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.generations: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def resource(self, bucket: str, name: str) -> dict[str, Any]:
        data = self.objects[(bucket, name)]
        return {
            "kind": "storage#object",
            "bucket": bucket,
            "name": name,
            "size": str(len(data)),
            "generation": str(self.generations[(bucket, name)]),
        }


def _handler(fake: FakeGCS) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any, raw: bool = False) -> None:
            data = body if raw else json.dumps(body).encode()
            self.send_response(status)
            self.send_header(
                "Content-Type", "application/octet-stream" if raw else "application/json"
            )
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            url = urlparse(self.path)
            match = re.match(r"^/upload/storage/v1/b/([^/]+)/o$", url.path)
            query = parse_qs(url.query)
            if not match:
                return self._send(404, {"error": {"code": 404, "message": "not found"}})
            body = self.rfile.read(int(self.headers["Content-Length"]))
            content_type = self.headers["Content-Type"]
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            parts = list(message.iter_parts())
            meta = json.loads(parts[0].get_payload(decode=True))
            data = parts[1].get_payload(decode=True)
            key = (match.group(1), meta.get("name") or query["name"][0])
            with fake.lock:
                if query.get("ifGenerationMatch") == ["0"] and key in fake.objects:
                    return self._send(412, {"error": {"code": 412, "message": "conditionNotMet"}})
                fake.objects[key] = data
                fake.generations[key] = fake.generations.get(key, 0) + 1
            return self._send(200, fake.resource(*key))

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            listing = re.match(r"^/storage/v1/b/([^/]+)/o$", url.path)
            if listing:
                prefix = query.get("prefix", [""])[0]
                items = [
                    fake.resource(b, n)
                    for (b, n) in sorted(fake.objects)
                    if b == listing.group(1) and n.startswith(prefix)
                ]
                return self._send(200, {"kind": "storage#objects", "items": items})
            one = re.match(r"^(?:/download)?/storage/v1/b/([^/]+)/o/(.+)$", url.path)
            if not one:
                return self._send(404, {"error": {"code": 404, "message": "not found"}})
            key = (one.group(1), unquote(one.group(2)))
            if key not in fake.objects:
                return self._send(404, {"error": {"code": 404, "message": "No such object"}})
            if query.get("alt") == ["media"]:
                return self._send(200, fake.objects[key], raw=True)
            return self._send(200, fake.resource(*key))

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class RunningGCS:
    def __init__(self) -> None:
        self.fake = FakeGCS()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.fake))
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def stop(self) -> None:
        self.server.shutdown()
