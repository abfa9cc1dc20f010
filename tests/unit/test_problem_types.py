"""One table of problem types: the classes in service.foundation.errors. The app, gunicorn's own
answers, the proxy's and the README all use those slugs and titles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.foundation import errors
from service.web import gunicorn_errors, problems

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PROXY_TEMPLATE = REPO / "deploy" / "base" / "proxy" / "nginx.conf.template"
# Bases that are never raised themselves: their subclasses name the problem.
ABSTRACT = {errors.GraphError, errors.Unavailable}


def problem_classes() -> list[type[errors.ServiceError]]:
    found, pending = [], [errors.ServiceError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return [kind for kind in found if kind not in ABSTRACT]


def test_each_slug_names_one_status_and_title():
    seen: dict[str, tuple[int, str]] = {}
    for kind in problem_classes():
        assert seen.setdefault(kind.slug, (kind.status, kind.title)) == (kind.status, kind.title)
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", kind.slug), kind.slug


def test_werkzeug_statuses_map_to_their_classes():
    for status, kind in problems.HTTP_PROBLEMS.items():
        assert kind.status == status


def test_gunicorns_answers_use_the_classes():
    for status, (kind, _) in gunicorn_errors.PROBLEMS.items():
        assert kind.status == status
        answer = gunicorn_errors.problem_answer(status, "Reason", "message")
        assert f'"type": "{errors.TYPE_PREFIX}{kind.slug}"'.encode() in answer
        assert f'"title": "{kind.title}"'.encode() in answer


def proxy_map(variable: str) -> dict[str, str]:
    text = PROXY_TEMPLATE.read_text()
    block = re.search(r"map \$status \$" + variable + r" \{(.*?)\n    \}", text, re.S)
    assert block, variable
    entries = re.findall(r'^\s+(\d+|default)\s+"?(.*?)"?;$', block.group(1), re.M)
    return dict(entries)


def test_the_proxys_answers_use_the_classes():
    by_slug = {kind.slug: kind for kind in problem_classes()}
    slugs, titles = proxy_map("problem_slug"), proxy_map("problem_title")
    assert set(slugs) == set(titles)
    for status, slug in slugs.items():
        kind = by_slug[slug]
        assert titles[status] == kind.title, status
        if status != "default":
            assert int(status) == kind.status, status
    assert slugs["default"] == errors.ServiceError.slug
    assert f'"type": "{errors.TYPE_PREFIX}$problem_slug"' in PROXY_TEMPLATE.read_text()


def test_the_readme_lists_every_problem_type():
    readme = (REPO / "README.md").read_text()
    listed = readme.split("Problem `type`s are", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"`([a-z-]+)`", listed)) == {k.slug for k in problem_classes()}
