"""A gRPC server implementing Secret Manager's AccessSecretVersion, on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from google.cloud.secretmanager_v1.types import (
    AccessSecretVersionRequest,
    AccessSecretVersionResponse,
    SecretPayload,
)

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"


@dataclass
class FakeSecretManager:
    secrets: dict[str, bytes] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    address: str = ""

    def access(self, request: AccessSecretVersionRequest, context: grpc.ServicerContext):
        self.calls.append(request.name)
        if request.name in self.denied:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "Permission denied on resource")
        value = self.secrets.get(request.name)
        if value is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.name}] not found")
        return AccessSecretVersionResponse(name=request.name, payload=SecretPayload(data=value))

    def client(self):
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
    fake = FakeSecretManager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
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
