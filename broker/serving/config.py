"""ServeConfig: the settings of one serving node, validated once on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from broker.errors import ConfigError
from broker.http.bodies import BODY_TIMEOUT_S
from broker.http.jwt_config import JwtConfig

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """How a node serves its service.

    `control_port` splits the routes the way Skip does: when set, the SSE route
    (`GET /v1/streams/{id}`) stays on `port` and every control route (writes, stream creation and
    deletion, snapshots) moves to `control_port`. Health checks answer on both. With
    `split_routes=False` both ports serve every route instead: a leader or follower, which the
    proxy and the other nodes reach at the one URL it advertises, listens on a control port too
    so that Skip's clients (`SkipServiceBroker`: streams on 8080, control on 8081) reach it.

    Slow consumers: a subscriber may hold `max_pending_updates` undelivered updates (shared bytes,
    nothing copied); past that its backlog is merged into one coalesced update carrying the latest
    values of every changed key. Once it is more than `max_lag_updates` ticks behind, it is
    disconnected and resumes with `Last-Event-ID` on reconnect.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    control_port: int | None = None
    split_routes: bool = True
    heartbeat_s: float = 30.0
    max_body_bytes: int = MIB
    #: Compact-JSON sizes of stream/snapshot params, of one key and of one value: 413 beyond.
    max_params_bytes: int = 16 * 1024
    max_key_bytes: int = 4 * 1024
    max_value_bytes: int = 256 * 1024
    history_versions: int = 256
    idle_instance_s: float = 30.0
    max_pending_updates: int = 64
    max_lag_updates: int = 1024
    send_timeout_s: float = 10.0
    shutdown_timeout_s: float = 5.0
    #: Stream ids a node holds at once, and per resource instance (each id has at most one
    #: connected reader, so this bounds subscribers per instance): 429 beyond.
    max_streams: int = 100_000
    max_streams_per_instance: int = 20_000
    # Out of the repr: a logged config must not leak the token.
    control_token: str | None = field(default=None, repr=False)
    #: Identity tokens (docs/security.md, "Per-user auth"); off by default.
    jwt: JwtConfig = field(default_factory=JwtConfig)
    #: SIGTERM / POST /v1/admin/drain: connected streams are ended spread over this many
    #: seconds before the node exits (broker/serving/drain.py).
    drain_window_s: float = 10.0
    #: A snapshot, lookup or new stream of a resource that reads an external resource waits
    #: this long for its first content (503 beyond; broker/external/feeds.py).
    external_load_timeout_s: float = 10.0
    # Connections that never finish a request (broker/http/guarded_protocol.py).
    #: A request's head must be complete this long after the server is ready for it (408 and
    #: closed beyond); an SSE stream, once its head is in, is never timed by it.
    header_timeout_s: float = 10.0
    #: A request's body must be complete this long after its head (408 and closed beyond).
    body_timeout_s: float = BODY_TIMEOUT_S
    #: Connections open at once from one client address (an IPv6 /64); 0: no cap. Off by
    #: default: a node's clients are proxies, which hold one connection per relayed stream.
    max_connections_per_address: int = 0

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("host must not be empty")
        _check_port("port", self.port)
        if self.control_port is not None:
            _check_port("control_port", self.control_port)
            # Port 0 asks the OS for a free port, so two zeros still give two sockets.
            if self.control_port == self.port and self.port != 0:
                raise ConfigError("control_port must differ from port")
        _check_positive("heartbeat_s", self.heartbeat_s)
        _check_positive("idle_instance_s", self.idle_instance_s, allow_zero=True)
        _check_positive("send_timeout_s", self.send_timeout_s)
        _check_positive("shutdown_timeout_s", self.shutdown_timeout_s, allow_zero=True)
        _check_positive("drain_window_s", self.drain_window_s, allow_zero=True)
        _check_positive("external_load_timeout_s", self.external_load_timeout_s)
        _check_positive("header_timeout_s", self.header_timeout_s)
        _check_positive("body_timeout_s", self.body_timeout_s)
        _check_count(
            "max_connections_per_address", self.max_connections_per_address, allow_zero=True
        )
        _check_count("max_body_bytes", self.max_body_bytes)
        _check_count("max_params_bytes", self.max_params_bytes)
        _check_count("max_key_bytes", self.max_key_bytes)
        _check_count("max_value_bytes", self.max_value_bytes)
        _check_count("history_versions", self.history_versions, allow_zero=True)
        _check_count("max_pending_updates", self.max_pending_updates)
        _check_count("max_lag_updates", self.max_lag_updates)
        _check_count("max_streams", self.max_streams)
        _check_count("max_streams_per_instance", self.max_streams_per_instance)
        if self.max_lag_updates < self.max_pending_updates:
            raise ConfigError("max_lag_updates must be >= max_pending_updates")
        if self.control_token is not None and not self.control_token.strip():
            raise ConfigError("control_token must not be blank")

    @property
    def split(self) -> bool:
        """Whether control routes live on their own port (and only there)."""
        return self.control_port is not None and self.split_routes


def _check_port(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be an integer in 0..65535, got {value!r}")


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _check_count(name: str, value: int, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
