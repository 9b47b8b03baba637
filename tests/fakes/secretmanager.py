"""A gRPC server implementing Secret Manager's AccessSecretVersion, on loopback.

Google ships no Secret Manager emulator; this speaks the real service's wire protocol, so the
real ``SecretManagerServiceClient`` (on an insecure channel) is what the tests drive.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import grpc
from google.cloud.secretmanager_v1.types import (
    AccessSecretVersionRequest,
    AccessSecretVersionResponse,
    SecretPayload,
)

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"


@dataclass
class FakeSecretManager:
    """Secrets by full version name; names in ``denied`` answer PERMISSION_DENIED, names in
    ``corrupt`` carry a wrong CRC32C."""

    secrets: dict[str, bytes] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    address: str = ""

    def access(
        self, request: AccessSecretVersionRequest, context: grpc.ServicerContext
    ) -> AccessSecretVersionResponse:
        self.calls.append(request.name)
        if request.name in self.denied:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission 'secretmanager.versions.access' denied for resource '{request.name}'",
            )
        value = self.secrets.get(request.name)
        if value is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.name}] not found")
        checksum = google_crc32c.value(value) ^ (1 if request.name in self.corrupt else 0)
        return AccessSecretVersionResponse(
            name=request.name, payload=SecretPayload(data=value, data_crc32c=checksum)
        )

    def client(self) -> Any:
        """The real client, over an insecure channel to this fake."""
        from google.cloud.secretmanager import SecretManagerServiceClient
        from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
            SecretManagerServiceGrpcTransport,
        )

        channel = grpc.insecure_channel(self.address)
        return SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )


@contextmanager
def running() -> Iterator[FakeSecretManager]:
    """Serve a fresh fake on 127.0.0.1 (a free port) for the duration of the block."""
    fake = FakeSecretManager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "AccessSecretVersion": grpc.unary_unary_rpc_method_handler(
                fake.access,
                request_deserializer=AccessSecretVersionRequest.deserialize,
                response_serializer=AccessSecretVersionResponse.serialize,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    fake.address = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.stop(grace=None)
