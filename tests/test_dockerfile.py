"""Docker cannot run here, so run the image's entrypoint with the image's environment in this venv.

The Dockerfile is parsed for its runtime ENV, ENTRYPOINT, CMD and HEALTHCHECK; container paths are
mapped to the repo (``/app/config`` -> ``config/``) and the port to a free one; then the daemon
must come up, pass the HEALTHCHECK command, and exit 0 on SIGTERM within 10 s.
"""

import json
import re
import shlex
import subprocess
import sys

import pytest

from tests.daemon_process import REPO, DaemonProcess, free_port
from vault.api.config import hash_token

pytestmark = pytest.mark.slow

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions(stage: str = "runtime") -> list[tuple[str, str]]:
    """(INSTRUCTION, argument) pairs of one build stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
        elif current == stage:
            out.append((word.upper(), rest.strip()))
    return out


def env_of(stage_instructions) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage_instructions:
        if word == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def test_runtime_image_shape():
    ins = instructions()
    words = [w for w, _ in ins]
    assert "USER" in words and dict(ins)["USER"] != "root"
    assert json.loads(dict(ins)["ENTRYPOINT"])[:2] == ["tini", "--"]  # an init forwards SIGTERM
    env = env_of(ins)
    assert env["YIELDVAULT_LISTEN"].startswith("0.0.0.0:")
    assert DOCKERFILE.count("FROM python:3.11-slim") == 2


def test_entrypoint_runs_healthcheck_passes_and_sigterm_exits_zero(tmp_path):
    ins = instructions()
    env = env_of(ins)
    entrypoint = json.loads(dict(ins)["ENTRYPOINT"])
    cmd = json.loads(dict(ins)["CMD"])
    healthcheck = dict(ins)["HEALTHCHECK"]
    argv = entrypoint[2:] + cmd  # tini is PID 1 in the image; here the daemon is our child directly
    assert argv[0] == "yieldvault"

    data_dir = tmp_path / "data"
    daemon_env = {
        key: value.replace("/app/config", str(REPO / "config")).replace("/data", str(data_dir))
        for key, value in env.items()
        if key.startswith("YIELDVAULT_")
    }
    port = free_port()
    daemon_env["YIELDVAULT_LISTEN"] = daemon_env["YIELDVAULT_LISTEN"].replace(":9500", f":{port}")
    # 0.0.0.0 needs a token (docker-compose.yml passes YIELDVAULT_API__TOKENS through)
    token = {
        "label": "compose",
        "scope": "read",
        "sha256": hash_token("container-token-0123456789"),
    }
    daemon_env["YIELDVAULT_API__TOKENS"] = json.dumps([token])
    executable = (
        str(REPO / ".venv" / "bin" / "yieldvault")
        if (REPO / ".venv" / "bin" / "yieldvault").exists()
        else None
    )
    command = [
        executable or sys.executable,
        *(argv[1:] if executable else ["-m", "vault.cli", *argv[1:]]),
    ]
    daemon = DaemonProcess(data_dir, env=daemon_env, command=command, port=port)
    try:
        daemon.wait_until(
            lambda: daemon.get("/healthz")[0] == 200, 30, "/healthz on the image's listen address"
        )
        check = json.loads(healthcheck.split("CMD", 1)[1].strip())
        check = [part.replace("9500", str(port)) for part in check]
        check[0] = sys.executable
        assert subprocess.run(check, timeout=10).returncode == 0
        assert (data_dir / "ledger.sqlite3").exists()  # YIELDVAULT_DATA_DIR was honoured
    finally:
        code, seconds = daemon.terminate()
    assert code == 0, daemon.logs()[-3000:]
    assert seconds <= 10


def test_the_build_stage_compiles_the_numba_kernels_where_the_runtime_reads_them():
    """The runtime user cannot write the installed package's ``__pycache__``: without this step the
    daemon would compile the PWL fit's kernels at every start."""
    build = [rest for word, rest in instructions("build") if word == "RUN"]
    install = next(i for i, r in enumerate(build) if "pip install --no-deps ." in r)
    warm = [i for i, r in enumerate(build) if "import optimizer.pwl_kernel" in r]
    assert warm and warm[0] > install, build
    code = next(r for r in build if "import optimizer.pwl_kernel" in r)
    assert code.startswith("/opt/venv/bin/python -c ")
    ran = subprocess.run(
        [sys.executable, "-c", shlex.split(code)[2]], cwd=REPO, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr


def test_the_build_stage_copies_every_package_the_project_installs():
    """A package left out of the image's COPY lines installs nothing and the daemon dies at its
    first import of it (guard/ and backtest/ were missing once): every top-level package that
    pyproject's ``[tool.setuptools.packages.find] include`` names is copied."""
    import tomllib

    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {p.rstrip("*") for p in include["packages"]["find"]["include"]}
    copied = {
        rest.split()[0] for word, rest in instructions("build") if word == "COPY" and " ./" in rest
    }
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    assert all((REPO / p / "__init__.py").exists() for p in packages)
