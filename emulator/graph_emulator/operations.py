"""The operations the emulator serves, named once: stats, faults, logs and the app's
request handling all use these names."""

from __future__ import annotations

ENTRA_OPERATIONS = frozenset({"discovery", "keys", "token"})
GRAPH_OPERATIONS = frozenset({"createOrGet", "getMeeting", "patchMeeting", "deleteMeeting"})
OPERATIONS = ENTRA_OPERATIONS | GRAPH_OPERATIONS

# The Flask endpoint that serves each operation.
ENDPOINTS = {
    "identity.discovery": "discovery",
    "identity.keys": "keys",
    "identity.token": "token",
    "graph.create_or_get": "createOrGet",
    "graph.get_meeting": "getMeeting",
    "graph.update_meeting": "patchMeeting",
    "graph.delete_meeting": "deleteMeeting",
}

# The fault targets that reach each operation: its own name, "graph" for every Graph
# operation, and "any".
OPERATION_TARGETS: dict[str, frozenset[str]] = {
    operation: frozenset(
        {operation, "any"} | ({"graph"} if operation in GRAPH_OPERATIONS else set())
    )
    for operation in OPERATIONS
}
TARGETS = frozenset().union(*OPERATION_TARGETS.values())
