"""The local stack: what `make run` and the tests start on a developer's machine.

One home for starting each part on loopback: free ports and bounded waiting
(`local_stack.processes`), redis-server (`local_stack.redis_server`), the Graph emulator
from a config (`local_stack.emulator`), nginx from the proxy's one template
(`local_stack.proxy`), the service under gunicorn (`local_stack.api_server`), the callers'
file (`local_stack.clients`), and `make run` itself (`python -m local_stack`,
`local_stack.run`).

It ships with the emulator's distribution, not the service's: the image holds none of it.
It serves the service installed beside it (`make install` installs both).
"""
