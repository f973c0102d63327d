"""What operators run and read after an install: the ``helm test`` readyz hook (its script is
run against a local HTTP server) and NOTES.txt.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import DEFAULT, FULL, SINGLE_PORT, UNAUTHENTICATED, WORKER_ONLY
from tests.chart.helmlib import CHART_DIR, NAMESPACE, RELEASE, Helm, Render, env_of, one

# ---------------------------------------------------------------- helm test hook


def test_readyz_hook_pod(render: Render) -> None:
    manifests = render(DEFAULT)
    pod = one(manifests, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "hook-succeeded" in pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    receiver = one(manifests, "Deployment", "-receiver")["spec"]["template"]["spec"]
    assert container["image"] == receiver["containers"][0]["image"]
    assert container["command"][:2] == ["python", "-c"]
    assert "urllib.request" in container["command"][2]
    env = env_of(container)
    # The admin port, through the headless Services (they resolve to the pods' own ports).
    assert env["READYZ_URLS"]["value"].split() == [
        "http://fsb-fonestorm-bridge-receiver-metrics:9090/readyz",
        "http://fsb-fonestorm-bridge-worker:9090/readyz",
    ]


@pytest.mark.parametrize(
    ("values", "urls"),
    [
        (
            FULL,
            [
                "http://fsb-fonestorm-bridge-receiver-metrics:9091/readyz",
                "http://fsb-fonestorm-bridge-worker:9091/readyz",
            ],
        ),
        (
            SINGLE_PORT,
            [
                "http://fsb-fonestorm-bridge-receiver:80/readyz",
                "http://fsb-fonestorm-bridge-worker:8080/readyz",
            ],
        ),
    ],
    ids=["full", "single-port"],
)
def test_readyz_hook_urls(render: Render, values: Path, urls: list[str]) -> None:
    (container,) = one(render(values), "Pod")["spec"]["containers"]
    assert env_of(container)["READYZ_URLS"]["value"].split() == urls


def test_readyz_hook_reaches_the_worker_on_its_container_port(helm: Helm) -> None:
    """The worker's Service is headless: the URL must carry the pod's port, not the Service's."""
    manifests = helm.template(
        DEFAULT, set_values=["config.http.adminPort=null", "config.http.port=8081"]
    )
    (container,) = one(manifests, "Pod")["spec"]["containers"]
    assert env_of(container)["READYZ_URLS"]["value"].split() == [
        "http://fsb-fonestorm-bridge-receiver:80/readyz",
        "http://fsb-fonestorm-bridge-worker:8081/readyz",
    ]


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b'{"status": "ready"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def readyz_server() -> Iterator[tuple[str, type[_Readyz]]]:
    handler = type("Handler", (_Readyz,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}/readyz", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run_hook_script(render: Render, urls: str, timeout: str) -> subprocess.CompletedProcess[str]:
    (container,) = one(render(DEFAULT), "Pod")["spec"]["containers"]
    return subprocess.run(
        [sys.executable, "-c", container["command"][2]],
        env={"READYZ_URLS": urls, "READYZ_TIMEOUT": timeout, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_readyz_hook_script_passes_on_200(
    render: Render, readyz_server: tuple[str, type[_Readyz]]
) -> None:
    url, _ = readyz_server
    done = _run_hook_script(render, f"{url} {url}", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" 200 ") == 2


def test_readyz_hook_script_fails_on_503(
    render: Render, readyz_server: tuple[str, type[_Readyz]]
) -> None:
    url, handler = readyz_server
    handler.status = 503
    done = _run_hook_script(render, url, "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not ready" in done.stdout


def test_readyz_hook_script_fails_when_nothing_listens(render: Render) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _run_hook_script(render, f"http://127.0.0.1:{port}/readyz", "1")
    assert done.returncode == 1


# ---------------------------------------------------------------- NOTES.txt


def _notes(
    helm: Helm, tmp_path: Path, *values: Path, set_values: tuple[str, ...] | list[str] = ()
) -> str:
    """NOTES.txt rendered offline: `helm install --dry-run` would want a cluster, so a copy of
    the chart renders it through `tpl` into a ConfigMap."""
    chart = tmp_path / "fonestorm-bridge"
    shutil.copytree(CHART_DIR, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-under-test.txt")
    (chart / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}\n'
    )
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    args += ["--show-only", "templates/notes-under-test.yaml"]
    for path in values:
        args += ["--values", str(path)]
    for item in set_values:
        args += ["--set", item]
    return yaml.safe_load(helm.run(*args))["data"]["notes"]


def test_notes_explain_callback_registration(helm: Helm, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path / "full", FULL)
    assert "https://fonestorm-bridge.example.com/callbacks/calls" in notes
    assert "send_notify / receive_notify" in notes
    assert "fonestorm-bridge register-callbacks" in notes
    assert "every worker process registers them" in notes
    assert "Secret/fonestorm-bridge-callbacks" in notes
    assert (
        "Secrets come from Secret/fonestorm-bridge-callbacks, "
        "Secret/fonestorm-bridge-receiver-kafka, Secret/fonestorm-bridge-worker;"
    ) in notes
    assert "maxReplicas: 12" in notes
    assert "without basic auth" not in notes
    assert "scraping is refused" not in notes  # Prometheus is let in
    default = _notes(helm, tmp_path / "default", DEFAULT)
    assert "port-forward svc/fsb-fonestorm-bridge-receiver 8080:80" in default
    assert (
        "Callbacks need basic auth: the user/password from Secret/fsb-fonestorm-bridge-callbacks"
        in default
    )
    assert "without basic auth" not in default
    unauthenticated = _notes(helm, tmp_path / "unauthenticated", UNAUTHENTICATED)
    assert "WARNING: config.callbacks.allowUnauthenticated is true" in unauthenticated
    assert "without basic auth from anyone" in unauthenticated
    assert "url_username" not in unauthenticated
    assert "http://fonestorm-bridge.example.com/callbacks/calls" in unauthenticated
    worker_only = _notes(helm, tmp_path / "worker", WORKER_ONLY)
    assert "register-callbacks" not in worker_only
    assert "worker:   Deployment/fsb-fonestorm-bridge-worker" in worker_only


def test_notes_warn_when_the_worker_may_call_nowhere(helm: Helm, tmp_path: Path) -> None:
    warning = "WARNING: config.fonestorm.fonenumbers and config.worker.allowedDestinations"
    assert warning in _notes(helm, tmp_path / "default", DEFAULT)
    assert warning in _notes(helm, tmp_path / "worker", WORKER_ONLY)
    assert warning not in _notes(helm, tmp_path / "full", FULL)


def test_notes_register_from_the_worker_only(helm: Helm, tmp_path: Path) -> None:
    """Only the worker holds the FoneStorm token, so the registration runs in its pods."""
    for name, values in (("full", FULL), ("default", DEFAULT)):
        notes = _notes(helm, tmp_path / name, values)
        assert (
            "exec deploy/fsb-fonestorm-bridge-worker -- fonestorm-bridge register-callbacks"
        ) in notes, name
        assert "deploy/fsb-fonestorm-bridge-receiver" not in notes, name
    receiver_only = _notes(
        helm, tmp_path / "receiver-only", DEFAULT, set_values=["worker.enabled=false"]
    )
    assert "This release runs no worker" in receiver_only
    assert "exec deploy/" not in receiver_only


def test_notes_warn_when_the_network_policy_blocks_scraping(helm: Helm, tmp_path: Path) -> None:
    notes = _notes(
        helm, tmp_path / "scraped", DEFAULT, set_values=["metrics.serviceMonitor.enabled=true"]
    )
    assert "add your Prometheus\nto networkPolicy.workerIngressFrom" in notes
    assert "scraping is refused" not in _notes(helm, tmp_path / "default", DEFAULT)


def test_notes_tell_where_the_operations_endpoints_are(helm: Helm, tmp_path: Path) -> None:
    default = _notes(helm, tmp_path / "default", DEFAULT)
    assert "Service/fsb-fonestorm-bridge-receiver (port 80, callbacks only)" in default
    assert "/metrics are served only on port 9090" in default
    assert "headless Service/fsb-fonestorm-bridge-receiver-metrics" in default
    worker_only = _notes(helm, tmp_path / "worker", WORKER_ONLY)
    assert "only on port 9090" in worker_only
    assert "receiver-metrics" not in worker_only
    single = _notes(helm, tmp_path / "single", SINGLE_PORT)
    assert "Service/fsb-fonestorm-bridge-receiver (port 80)" in single
    assert "config.http.adminPort is null" in single
