"""The `--redis` URL forms, parsed into what `connect()` needs (pure: no I/O).

- `redis://[user:password@]host:port[/db]` (`rediss://`: TLS), `unix:///path.sock`: one server;
- `redis+sentinel://[user:password@]host1:26379,host2:26379/<master>[/db]`: the current
  primary of `<master>`, asked of the Sentinels;
- `redis+cluster://[user:password@]host1:6379,host2:6379`: a Redis Cluster (seed nodes; db 0).

`rediss+sentinel://` and `rediss+cluster://` use TLS to every server (and, for Sentinel, to the
Sentinels). The user and password are those of the data servers; Sentinels that require their
own are given `?sentinel_password=...` (and `sentinel_username=`). TLS files and checks:
`?ssl_ca_certs=`, `ssl_certfile=`, `ssl_keyfile=`, `ssl_cert_reqs=none|optional|required`.
A port left out is 26379 for a Sentinel and 6379 otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from broker.errors import ConfigError

Topology = Literal["single", "sentinel", "cluster"]

_SCHEMES: Final[dict[str, tuple[Topology, bool]]] = {
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_TLS_OPTIONS: Final = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
_OPTIONS: Final = (*_TLS_OPTIONS, "sentinel_username", "sentinel_password")
_CERT_REQS: Final = ("none", "optional", "required")


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where a `--redis` URL points. `hosts` are (host, port) pairs: the Sentinels for
    `sentinel`, seed nodes for `cluster`; `single` keeps the URL itself (redis-py parses it)."""

    topology: Topology
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """For logs: the form and hosts, never a password."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        if self.topology == "sentinel":
            return f"sentinel {hosts} master {self.master} db {self.db}"
        if self.topology == "cluster":
            return f"cluster {hosts}"
        return redacted(self.url)


def parse_redis_url(url: str) -> RedisAddress:
    """Parse any `--redis` form; ConfigError (with the password hidden) when it is not one."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"not a Redis URL: {redacted(url)!r}")
    if scheme in ("redis", "rediss", "unix"):
        return RedisAddress("single", url, tls=scheme == "rediss")
    if scheme not in _SCHEMES:
        raise ConfigError(
            "a Redis URL starts with redis://, rediss://, unix://, redis+sentinel:// or "
            f"redis+cluster:// (rediss+ for TLS), got {redacted(url)!r}"
        )
    topology, tls = _SCHEMES[scheme]
    # urlsplit refuses several host:port pairs in the netloc: split it ourselves.
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    creds, _, hostlist = netloc.rpartition("@")
    username, password = _credentials(creds)
    default_port = 26379 if topology == "sentinel" else 6379
    hosts = tuple(_host(item, default_port, url) for item in hostlist.split(",") if item)
    if not hosts:
        raise ConfigError(f"no host in {redacted(url)!r}")
    options = _options(query, url)
    parts = [unquote(p) for p in path.split("/") if p]
    master, db = "", 0
    if topology == "sentinel":
        if not parts:
            raise ConfigError(f"a Sentinel URL names the master: .../<master>[/db] ({url!r})")
        master = parts[0]
        db = _db(parts[1:], url)
    else:
        db = _db(parts, url)
        if db != 0:
            raise ConfigError("a Redis Cluster has only database 0")
    return RedisAddress(topology, url, hosts, master, db, username, password, tls, options)


def redacted(url: str) -> str:
    """The URL with any password replaced, for logs."""
    url = re.sub(r"(sentinel_password=)[^&]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':' if user else ''}***@{host}"


def _credentials(creds: str) -> tuple[str | None, str | None]:
    if not creds:
        return None, None
    user, colon, password = creds.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _host(item: str, default_port: int, url: str) -> tuple[str, int]:
    parsed = urlsplit(f"//{item}")
    try:
        port = parsed.port or default_port
    except ValueError as err:
        raise ConfigError(f"bad port in {redacted(url)!r}: {item!r}") from err
    if not parsed.hostname:
        raise ConfigError(f"bad host in {redacted(url)!r}: {item!r}")
    return parsed.hostname, port


def _db(parts: list[str], url: str) -> int:
    if not parts:
        return 0
    if len(parts) > 1 or not parts[0].isdigit():
        raise ConfigError(f"bad database in {redacted(url)!r}: {'/'.join(parts)!r}")
    return int(parts[0])


def _options(query: str, url: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in _OPTIONS:
            raise ConfigError(
                f"unknown option {name!r} in {redacted(url)!r} (known: {', '.join(_OPTIONS)})"
            )
        options[name] = values[-1]
    if options.get("ssl_cert_reqs", "required") not in _CERT_REQS:
        raise ConfigError(f"ssl_cert_reqs is one of {', '.join(_CERT_REQS)}")
    return options
