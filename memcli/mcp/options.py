"""Checks on `memcli mcp`'s options that need no MCP SDK (it takes seconds to import),
so that a bad option is refused at once."""

from __future__ import annotations

import ipaddress

from memcli.errors import UsageError


def parse_http(value: str) -> tuple[str, int]:
    """`[HOST:]PORT` (IPv6 hosts in brackets); the host defaults to 127.0.0.1."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--http {value!r}: expected [HOST:]PORT with PORT 0-65535")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise UsageError(
            f"refusing to listen on {host}, which is not a loopback address, without "
            "--token (every request would reach your memory unauthenticated)"
        )
