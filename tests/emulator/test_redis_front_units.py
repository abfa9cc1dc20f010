"""The Redis front's pieces on their own: reading commands as clients send them, and the
configured lifetime of Redis tokens."""

from __future__ import annotations

import uuid

import pytest
from graph_emulator.config import ConfigError, parse_config
from graph_emulator.redis_front import encode_command, parse_command

pytestmark = pytest.mark.emulator


def test_commands_are_read_whole_and_only_whole():
    stream = encode_command([b"AUTH", b"oid", b"tok\r\nen"]) + encode_command([b"PING"])
    for cut in range(len(stream) - len(encode_command([b"PING"]))):
        assert parse_command(bytearray(stream[:cut])) == (None, 0)
    parts, used = parse_command(bytearray(stream))
    assert parts == [b"AUTH", b"oid", b"tok\r\nen"]
    assert parse_command(bytearray(stream[used:])) == ([b"PING"], len(stream) - used)


def test_inline_commands_are_read_as_redis_cli_sends_them():
    assert parse_command(bytearray(b"AUTH oid token\r\nGET")) == ([b"AUTH", b"oid", b"token"], 16)


def config(**extra):
    tenant = {"id": str(uuid.uuid4()), "apps": [{"clientId": str(uuid.uuid4())}]}
    return {"tenants": [tenant], **extra}


def test_redis_tokens_live_an_hour_unless_configured():
    assert parse_config(config()).redis_token_lifetime_seconds == 3600
    assert parse_config(config(redisTokenLifetimeSeconds=15)).redis_token_lifetime_seconds == 15
    with pytest.raises(ConfigError, match="redisTokenLifetimeSeconds must be a positive"):
        parse_config(config(redisTokenLifetimeSeconds=0))
