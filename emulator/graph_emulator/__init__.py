"""A local emulator of Entra ID and Microsoft Graph onlineMeetings (createOrGet, and GET,
PATCH and DELETE of one meeting).

Run it with ``python -m graph_emulator --config FILE --state-dir DIR``; build it in
process with ``create_app``. See ``__main__`` for the command line, ``admin`` for the
fault-injection API, and ``config`` for the configuration file.
"""

from .app import create_app

__all__ = ["create_app"]
