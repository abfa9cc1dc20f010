"""What every problem+json answer of the API must look like."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == f"urn:meeting-provisioning:problem:{slug}"
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    assert problem["requestId"] == response.headers["X-Request-ID"]
    return problem
