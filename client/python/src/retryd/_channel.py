"""Channel construction shared by the sync and asyncio clients (private)."""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple

import grpc

from retryd.types import TLSConfig

DEFAULT_TARGET = "127.0.0.1:50051"


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
    if tls is not None and tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return opts


def metadata(token: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
