"""The Graph contract for tests, through the emulator's own validator (one validator for
both: what the emulator accepts and what the tests check are the same rules).

The emulator ships a verbatim copy of ``shared/graph-contract`` (``CONTRACT_DIR``, beside
the repository, or ``GRAPH_CONTRACT_DIR``); tests/emulator/test_units.py proves the copy
is identical. ``validator(entrypoint, version)`` is a cached Draft 2020-12 validator for
one of the contract's ``x-validation-entrypoints``: ``createOrGetRequestBody``,
``onlineMeeting``, ``onlineMeetingCollection`` or ``errorBody``::

    validator("onlineMeeting").validate(response.json())
    validator("createOrGetRequestBody", "beta").validate(body)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from graph_emulator import schema

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_DIR = Path(
    os.environ.get("GRAPH_CONTRACT_DIR") or REPO_ROOT.parent / "shared" / "graph-contract"
)


def document(version: str = "v1.0") -> dict[str, Any]:
    """The whole OpenAPI document for a version."""
    return schema.contract_document(version)


def validator(entrypoint: str, version: str = "v1.0") -> Any:
    return schema.validator(entrypoint, version)
