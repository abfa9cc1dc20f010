"""The image's recipe without a Docker engine: the Dockerfile's own RUN steps build the
wheels and install them offline into a fresh virtual environment, then the exact
ENTRYPOINT starts as the image's user with the dev overlay's settings against a real
redis-server; /healthz, /readyz, /metrics and the HEALTHCHECK answer, and SIGTERM stops it
within the pod's grace period.

Each stage gets a directory standing in for its root filesystem; absolute paths in RUN
steps are mapped into it, and a bind mount (RUN --mount) becomes a symlink for that step.
User management (groupadd/useradd) cannot run on the host: it is checked, not run."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from local_stack.processes import free_port, wait_until
from local_stack.redis_server import RedisServer
from packaging.utils import canonicalize_name

from tests.deploy.tooling import DEPLOY, REPO, container_env, find, render
from tests.support.uv_lock import runtime_versions

pytestmark = pytest.mark.deploy

BUILD_TIMEOUT = 300
START_TIMEOUT = 30
NOT_RUN = {"groupadd", "useradd"}
# What python:3.11-slim (and `python -m venv`) holds before any RUN: not the lock's business.
BASE_IMAGE_PACKAGES = {"pip", "setuptools", "wheel"}
WORKLOAD_IDENTITY = {
    "AZURE_TENANT_ID": "2c1b3a4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    "AZURE_CLIENT_ID": "6e5d4c3b-2a19-4807-b6a5-948372615049",
    "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/",
    "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
}


# --- the Dockerfile ----------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    flags: dict[str, str] = field(default_factory=dict)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.arguments):
                key, _, value = pair.partition("=")
                env[key] = value
        return env


def parse_dockerfile(text: str) -> list[Stage]:
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue  # comments, also between continued lines, as Docker does
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line.strip())
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        while keyword in ("RUN", "COPY") and arguments.startswith("--"):
            flag, _, arguments = arguments.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
        if keyword == "FROM":
            words = arguments.split()
            stages.append(Stage(words[0], words[2] if len(words) == 3 else None, []))
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments.strip(), flags))
    return stages


def dockerfile() -> list[Stage]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def ignored(relative: str, patterns: list[str]) -> bool:
    """.dockerignore: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# --- a stage's root filesystem -----------------------------------------------------------


@dataclass
class FakeRoot:
    root: Path
    workdir: str = "/"

    def path(self, inside: str) -> Path:
        absolute = inside if inside.startswith("/") else f"{self.workdir.rstrip('/')}/{inside}"
        return self.root / absolute.lstrip("/")

    def map_paths(self, command: str) -> str:
        return re.sub(
            r"(^|[\s=])(/[^\s'\"]*)", lambda m: m.group(1) + str(self.path(m.group(2))), command
        )


def copy_into(source: Path, target: Path, patterns: list[str] | None, base: Path) -> None:
    """COPY of one source: a directory's contents, or a file, minus ignored paths."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(base).as_posix()
        if patterns is not None and ignored(relative, patterns):
            continue
        destination = target / file.relative_to(source) if source.is_dir() else target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, destination)


def run_steps(stage: Stage, fake: FakeRoot, roots: dict[str, FakeRoot], python: str) -> list[str]:
    """Run the stage's COPY/WORKDIR/RUN with `python`'s fresh venv as the stage's Python.
    Returns the commands that were not run (user management)."""
    venv = fake.path("/opt/venv")
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    environment = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    environment.update(stage.env())
    environment["PATH"] = f"{venv}/bin:{os.environ['PATH']}"
    patterns = dockerignore()
    not_run: list[str] = []
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            fake.workdir = instruction.arguments
            fake.path(".").mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            *sources, destination = instruction.arguments.split()
            origin = roots[instruction.flags["from"]] if "from" in instruction.flags else None
            for source in sources:
                if origin:
                    copy_into(origin.path(source), fake.path(destination), None, origin.root)
                else:
                    target = fake.path(destination)
                    if len(sources) > 1 or destination.endswith("/"):
                        target = target / Path(source).name
                    copy_into(REPO / source, target, patterns, REPO)
        elif instruction.keyword == "RUN":
            mounts = []
            if "mount" in instruction.flags:
                mount = dict(part.split("=", 1) for part in instruction.flags["mount"].split(","))
                assert mount.pop("type") == "bind", mount
                link = fake.path(mount["target"])
                link.symlink_to(roots[mount["from"]].path(mount["source"]))
                mounts.append(link)
            for command in instruction.arguments.split("&&"):
                command = command.strip()
                if command.split()[0] in NOT_RUN:
                    not_run.append(command)
                    continue
                fake.path(".").mkdir(parents=True, exist_ok=True)
                result = subprocess.run(
                    ["bash", "-c", fake.map_paths(command)],
                    cwd=fake.path("."),
                    env=environment,
                    capture_output=True,
                    text=True,
                    timeout=BUILD_TIMEOUT,
                )
                assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            for link in mounts:
                link.unlink()
    return not_run


# --- tests -------------------------------------------------------------------------------


def test_dockerfile_shape():
    build, final = dockerfile()
    assert build.name == "build"
    for stage in (build, final):
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base)
    runs = " && ".join(i.arguments for i in final.all("RUN"))
    for word in ("apt-get", "gcc", "build-essential"):
        assert word not in runs, f"no {word} in the final image"
    for stage in (build, final):
        for run in stage.all("RUN"):
            if "pip " in run.arguments:
                assert "--no-cache-dir" in run.arguments
    # The wheels reach the final stage through a bind mount, never as a layer.
    assert not final.all("COPY")
    # Every package comes from uv.lock's runtime set, hash-checked on download and on
    # install; the uv that exports it is the one pyproject.toml requires.
    builds = " && ".join(i.arguments for i in build.all("RUN"))
    export = re.search(r"uv export ([^&]*)", builds).group(1).split()
    assert {"--frozen", "--no-default-groups"} <= set(export), export
    assert not {"--group", "--all-groups", "--only-group"} & set(export), export
    assert "pip wheel --no-cache-dir --require-hashes" in builds
    assert "--require-hashes -r /wheels/requirements.txt" in runs
    assert "pip install --no-cache-dir --require-hashes -r uv-requirements.txt" in builds
    [user] = final.all("USER")
    uid = re.search(r"useradd [^&]*--uid (\d+)", runs).group(1)
    gid = re.search(r"groupadd [^&]*--gid (\d+)", runs).group(1)
    assert user.arguments == f"{uid}:{gid}" == "10001:10001"
    [entrypoint] = final.all("ENTRYPOINT")
    argv = json.loads(entrypoint.arguments)  # exec form: gunicorn is PID 1
    assert argv == ["gunicorn", "-c", "python:service.gunicorn_conf", "service.wsgi:app"]
    assert not final.all("CMD")
    [healthcheck] = final.all("HEALTHCHECK")
    assert json.loads(healthcheck.arguments.split(" CMD ", 1)[1])[0] == "python"
    assert final.env()["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_uv_is_pinned_once_with_hashes():
    """make and the image install uv from uv-requirements.txt, hash-checked; it must name the
    version pyproject.toml requires (uv refuses to run as another)."""
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]
    text = (REPO / "uv-requirements.txt").read_text()
    [pinned] = re.findall(r"^uv(==\S+) \\$", text, re.M)
    assert pinned == required["required-version"], (pinned, required["required-version"])
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 1
    makefile = (REPO / "Makefile").read_text()
    assert "--require-hashes -r $<" in makefile and "$(UV): uv-requirements.txt" in makefile


def test_dockerignore_keeps_only_what_the_build_copies():
    patterns = dockerignore()
    kept_files = ("pyproject.toml", "README.md", "uv.lock", "uv-requirements.txt")
    for kept in (*kept_files, "service/app.py", "service/domain/record.py"):
        assert not ignored(kept, patterns), kept
    for dropped in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/unit/test_config.py",
        "emulator/graph_emulator/app.py",
    ):
        assert ignored(dropped, patterns), dropped
    assert ignored("service/__pycache__/app.cpython-311.pyc", patterns)


def interpreter_for(uid: int | None) -> str:
    """A CPython 3.11 that the image's user can run (pyenv's may live under /root)."""
    candidates = [sys._base_executable, "/usr/local/bin/python3.11", "/usr/bin/python3.11"]
    probe = "import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 11)"
    for candidate in candidates:
        if not Path(candidate).exists():
            continue
        try:
            result = subprocess.run(
                [candidate, "-c", probe],
                user=uid,
                group=uid,
                extra_groups=[] if uid is not None else None,
                capture_output=True,
                timeout=30,
            )
        except PermissionError:  # a parent directory the user may not enter
            continue
        if result.returncode == 0:
            return candidate
    pytest.fail(f"no Python 3.11 with venv that UID {uid} may run among {candidates}")


@pytest.fixture
def fake_roots() -> Iterator[dict[str, FakeRoot]]:
    # Under /tmp rather than pytest's tmp_path, whose parents only root may enter.
    roots = {}
    for name in ("build", "final"):
        directory = Path(tempfile.mkdtemp(prefix=f"image-{name}-", dir="/tmp"))
        directory.chmod(0o755)
        roots[name] = FakeRoot(directory)
    yield roots
    for fake in roots.values():
        shutil.rmtree(fake.root, ignore_errors=True)


def test_the_image_recipe_installs_and_serves(fake_roots, tmp_path):
    build, final = dockerfile()
    uid = int(final.all("USER")[0].arguments.split(":")[0]) if os.geteuid() == 0 else None
    python = interpreter_for(uid)

    # Stage 1: wheels. Stage 2: offline install from them, into a fresh venv.
    run_steps(build, fake_roots["build"], fake_roots, python)
    wheels = list(fake_roots["build"].path("/wheels").glob("*.whl"))
    assert any(w.name.startswith("meeting_provisioning-") for w in wheels)
    not_run = run_steps(final, fake_roots["final"], fake_roots, python)
    assert [command.split()[0] for command in not_run] == ["groupadd", "useradd"]
    fake = fake_roots["final"]
    venv = fake.path("/opt/venv")
    assert not fake.path("/wheels").exists(), "the wheels must not stay in the image"
    # The product ships without its test double: no emulator module, and none of the
    # packages only the emulator needs.
    [site] = venv.glob("lib/python3.*/site-packages")
    assert (site / "service" / "app.py").is_file()
    assert not (site / "service" / "emulator").exists()
    assert not list(site.glob("graph_emulator*"))
    assert not list(site.glob("local_stack*")), "make run's stack is not part of the product"
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions(path=[str(site)])
        if canonicalize_name(d.metadata["Name"]) not in BASE_IMAGE_PACKAGES
    }
    assert "meeting-provisioning" in installed
    assert not installed.keys() & {"graph-emulator", "trustme", "jsonschema"}, sorted(installed)
    # Exactly uv.lock's runtime set at its versions: nothing more (no test tool, nothing
    # resolved on its own), nothing less, nothing at another version.
    # Markers are the image's Python's (python_full_version < '3.11.3' and the like).
    probe = (
        "import json; from packaging.markers import default_environment; "
        "print(json.dumps(default_environment()))"
    )
    markers = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, check=True, timeout=30
    )
    locked = runtime_versions(json.loads(markers.stdout))
    assert installed == locked, {
        "not in the lock": sorted(installed.keys() - locked.keys()),
        "missing": sorted(locked.keys() - installed.keys()),
        "other version": {
            name: (installed[name], locked[name])
            for name in installed.keys() & locked.keys()
            if installed[name] != locked[name]
        },
    }

    # The pod: the dev overlay's environment, what workload identity injects, the Secret.
    redis = RedisServer(tmp_path / "redis").start()
    try:
        docs = render(DEPLOY / "overlays" / "dev")
        pod_env = container_env(docs, lambda name, key: pytest.fail(f"dev needs no secret {name}"))
        environment = {
            "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(fake.path("/home/app")),  # useradd --no-create-home: does not exist
            "LANG": "C.UTF-8",
            **final.env(),
            **pod_env,
            **WORKLOAD_IDENTITY,
            "REDIS_URL": redis.url,
            "GUNICORN_BIND": f"127.0.0.1:{free_port()}",  # the image's 0.0.0.0:8080, on loopback
        }
        for name in ("PROMETHEUS_MULTIPROC_DIR", "CLIENTS_FILE", "AZURE_FEDERATED_TOKEN_FILE"):
            environment[name] = str(fake.path(environment[name]))
        write_pod_files(fake, environment, uid)
        before = snapshot(fake.root)
        run_container(final, fake, environment, uid, docs)
        written = {p for p in snapshot(fake.root) - before if not p.startswith("tmp/")}
        assert not written, f"the read-only root filesystem would refuse {sorted(written)}"
    finally:
        redis.stop()


def write_pod_files(fake: FakeRoot, environment: dict[str, str], uid: int | None) -> None:
    tmp = fake.path("/tmp")
    tmp.mkdir()
    tmp.chmod(0o1777)  # an emptyDir is world-writable
    clients = Path(environment["CLIENTS_FILE"])
    clients.parent.mkdir(parents=True)
    key_hash = hashlib.sha256(b"image-test-key").hexdigest()
    clients.write_text(
        json.dumps({"clients": [{"id": "b", "keySha256": key_hash, "organizers": ["*"]}]})
    )
    token = Path(environment["AZURE_FEDERATED_TOKEN_FILE"])
    token.parent.mkdir(parents=True)
    token.write_text("header.payload.signature")
    for path, mode in ((clients, 0o440), (token, 0o440)):
        path.chmod(mode)
    if uid is not None:  # as fsGroup does for the pod's Secret and token volumes
        for path in (clients, token):
            os.chown(path, 0, uid)


def snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def run_container(final: Stage, fake: FakeRoot, environment: dict, uid: int | None, docs) -> None:
    argv = json.loads(final.all("ENTRYPOINT")[0].arguments)
    executable = shutil.which(argv[0], path=environment["PATH"])
    assert executable, f"{argv[0]} is not installed in the image"
    assert executable.startswith(str(fake.root)), executable
    pod = find(docs, "Deployment", "meeting-provisioning")["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    delay = float(environment["PRE_STOP_DELAY_SECONDS"])
    log = fake.path("/tmp/container.log").open("wb")  # the container's stdout and stderr
    process = subprocess.Popen(
        [executable, *argv[1:]],
        cwd=fake.root,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        user=uid,
        group=uid,
        extra_groups=[] if uid is not None else None,
    )
    log.close()
    url = f"http://{environment['GUNICORN_BIND']}"

    def output() -> str:
        return fake.path("/tmp/container.log").read_text(errors="replace")

    def healthy() -> bool:
        assert process.poll() is None, f"gunicorn exited with {process.returncode}\n{output()}"
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, START_TIMEOUT, "the container's /healthz", output)
        # PID 1 of the container is gunicorn's master itself (no shell), as the image's user.
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert (
            command_line[1].endswith(b"/gunicorn")
            and b"python:service.gunicorn_conf" in command_line
        )
        if uid is not None:
            status = Path(f"/proc/{process.pid}/status").read_text()
            assert re.search(rf"^Uid:\s+{uid}\s", status, re.M), status
        ready = requests.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["redis"]["status"] == "ok"
        metrics = requests.get(f"{url}/metrics", timeout=5)
        assert "mps_http_requests_total" in metrics.text
        assert list(Path(environment["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"))

        [healthcheck] = final.all("HEALTHCHECK")
        check = json.loads(healthcheck.arguments.split(" CMD ", 1)[1])
        probe = subprocess.run(
            check, env=environment, capture_output=True, timeout=10, user=uid, group=uid
        )
        assert probe.returncode == 0, probe.stderr

        # SIGTERM, as the kubelet sends it: still serving during the pre-stop delay, then
        # gone well within the pod's grace period.
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(min(1.0, delay / 2))
        assert requests.get(f"{url}/healthz", timeout=2).status_code == 200
        assert process.wait(grace) == 0, output()
        took = time.monotonic() - stopped_at
        assert delay - 1 <= took < grace, f"stopped after {took:.1f} s"
        assert '"level": "ERROR"' not in output()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_fake_root_maps_absolute_paths_only():
    fake = FakeRoot(Path("/r"), "/src")
    assert fake.map_paths("pip wheel --wheel-dir /wheels .") == "pip wheel --wheel-dir /r/wheels ."
    assert fake.map_paths("pip install --find-links=/w /w/a-*.whl") == (
        "pip install --find-links=/r/w /r/w/a-*.whl"
    )
    assert fake.path("service") == Path("/r/src/service")
