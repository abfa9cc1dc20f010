"""Whether this instance is shutting down, shared by the gunicorn master and its workers.

On SIGTERM the master flips the flag and keeps serving for PRE_STOP_DELAY_SECONDS while
/readyz answers 503, so load balancers stop sending traffic before the listening socket
closes (see service.gunicorn_conf). The flag lives in anonymous shared memory created
when the master imports this module, before it forks the workers, so every worker reads
the master's value without a file, a pipe or Redis.
"""

from __future__ import annotations

from multiprocessing.sharedctypes import RawValue

_flag = RawValue("b", 0)


def start() -> None:
    _flag.value = 1


def is_draining() -> bool:
    return bool(_flag.value)
