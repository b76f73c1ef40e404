"""The only module that talks aiohttp: one session, POSTs, and exception translation."""

from __future__ import annotations

import os
import ssl
import urllib.request
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from importer.errors import ConfigError, TransportError


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    retry_after: str | None = None


class Transport(Protocol):
    async def post(self, path: str, body: bytes) -> Response: ...

    async def close(self) -> None: ...


def tls_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """What the API's certificate is checked against: ``--ca-bundle``, else
    ``$REQUESTS_CA_BUNDLE``, else ``$SSL_CERT_FILE``, else the system's store (a
    corporate TLS-inspecting proxy needs its CA in one of them)."""
    cafile = ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the CA bundle {cafile}: {getattr(exc, 'strerror', None) or exc}") from exc


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` (either case) name for ``url``, unless
    ``NO_PROXY`` exempts its host. Read once per run: aiohttp's ``trust_env`` would read
    the environment (and ~/.netrc) on every request, a third of the send path's time."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # undocumented, stable since 2.x
    if not proxies or bypass(parts.hostname or "", proxies):
        return None
    return proxies.get(parts.scheme)


class HttpTransport:
    """POSTs JSON bodies to the API with one pooled session.

    Redirects are not followed (a 3xx is a rejection), and every aiohttp exception is
    translated to TransportError here, with a message that never contains headers.
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured (``env_proxy``).
    """

    def __init__(
        self, base_url: str, api_key: str, timeout: float, concurrency: int, ca_bundle: str | None = None
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"x-api-key": api_key, "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = concurrency
        self._tls = tls_context(ca_bundle) if base_url.startswith("https:") else None
        self._proxy = env_proxy(self._base)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300, ssl=self._tls or True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, headers=self._headers)
        return self._session

    async def post(self, path: str, body: bytes) -> Response:
        session = self._open()
        try:
            async with session.post(self._base + path, data=body, allow_redirects=False, proxy=self._proxy) as resp:
                data = await resp.read()
                return Response(resp.status, data, resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise TransportError("timeout", "request timed out") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
            raise TransportError(
                "certificate", f"the API's TLS certificate is not trusted ({reason})", fatal=True
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise TransportError(
                "certificate", f"TLS handshake with the API failed ({exc.os_error})", fatal=True
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransportError("connect", f"cannot connect: {exc.os_error.strerror or exc.os_error}") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise TransportError("disconnected", "server closed the connection") from exc
        except aiohttp.ClientError as exc:
            raise TransportError("disconnected", f"connection error: {type(exc).__name__}") from exc
        except OSError as exc:
            raise TransportError("disconnected", f"connection error: {exc.strerror or exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
