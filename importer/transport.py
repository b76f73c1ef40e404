"""The only module that talks aiohttp: one session, POSTs, and exception translation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiohttp

from importer.errors import TransportError


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    retry_after: str | None = None


class Transport(Protocol):
    async def post(self, path: str, body: bytes) -> Response: ...

    async def close(self) -> None: ...


class HttpTransport:
    """POSTs JSON bodies to the API with one pooled session.

    Redirects are not followed (a 3xx is a rejection), and every aiohttp exception is
    translated to TransportError here, with a message that never contains headers.
    """

    def __init__(self, base_url: str, api_key: str, timeout: float, concurrency: int) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"x-api-key": api_key, "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = concurrency
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, headers=self._headers)
        return self._session

    async def post(self, path: str, body: bytes) -> Response:
        session = self._open()
        try:
            async with session.post(self._base + path, data=body, allow_redirects=False) as resp:
                data = await resp.read()
                return Response(resp.status, data, resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise TransportError("timeout", "request timed out") from exc
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
