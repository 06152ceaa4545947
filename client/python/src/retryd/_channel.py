"""Channel construction shared by the sync and asyncio clients (private)."""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple

import grpc

from retryd.types import TLSConfig

DEFAULT_TARGET = "127.0.0.1:50051"

# The largest response retryd sends: a Lease holds at least one envelope, whose payload may be
# as large as the server's limits.max_payload_bytes allows (at most 64 MiB), plus its headers and
# history; the Lease budget (limits.max_lease_response_bytes) is at most 64 MiB too. gRPC's default
# 4 MiB receive limit would fail such a response after the lease committed, and the envelope
# would be leased again and again without ever being delivered.
MAX_RECEIVE_MESSAGE_BYTES = 66 * 1024 * 1024


def resolve_target(target: Optional[str]) -> str:
    return target or os.environ.get("RETRYD_ADDR") or DEFAULT_TARGET


def resolve_token(token: Optional[str]) -> Optional[str]:
    if token is not None:
        return token or None
    return os.environ.get("RETRYD_TOKEN") or None


def _read(path: Optional[str]) -> Optional[bytes]:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file),
        private_key=_read(tls.key_file),
        certificate_chain=_read(tls.cert_file),
    )


def options(tls: Optional[TLSConfig], channel_options: Sequence[Tuple[str, Any]]) -> List[Tuple[str, Any]]:
    opts = list(channel_options)
    if not any(name == "grpc.max_receive_message_length" for name, _ in opts):
        opts.append(("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES))
    if tls is not None and tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return opts


def metadata(token: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
