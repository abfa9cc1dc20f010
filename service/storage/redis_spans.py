"""What a Redis span may say: the command and the families of the keys it touches.

The redis instrumentation (opentelemetry-instrumentation-redis) makes one client span per
command and per script call (`EVALSHA`). Keys hold caller, booking and organizer ids and
arguments hold lock tokens and records, so its hook replaces the statement with the command
alone and adds the key families (`booking`, `lock`, `quota`...; service.storage.keys),
whatever the instrumentation's own sanitising does in a later release.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import Span

from service.storage import keys

# The statement's names in the old and the stable database conventions: both are replaced.
STATEMENT_ATTRIBUTES = ("db.statement", "db.query.text")
FAMILIES_ATTRIBUTE = "mps.redis.key_families"
# A script's sha1 is the code it runs, not data: kept, to tell the scripts apart.
SCRIPT_ATTRIBUTE = "mps.redis.script_sha"
SCRIPT_COMMANDS = frozenset({"EVALSHA", "EVAL_RO", "EVALSHA_RO"})


def request_hook(span: Span, instance: Any, args: Sequence[Any], kwargs: Any) -> None:
    """Called by the instrumentation right after it starts a command's span."""
    if not span.is_recording() or not args:
        return
    command = str(args[0]).upper()
    # Replaced under whichever name the instrumentation wrote it (the conventions it
    # follows depend on OTEL_SEMCONV_STABILITY_OPT_IN).
    written = getattr(span, "attributes", None) or {}
    for name in [name for name in STATEMENT_ATTRIBUTES if name in written] or ["db.statement"]:
        span.set_attribute(name, command)
    families = sorted({found for arg in args[1:] if (found := keys.family_of(arg)) is not None})
    span.set_attribute(FAMILIES_ATTRIBUTE, families)
    if command in SCRIPT_COMMANDS and len(args) > 1:
        span.set_attribute(SCRIPT_ATTRIBUTE, str(args[1])[:40])
