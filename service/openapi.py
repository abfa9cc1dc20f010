"""Print the OpenAPI document generated from the code: `python -m service.openapi`."""

from __future__ import annotations

import sys

from flask import Flask

from service.app import register_api


def generate() -> str:
    return str(register_api(Flask("service")).spec.to_yaml())


if __name__ == "__main__":
    sys.stdout.write(generate())
