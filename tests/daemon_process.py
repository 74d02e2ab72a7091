"""Start and stop `yieldvault run` as a real subprocess on ephemeral ports, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent

FAST_SCHEDULE = {
    "YIELDVAULT_SCHEDULE__POLL_INTERVAL_SECONDS": "0.5",
    "YIELDVAULT_SCHEDULE__REBALANCE_INTERVAL_SECONDS": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        args: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        command: list[str] | None = None,
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"daemon-{self.port}.log"
        full_env = {**os.environ, **FAST_SCHEDULE, **(env or {})}
        cmd = command or [
            sys.executable,
            "-m",
            "vault.cli",
            "run",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(data_dir),
            *(args or []),
        ]
        # the log outlives this call: the subprocess writes it until terminate() or kill() closes it
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> dict:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        _, body = self.get("/metrics")
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def wait_until(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode} while waiting for {what}:\n{self.logs()}"
                )
            try:
                value = predicate()
                if value:
                    return value
            except (OSError, AssertionError, ValueError) as exc:
                last_error = exc
            time.sleep(0.25)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what} (last error: {last_error}):\n{self.logs()[-4000:]}"
        )

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        return code, time.monotonic() - start

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._log.closed:
            self._log.close()
