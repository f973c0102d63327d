"""The real Helm CLI (built by ``scripts/helm-tools``) and helpers over rendered manifests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CHART_DIR = REPO_ROOT / "helm" / "fonestorm-bridge"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
TEST_VALUES = Path(__file__).resolve().parent / "values"
HELM_TOOLS = REPO_ROOT / "scripts" / "helm-tools"
HELM_VERSION = "v3.22.0"

RELEASE = "fsb"
NAMESPACE = "telephony"
#: Kubernetes versions the manifests are validated against: the oldest the chart supports
#: (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
MIN_KUBE = "1.25.0"
MAX_KUBE = "1.37.0"
#: ``lifecycle.preStopMode: sleepAction`` needs this one.
SLEEP_ACTION_KUBE = "1.30.0"

HELM_TIMEOUT = 60

Manifest = dict[str, Any]
#: The ``render`` fixture: ``render(*values_files, kube_version=...)`` → parsed manifests.
Render = Callable[..., list[Manifest]]


class HelmError(Exception):
    """Helm exited non-zero; the message carries its stderr."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} exited {returncode}:\n{stderr}{stdout}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def install_helm() -> str:
    """Path of the Helm binary: ``$BRIDGE_HELM`` if set, else build/reuse the cached one."""
    override = os.environ.get("BRIDGE_HELM")
    if override:
        return override
    done = subprocess.run(
        ["bash", str(HELM_TOOLS), "install"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=1800,
    )
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Helm:
    """Runs one Helm binary against the chart, offline."""

    binary: str

    def run(self, *args: str) -> str:
        env = {
            **os.environ,
            # Keep Helm away from the user's config, repositories and any kubeconfig.
            "HELM_CACHE_HOME": str(REPO_ROOT / ".local" / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(REPO_ROOT / ".local" / "helm" / "config"),
            "HELM_DATA_HOME": str(REPO_ROOT / ".local" / "helm" / "data"),
            "KUBECONFIG": os.devnull,
        }
        done = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            timeout=HELM_TIMEOUT,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise HelmError(args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def version(self) -> str:
        return self.run("version", "--template", "{{.Version}}").strip()

    def template_text(
        self,
        *values_files: Path,
        set_values: Sequence[str] = (),
        set_strings: Sequence[str] = (),
        kube_version: str = MAX_KUBE,
        extra: Sequence[str] = (),
    ) -> str:
        args = ["template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
        args += ["--kube-version", kube_version]
        for path in values_files:
            args += ["--values", str(path)]
        for item in set_values:
            args += ["--set", item]
        for item in set_strings:
            args += ["--set-string", item]
        return self.run(*args, *extra)

    def template(
        self,
        *values_files: Path,
        set_values: Sequence[str] = (),
        set_strings: Sequence[str] = (),
        kube_version: str = MAX_KUBE,
    ) -> list[Manifest]:
        text = self.template_text(
            *values_files, set_values=set_values, set_strings=set_strings, kube_version=kube_version
        )
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def lint(self, *values_files: Path, kube_version: str = MAX_KUBE) -> str:
        args = ["lint", str(CHART_DIR), "--strict", "--namespace", NAMESPACE]
        args += ["--kube-version", kube_version]
        for path in values_files:
            args += ["--values", str(path)]
        return self.run(*args)


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[kn(m) for m in found]}"
    return found[0]


def kn(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """Every pod spec: Deployments' templates and bare Pods (the ``helm test`` hook)."""
    for manifest in manifests:
        if manifest["kind"] == "Deployment":
            yield kn(manifest), manifest["spec"]["template"]["spec"]
        elif manifest["kind"] == "Pod":
            yield kn(manifest), manifest["spec"]


def containers(pod_spec: Manifest) -> list[Manifest]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {item["name"]: item for item in container.get("env", [])}


def component_labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "fonestorm-bridge",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": component,
    }
