"""Which pages may open the WebSocket: those of this site, compared as browsers compare origins
(scheme, host and port), as Django's CSRF check compares the Origin of a form post.

Channels' AllowedHostsOriginValidator compares host names only, so a page served from any
other port of an allowed host (another app on the same machine) could open a logged-in socket.
"""

from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

# What Django allows when DEBUG is on and ALLOWED_HOSTS is empty (HttpRequest.get_host()).
DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def request_scheme(scope) -> str:
    """http or https, as the browser reached the site: the trusted proxy's header when
    SECURE_PROXY_SSL_HEADER is set (as for HttpRequest.is_secure()), else the connection's."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        value = _header(scope, header)
        if value is not None:
            return "https" if value.split(",")[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def site_origins(scope) -> list[str]:
    """The origins a socket is accepted from: this site's own, ``scheme://Host`` when ALLOWED_HOSTS
    accepts the Host header, and CSRF_TRUSTED_ORIGINS (``https://*.example.com`` style
    wildcards included)."""
    origins = [origin.replace("://*.", "://.") for origin in settings.CSRF_TRUSTED_ORIGINS]
    host = _header(scope, b"host")
    if host:
        domain, _port = split_domain_port(host)
        allowed_hosts = settings.ALLOWED_HOSTS or (DEBUG_HOSTS if settings.DEBUG else [])
        if domain and validate_host(domain, allowed_hosts):
            origins.append(f"{request_scheme(scope)}://{host}")
    return origins


class SameOriginValidator(OriginValidator):
    """Channels' OriginValidator with the allowed origins worked out for each connection
    (``site_origins``); a socket without an Origin header is refused too."""

    def __init__(self, application):
        super().__init__(application, allowed_origins=())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator only guards WebSocket connections")
        origin = _header(scope, b"origin")
        parsed = urlparse(origin) if origin else None
        if parsed is not None and any(
            self.match_allowed_origin(parsed, pattern) for pattern in site_origins(scope)
        ):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
