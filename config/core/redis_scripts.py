"""Redis scripts sent with other commands in one round trip, by their SHA1.

redis-py runs a registered script on its own (one round trip each) and, in a pipeline, asks SCRIPT EXISTS first (one
more). A trade's after-commit work (the price cache's snapshot and the live stream's events) and an API-key request's
key lookup with its limit are each a few commands that belong together: `redis_commands_run` writes them in one send
(config.core.redis_cache.redis_round_trip), scripts as EVALSHA. A script Redis does not hold yet (started, restarted,
flushed) answers NOSCRIPT without running: only those are sent again, in full (EVAL, which also caches it there), in
one more round trip, so no script ever runs twice.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from config.core.redis_cache import redis_round_trip

Argument = str | bytes | int


def script_sha(text: str) -> str:
    """The name Redis gives a script (EVALSHA): the SHA1 of its text."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class ScriptCall:
    """One run of a Lua script: its text and SHA1, its KEYS and its ARGV."""

    text: str
    sha: str
    keys: Sequence[str]
    args: Sequence[Argument]

    def command(self, *, in_full: bool = False) -> list[Argument]:
        head: list[Argument] = ["EVAL", self.text] if in_full else ["EVALSHA", self.sha]
        return [*head, len(self.keys), *self.keys, *self.args]


Command = ScriptCall | Sequence[Argument]


def redis_commands_run(client: Any, commands: Sequence[Command]) -> list[Any]:
    """Each command's raw reply, or the ResponseError it got (as a value), in order: every command in one round trip,
    plus one for the scripts Redis answered NOSCRIPT (sent again in full). Raises one of config.core.cache.UNREACHABLE
    when Redis cannot be reached."""
    replies = redis_round_trip(client, [_packed(command) for command in commands])
    unknown = [
        index
        for index, (command, reply) in enumerate(zip(commands, replies, strict=True))
        if isinstance(command, ScriptCall) and isinstance(reply, NoScriptError)
    ]
    if unknown:
        calls = [commands[index] for index in unknown]
        resent = redis_round_trip(
            client, [call.command(in_full=True) for call in calls if isinstance(call, ScriptCall)]
        )
        for index, reply in zip(unknown, resent, strict=True):
            replies[index] = reply
    return replies


def _packed(command: Command) -> Sequence[Argument]:
    return command.command() if isinstance(command, ScriptCall) else command
