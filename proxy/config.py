"""ProxyConfig: the settings of one proxy process, validated once on construction."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.errors import ConfigError
from broker.http.bodies import BODY_TIMEOUT_S
from broker.http.client_address import TrustedForwarders
from broker.http.jwt_config import JwtConfig
from broker.store.keyspace import Keyspace, KeyspaceError
from broker.store.rate_limit import RateLimit
from broker.store.redis_url import parse_redis_url
from proxy.errors import ProxyConfigError

MIB = 1024 * 1024
#: Default rate limits per client (docs/security.md, "Client limits", says why these).
STREAM_RATE = RateLimit(per_s=10, burst=300)
WRITE_RATE = RateLimit(per_s=100, burst=1000)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """How a proxy reaches its cluster and serves clients.

    `service` names the keyspace (`skiff:{service}:...`); None lets `skiff proxy` discover the
    only service present in Redis. `control_token` is never part of the repr, so logging a
    config never leaks it. `cors_origins` empty means no CORS headers at all. `jwt`: identity
    tokens, verified here as at the nodes (configure both alike). `demo_signing_key`: the
    example app's login (proxy/demo_login.py) signs tokens with it; never set in production.
    """

    redis_url: str
    service: str | None = None
    #: Several services served by this one proxy, each under `/<service>/...`
    #: (proxy/services.py); `service` is None then.
    services: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    #: A second port serving the same routes, for Skip's clients (SkipServiceBroker sends its
    #: control requests to 8081 and reads streams on 8080).
    control_port: int | None = None
    control_token: str | None = field(default=None, repr=False)
    jwt: JwtConfig = field(default_factory=JwtConfig)
    demo_signing_key: str | None = field(default=None, repr=False)
    max_body_bytes: int = MIB
    cors_origins: tuple[str, ...] = ()
    #: How often membership (the nodes index, their records and the lease) is re-read.
    poll_interval_s: float = 0.25
    #: Lifetime of a stream's registry record without a client connected through a proxy.
    stream_ttl_s: float = 60.0
    connect_timeout_s: float = 2.0
    request_timeout_s: float = 10.0
    #: How long a write waits for a new leader before its one retry (takeover takes <= 5 s).
    leader_wait_s: float = 6.0
    shutdown_timeout_s: float = 5.0

    # -- Client limits (docs/security.md, "Client limits") ------------------------------------
    #: A request's head must be complete this long after the proxy is ready for it (408 and
    #: closed beyond); an SSE stream, once its head is in, is never timed by it.
    header_timeout_s: float = 10.0
    #: A request's body must be complete this long after its head (408 and closed beyond).
    body_timeout_s: float = BODY_TIMEOUT_S
    #: Connections open at once from one client address (an IPv6 /64); 0: no cap. Trusted
    #: forwarders are not capped (they carry many clients).
    max_connections_per_address: int = 1024
    #: Peers (addresses, networks, `*`) whose X-Forwarded-For names the client; none: the
    #: socket peer is the client.
    forwarded_allow_ips: tuple[str, ...] = ()
    #: Stream creations per client: `burst` at once, then `per_s` a second (per_s 0: off).
    stream_rate: RateLimit = STREAM_RATE
    #: Writes per client (a request with the control token is not limited).
    write_rate: RateLimit = WRITE_RATE

    def __post_init__(self) -> None:
        try:
            parse_redis_url(self.redis_url)
        except ConfigError as err:  # its message hides any password
            raise ProxyConfigError(str(err)) from err
        for name in (self.service, *self.services):
            if name is None:
                continue
            try:
                Keyspace(name)
            except KeyspaceError as err:
                raise ProxyConfigError(str(err)) from err
        if self.services and self.service is not None:
            raise ProxyConfigError("give one service, or several services, not both")
        if len(set(self.services)) != len(self.services):
            raise ProxyConfigError(f"a service is named twice in {list(self.services)}")
        if not self.host:
            raise ProxyConfigError("host must not be empty")
        if isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise ProxyConfigError(f"port must be in 0..65535, got {self.port!r}")
        if self.control_port is not None:
            if isinstance(self.control_port, bool) or not 0 <= self.control_port <= 65535:
                raise ProxyConfigError(
                    f"control_port must be in 0..65535, got {self.control_port!r}"
                )
            if self.control_port == self.port != 0:
                raise ProxyConfigError("control_port must differ from port")
        if self.control_token is not None and not self.control_token.strip():
            raise ProxyConfigError("control_token must not be blank")
        if self.demo_signing_key is not None and self.demo_signing_key != self.jwt.secret:
            raise ProxyConfigError(
                "SKIFF_DEMO_SIGNING_KEY needs SKIFF_JWT_SECRET set to the same key "
                "(the tokens the demo login signs are verified with it)"
            )
        if isinstance(self.max_body_bytes, bool) or self.max_body_bytes < 1:
            raise ProxyConfigError(f"max_body_bytes must be >= 1, got {self.max_body_bytes!r}")
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ProxyConfigError(f"a CORS origin is * or http(s)://host, got {origin!r}")
        for name in (
            "poll_interval_s",
            "stream_ttl_s",
            "connect_timeout_s",
            "request_timeout_s",
            "leader_wait_s",
        ):
            _check_positive(name, getattr(self, name))
        _check_positive("shutdown_timeout_s", self.shutdown_timeout_s, allow_zero=True)
        _check_positive("header_timeout_s", self.header_timeout_s)
        _check_positive("body_timeout_s", self.body_timeout_s)
        limit = self.max_connections_per_address
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ProxyConfigError(f"max_connections_per_address must be >= 0, got {limit!r}")
        for name in ("stream_rate", "write_rate"):
            if not isinstance(getattr(self, name), RateLimit):
                raise ProxyConfigError(f"{name} must be a RateLimit")
        try:
            TrustedForwarders(self.forwarded_allow_ips)
        except ConfigError as err:
            raise ProxyConfigError(str(err)) from err
        if self.stream_ttl_s < 3 * self.poll_interval_s:
            raise ProxyConfigError("stream_ttl_s must be at least 3 poll intervals")

    @property
    def stream_ttl_ms(self) -> int:
        return math.ceil(self.stream_ttl_s * 1000)

    @classmethod
    def from_env(
        cls, redis_url: str, *, environ: Mapping[str, str] | None = None, **options: Any
    ) -> ProxyConfig:
        """A config whose secrets and deployment settings come from the environment:
        `SKIFF_CONTROL_TOKEN`, `SKIFF_JWT_SECRET` and `SKIFF_DEMO_SIGNING_KEY` (never from the
        command line, where `ps` would show them), `SKIFF_CORS_ORIGINS` (comma-separated) and
        the other `SKIFF_JWT_*` settings, unless `options` sets them."""
        env = os.environ if environ is None else environ
        token = env.get("SKIFF_CONTROL_TOKEN") or None
        if "cors_origins" not in options:
            raw = env.get("SKIFF_CORS_ORIGINS", "")
            options["cors_origins"] = tuple(o.strip() for o in raw.split(",") if o.strip())
        if "jwt" not in options:
            try:
                options["jwt"] = JwtConfig.from_env(env)
            except ConfigError as err:
                raise ProxyConfigError(str(err)) from err
        demo = env.get("SKIFF_DEMO_SIGNING_KEY") or None
        return cls(redis_url=redis_url, control_token=token, demo_signing_key=demo, **options)


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProxyConfigError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ProxyConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
