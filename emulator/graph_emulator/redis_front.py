"""A Redis that insists on Entra ID tokens, as Azure Managed Redis does with access keys
disabled: a TLS front on a loopback port, in front of a plain redis-server.

Like Azure, it
- serves TLS only (the emulator's certificate, so clients trust the emulator's CA);
- accepts `AUTH <object id> <token>` (and `HELLO <v> AUTH <object id> <token>`) only with a
  token signed by the emulator's Entra ID, for the audience https://redis.azure.com,
  unexpired, whose `oid` is the user name; anything else gets `-WRONGPASS`;
- closes a connection whose token expires without a new `AUTH`;
- forwards every other command byte for byte, blocking ones included.

The backend redis-server gets a password that only this front knows (CONFIG SET
requirepass at start): a good token's AUTH is forwarded as `AUTH <that password>`, a bad
one as `AUTH` with a wrong password. So the backend itself answers each command in order
(`-NOAUTH` before a login, `-WRONGPASS` for a refused token), even in pipelines, and this
front needs to parse only what clients send, never the replies.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import redis

logger = logging.getLogger(__name__)

REDIS_AUDIENCE = "https://redis.azure.com"
READ_SIZE = 65536


class Refused(Exception):
    """A token the front does not accept; the message says why (never the token)."""


class TokenVerifier:
    """Checks tokens against the emulator's signing keys (current and kept ones)."""

    def __init__(self, jwks: Callable[[], dict[str, Any]], audience: str = REDIS_AUDIENCE):
        self._jwks = jwks
        self.audience = audience

    def expiry(self, user: str, token: str) -> float:
        """When the token expires (time.time()), or Refused."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            found = [key for key in self._jwks()["keys"] if key["kid"] == kid]
            if not found:
                raise Refused("unknown signing key")
            claims = jwt.decode(
                token,
                jwt.PyJWK(found[0]).key,
                algorithms=["RS256"],
                audience=self.audience,
                options={"require": ["exp", "oid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused("expired token") from None
        except jwt.InvalidAudienceError:
            raise Refused("wrong audience") from None
        except jwt.InvalidTokenError as error:
            raise Refused(f"invalid token ({type(error).__name__})") from None
        if claims["oid"] != user:
            raise Refused("the user name is not the token's oid")
        return float(claims["exp"])


@dataclass
class FrontStats:
    connections: int = 0
    logins: int = 0  # accepted AUTH / HELLO AUTH, first or renewed
    refused: dict[str, int] = field(default_factory=dict)
    expired_closes: int = 0  # connections closed because their token expired

    def as_json(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "logins": self.logins,
            "refused": dict(self.refused),
            "expiredCloses": self.expired_closes,
        }


def parse_command(buffer: bytearray) -> tuple[list[bytes] | None, int]:
    """The first whole command in `buffer` and its length in bytes; (None, 0) until one
    has arrived. RESP arrays of bulk strings, or an inline command (redis-cli, telnet)."""
    if not buffer:
        return None, 0
    end = buffer.find(b"\r\n")
    if end < 0:
        return None, 0
    if buffer[0:1] != b"*":
        return [bytes(part) for part in bytes(buffer[:end]).split()], end + 2
    count = int(buffer[1:end])
    position = end + 2
    parts: list[bytes] = []
    for _ in range(count):
        end = buffer.find(b"\r\n", position)
        if end < 0:
            return None, 0
        if buffer[position : position + 1] != b"$":
            raise ValueError("expected a bulk string")
        length = int(buffer[position + 1 : end])
        start = end + 2
        if len(buffer) < start + length + 2:
            return None, 0
        parts.append(bytes(buffer[start : start + length]))
        position = start + length + 2
    return parts, position


def encode_command(parts: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RedisFront:
    def __init__(
        self,
        *,
        backend_port: int,
        ssl_context: ssl.SSLContext,
        verifier: TokenVerifier,
        host: str = "127.0.0.1",
        port: int = 0,
        backend_host: str = "127.0.0.1",
        password: str | None = None,
    ) -> None:
        self.backend = (backend_host, backend_port)
        self.ssl_context = ssl_context
        self.verifier = verifier
        self.host, self.port = host, port
        self.stats = FrontStats()
        self._stats_lock = threading.Lock()
        # One password for the fronts of one cluster: its replicas log in to their primary.
        self._password = password or secrets.token_urlsafe(24)
        self._wrong_password = secrets.token_urlsafe(24)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def backend_password(self) -> str:
        """The backend's password (the tests read Redis directly with it)."""
        return self._password

    def start(self) -> int:
        """Listen, lock the backend with our password, and return the port.

        A cluster node is told to announce our port instead of its own (in MOVED, ASK and
        CLUSTER SLOTS/SHARDS), so cluster clients follow the slots from front to front."""
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            server = loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port, ssl=self.ssl_context)
            )
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, name="redis-front", daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("the Redis front did not start")
        backend = redis.Redis(*self.backend, socket_timeout=5)
        deadline = time.monotonic() + 15
        while True:  # `make run` starts redis-server just before the emulator
            try:
                if backend.info("cluster").get("cluster_enabled"):
                    backend.config_set("cluster-announce-port", self.port)
                backend.config_set("masterauth", self._password)
                backend.config_set("requirepass", self._password)
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        backend.close()
        logger.info("Redis front (Entra ID tokens) on %s:%d", self.host, self.port)
        return self.port

    def snapshot(self) -> dict[str, Any]:
        with self._stats_lock:
            return self.stats.as_json()

    def _count(self, update: Callable[[FrontStats], None]) -> None:
        with self._stats_lock:
            update(self.stats)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count(lambda s: setattr(s, "connections", s.connections + 1))
        try:
            backend_reader, backend_writer = await asyncio.open_connection(*self.backend)
        except OSError:
            writer.close()
            return
        connection = _Connection(self, reader, writer, backend_reader, backend_writer)
        await connection.run()


class _Connection:
    def __init__(
        self,
        front: RedisFront,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        backend_reader: asyncio.StreamReader,
        backend_writer: asyncio.StreamWriter,
    ) -> None:
        self.front = front
        self.reader, self.writer = reader, writer
        self.backend_reader, self.backend_writer = backend_reader, backend_writer
        self.expires_at: float | None = None  # None: not logged in yet
        self.login_changed = asyncio.Event()

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._client_to_backend()),
            asyncio.create_task(self._backend_to_client()),
            asyncio.create_task(self._close_when_expired()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (self.writer, self.backend_writer):
            writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _backend_to_client(self) -> None:
        while chunk := await self.backend_reader.read(READ_SIZE):
            self.writer.write(chunk)
            await self.writer.drain()

    async def _client_to_backend(self) -> None:
        buffer = bytearray()
        try:
            while chunk := await self.reader.read(READ_SIZE):
                buffer += chunk
                while True:
                    parts, used = parse_command(buffer)
                    if parts is None:
                        break
                    raw = bytes(buffer[:used])
                    del buffer[:used]
                    self.backend_writer.write(self._rewrite(parts) or raw)
                await self.backend_writer.drain()
        except (ssl.SSLError, ConnectionError, ValueError):
            return

    def _rewrite(self, parts: list[bytes]) -> bytes | None:
        """The command to send instead of a login (AUTH, HELLO ... AUTH); None: as sent."""
        name = parts[0].upper() if parts else b""
        if name == b"AUTH":
            return encode_command([b"AUTH", self._login(parts[1:])])
        if name == b"HELLO":
            upper = [part.upper() for part in parts]
            if b"AUTH" in upper:
                at = upper.index(b"AUTH")
                password = self._login(parts[at + 1 : at + 3])
                login = [b"AUTH", b"default", password]
                return encode_command([*parts[:at], *login, *parts[at + 3 :]])
        return None

    def _login(self, credentials: list[bytes]) -> bytes:
        """The backend password for a good token (the connection's expiry moves), a wrong
        one otherwise (the backend answers -WRONGPASS, the previous login stays)."""
        try:
            if len(credentials) != 2:
                raise Refused("AUTH needs the object id and the token")
            user, token = (part.decode("utf-8", "replace") for part in credentials)
            expires_at = self.front.verifier.expiry(user, token)
        except Refused as refused:
            reason = str(refused)
            self.front._count(lambda s: s.refused.update({reason: s.refused.get(reason, 0) + 1}))
            logger.info("redis front: login refused: %s", reason)
            return self.front._wrong_password.encode()
        self.front._count(lambda s: setattr(s, "logins", s.logins + 1))
        self.expires_at = expires_at
        self.login_changed.set()
        return self.front._password.encode()

    async def _close_when_expired(self) -> None:
        while True:
            if self.expires_at is None:
                await self.login_changed.wait()
            self.login_changed.clear()
            assert self.expires_at is not None
            left = self.expires_at - time.time()
            if left <= 0:
                self.front._count(lambda s: setattr(s, "expired_closes", s.expired_closes + 1))
                logger.info("redis front: closed a connection whose token expired")
                return
            try:
                await asyncio.wait_for(self.login_changed.wait(), timeout=left)
            except TimeoutError:
                pass
