"""TLS for the emulator: a throw-away local CA and a server certificate it signs.

MSAL and the service talk HTTPS only, so the emulator must too. The CA is new for
every run; clients trust it through the ``ca.pem`` file written to the state dir.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable
from pathlib import Path

import trustme

DEFAULT_NAMES = ("127.0.0.1", "::1", "localhost")


def make_server_context(state_dir: Path, extra_names: Iterable[str] = ()) -> ssl.SSLContext:
    """Create the CA, write ``state_dir/ca.pem`` and return the server's SSL context.

    ``extra_names`` adds subject alternative names, e.g. a container's host name.
    """
    ca = trustme.CA(organization_name="Graph emulator local CA")
    names = list(dict.fromkeys([*DEFAULT_NAMES, *extra_names]))
    leaf = ca.issue_cert(*names)
    ca_path = state_dir / "ca.pem"
    temporary = ca_path.with_name(f".ca.pem.{os.getpid()}.tmp")
    ca.cert_pem.write_to_path(str(temporary))
    os.replace(temporary, ca_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    leaf.configure_cert(context)
    return context
