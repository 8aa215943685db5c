"""The client's address, by one rule for every per-address limit (login, token, sign-up, password reset,
API throttles).

Without a declared proxy (API_NUM_PROXIES = 0, the default) it is the socket's address, REMOTE_ADDR,
and any X-Forwarded-For header is ignored: a client can write whatever it likes there. Behind N proxies
of the deployment's own, each appends the address it received the request from, so the client is the
N-th entry from the right of X-Forwarded-For; entries further left were written by the client and are
never trusted. A request that arrives with fewer entries than declared proxies did not come through
them all, so its socket address stands.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _valid(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address, or None when the request carries none (a test request, a Unix socket)."""
    return client_address_of(
        remote=request.META.get("REMOTE_ADDR"), forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR", "")
    )


def client_address_of(*, remote: str | None, forwarded_for: str) -> str | None:
    """The same rule for a server that has no HttpRequest (the live stream's ASGI app): `remote` is the
    socket's address, `forwarded_for` the X-Forwarded-For header (its values joined by commas, in order)."""
    socket_address = _valid(remote)
    proxies = settings.API_NUM_PROXIES
    if proxies <= 0:
        return socket_address
    forwarded = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if len(forwarded) < proxies:
        return socket_address
    return _valid(forwarded[-proxies]) or socket_address
