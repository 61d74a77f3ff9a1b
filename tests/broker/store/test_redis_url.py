"""The `--redis` URL forms, as a table of inputs and what they parse to (no server)."""

from __future__ import annotations

import pytest

from broker.errors import ConfigError
from broker.store.redis_url import RedisAddress, parse_redis_url, redacted

CASES: list[tuple[str, RedisAddress]] = [
    ("redis://localhost:6379/0", RedisAddress("single", "redis://localhost:6379/0")),
    ("rediss://h:6380", RedisAddress("single", "rediss://h:6380", tls=True)),
    (
        "redis+sentinel://s1:26379,s2,s3:26380/mymaster",
        RedisAddress(
            "sentinel",
            "redis+sentinel://s1:26379,s2,s3:26380/mymaster",
            (("s1", 26379), ("s2", 26379), ("s3", 26380)),
            master="mymaster",
        ),
    ),
    (
        "rediss+sentinel://app:p%40ss@s1/m/2?sentinel_password=x&ssl_cert_reqs=none",
        RedisAddress(
            "sentinel",
            "rediss+sentinel://app:p%40ss@s1/m/2?sentinel_password=x&ssl_cert_reqs=none",
            (("s1", 26379),),
            master="m",
            db=2,
            username="app",
            password="p@ss",
            tls=True,
            options={"sentinel_password": "x", "ssl_cert_reqs": "none"},
        ),
    ),
    (
        "redis+cluster://:secret@n1:7000,n2:7001",
        RedisAddress(
            "cluster",
            "redis+cluster://:secret@n1:7000,n2:7001",
            (("n1", 7000), ("n2", 7001)),
            password="secret",
        ),
    ),
    (
        "rediss+cluster://n1",
        RedisAddress("cluster", "rediss+cluster://n1", (("n1", 6379),), tls=True),
    ),
]


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parses(url: str, expected: RedisAddress) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "http://localhost",
        "redis+sentinel://s1:26379",  # no master name
        "redis+sentinel://s1/m/x",  # db not a number
        "redis+cluster://n1/3",  # a cluster has db 0 only
        "redis+cluster:///",  # no host
        "redis+cluster://n1:port",
        "redis+sentinel://s1/m?colour=blue",  # unknown option
        "rediss+sentinel://s1/m?ssl_cert_reqs=maybe",
    ],
)
def test_refuses(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_redis_url(url)


def test_errors_and_logs_never_show_a_password() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_redis_url("redis+sentinel://u:hunter2@s1/m?colour=blue")
    assert "hunter2" not in str(caught.value)
    url = "redis+sentinel://u:hunter2@s1/m?sentinel_password=hunter3"
    assert "hunter" not in redacted(url)
    assert "hunter" not in parse_redis_url(url).describe()
    assert parse_redis_url("redis+cluster://n1:1,n2:2").describe() == "cluster n1:1,n2:2"
