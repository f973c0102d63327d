"""The Grafana dashboard (dashboards/fonestorm-bridge.json): shipped as a ConfigMap for Grafana's
dashboard sidecar only when `grafanaDashboard.enabled`, valid dashboard JSON, and PromQL that
queries only metrics and labels the bridge exports, scoped to the dashboard's variables.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from bridge.obs.loop_metrics import LoopCounter, LoopHistogram
from bridge.obs.metrics import Metrics
from tests.chart.chartlib import ALL_IDS, ALL_VALUES, CHART_LABEL, DEFAULT, FULL, WORKER_ONLY
from tests.chart.helmlib import (
    CHART_DIR,
    MAX_KUBE,
    MIN_KUBE,
    NAMESPACE,
    RELEASE,
    Helm,
    HelmError,
    Manifest,
    Render,
    kn,
    of_kind,
    one,
)

DASHBOARD_FILE = CHART_DIR / "dashboards" / "fonestorm-bridge.json"
DATA_KEY = "fonestorm-bridge.json"
ENABLED = ["grafanaDashboard.enabled=true"]
ENABLED_ARGS = ["--set", *ENABLED]
#: The panel (and target) datasource: the dashboard's `datasource` variable.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Matchers every series selector of a panel carries: the dashboard's variables.
SCOPE = {("namespace", "=", "$namespace"), ("job", "=~", "$job"), ("pod", "=~", "$pod")}
#: Labels the Prometheus Operator puts on every series a ServiceMonitor scrapes (besides its
#: podTargetLabels, taken from the rendered ServiceMonitor).
OPERATOR_TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "endpoint", "container"}
#: Unlabelled gauges only the worker sets: every bridge process exports them (receivers as 0),
#: so the dashboard must select the worker pods to read them.
WORKER_GAUGES = {
    "bridge_worker_ready",
    "bridge_commands_in_flight",
    "bridge_command_lag",
    "bridge_ledger_entries",
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}

SELECTOR = re.compile(r"\b(bridge_[a-z_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
RANGE_FUNCTION = re.compile(r"\b(rate|irate|increase)\(\s*(bridge_[a-z_]+)")
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Series:
    """A series name the bridge exports: a family's sample name, its type and labels."""

    family: str
    type: str
    labels: frozenset[str]


def exported_series() -> dict[str, Series]:
    """Every sample name of every metric the bridge exports (`_total`, `_bucket`...)."""
    found: dict[str, Series] = {}
    for metric in vars(Metrics()).values():
        if not isinstance(metric, MetricWrapperBase | LoopCounter | LoopHistogram):
            continue
        (family,) = metric.describe()
        names = metric.labelnames if isinstance(metric, LoopCounter | LoopHistogram) else None
        labels = frozenset(names if names is not None else metric._labelnames)
        for suffix in SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            found[family.name + suffix] = Series(family.name, family.type, labels | extra)
    return found


def dashboard_file() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard["panels"]) if p["type"] != "row"]


def panel_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every query of every panel."""
    for panel in query_panels(dashboard):
        for target in panel["targets"]:
            yield panel["title"], target


def variable_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield variable["name"], query["query"] if isinstance(query, dict) else query


def target_labels(manifests: list[Manifest]) -> set[str]:
    """Labels the chart's ServiceMonitor gives every scraped series."""
    monitor = one(manifests, "ServiceMonitor")
    copied = {re.sub(r"[^A-Za-z0-9_]", "_", label) for label in monitor["spec"]["podTargetLabels"]}
    return OPERATOR_TARGET_LABELS | copied


def dashboard_configmaps(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in of_kind(manifests, "ConfigMap") if DATA_KEY in (m.get("data") or {})]


@pytest.fixture(scope="module")
def enabled(helm: Helm) -> list[Manifest]:
    return helm.template(DEFAULT, set_values=ENABLED)


@pytest.fixture(scope="module")
def shipped(enabled: list[Manifest]) -> dict[str, Any]:
    """The dashboard as the rendered ConfigMap carries it."""
    (configmap,) = dashboard_configmaps(enabled)
    return json.loads(configmap["data"][DATA_KEY])


# ---------------------------------------------------------------- the ConfigMap


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_not_rendered_by_default(render: Render, values: Path) -> None:
    manifests = render(values)
    assert not dashboard_configmaps(manifests)
    assert not [m for m in manifests if m["metadata"]["name"].endswith("-dashboard")]


def test_rendered_when_enabled_for_the_sidecar(enabled: list[Manifest]) -> None:
    (configmap,) = dashboard_configmaps(enabled)
    meta = configmap["metadata"]
    assert meta["name"] == "fsb-fonestorm-bridge-dashboard"
    assert meta["namespace"] == NAMESPACE
    # kube-prometheus-stack's sidecar defaults: label grafana_dashboard, value "1".
    assert meta["labels"]["grafana_dashboard"] == "1"
    assert meta["labels"]["app.kubernetes.io/name"] == "fonestorm-bridge"
    assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert meta["labels"]["helm.sh/chart"] == CHART_LABEL
    assert "annotations" not in meta
    assert list(configmap["data"]) == [DATA_KEY]
    # The file, as is (the block scalar drops only the final newline).
    assert configmap["data"][DATA_KEY] == DASHBOARD_FILE.read_text(encoding="utf-8").rstrip("\n")
    # The bridge's own ConfigMap is still there, unchanged.
    settings = one(enabled, "ConfigMap", "fsb-fonestorm-bridge")
    assert "BRIDGE_KAFKA__BOOTSTRAP_SERVERS" in settings["data"]


@pytest.mark.parametrize("kube_version", [MIN_KUBE, MAX_KUBE])
def test_configmap_matches_kubernetes_schemas(helm: Helm, kube_version: str) -> None:
    manifests = helm.template(DEFAULT, set_values=ENABLED, kube_version=kube_version)
    (configmap,) = dashboard_configmaps(manifests)
    kubernetes_validate.validate(configmap, kube_version, strict=True)
    # Far below the 1 MiB a ConfigMap may hold (and the 256 KiB of kubectl's apply annotation).
    assert len(configmap["data"][DATA_KEY].encode()) < 200_000


def test_lint_strict_with_dashboard(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "dashboard-values.yaml"
    values.write_text(yaml.safe_dump({"grafanaDashboard": {"enabled": True}}))
    for base in (DEFAULT, FULL, WORKER_ONLY):
        out = helm.lint(base, values)
        assert "1 chart(s) linted, 0 chart(s) failed" in out, out
        assert "[WARNING]" not in out, out


def test_custom_labels_namespace_and_annotations(helm: Helm) -> None:
    manifests = helm.template(
        DEFAULT,
        set_values=[
            *ENABLED,
            "commonLabels.team=voice",
            "grafanaDashboard.label=dashboards",
            "grafanaDashboard.labels.tier=ops",
            # The sidecar label wins over the same key in `labels`.
            "grafanaDashboard.labels.dashboards=ignored",
            "grafanaDashboard.annotations.grafana_folder=Telephony",
            "grafanaDashboard.namespace=monitoring",
        ],
        set_strings=["grafanaDashboard.labelValue=fonestorm"],
    )
    (configmap,) = dashboard_configmaps(manifests)
    meta = configmap["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["dashboards"] == "fonestorm"
    assert "grafana_dashboard" not in meta["labels"]
    assert meta["labels"]["tier"] == "ops"
    assert meta["labels"]["team"] == "voice"
    assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert meta["annotations"] == {"grafana_folder": "Telephony"}
    # Only the dashboard moves: everything else stays in the release namespace.
    others = [m for m in manifests if m is not configmap]
    assert all(m["metadata"]["namespace"] == NAMESPACE for m in others), [
        kn(m) for m in others if m["metadata"]["namespace"] != NAMESPACE
    ]


def test_packaged_with_the_chart(helm: Helm, tmp_path: Path) -> None:
    helm.run("package", str(CHART_DIR), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("fonestorm-bridge-*.tgz")
    with tarfile.open(archive) as tar:
        assert "fonestorm-bridge/dashboards/fonestorm-bridge.json" in tar.getnames()


BAD_VALUES = {
    "unknown key": ["--set", "grafanaDashboard.folder=Telephony"],
    "enabled as a string": ["--set-string", "grafanaDashboard.enabled=yes"],
    "label value as a number": ["--set", "grafanaDashboard.labelValue=1"],
    "empty label": ["--set", "grafanaDashboard.label="],
    "bad label value": ["--set", "grafanaDashboard.labelValue=a b"],
    "bad namespace": ["--set", "grafanaDashboard.namespace=Monitoring"],
    "chart label as the sidecar label": ["--set", "grafanaDashboard.label=helm.sh/chart"],
    "overriding a chart label": [
        "--set",
        "grafanaDashboard.labels.app\\.kubernetes\\.io/instance=x",
    ],
    "annotation not a string": ["--set", "grafanaDashboard.annotations.grafana_folder=1"],
}


@pytest.mark.parametrize("args", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects_bad_values(helm: Helm, args: list[str]) -> None:
    with pytest.raises(HelmError) as failure:
        helm.run(
            "template", RELEASE, str(CHART_DIR), "--values", str(DEFAULT), *ENABLED_ARGS, *args
        )
    assert "values don't meet the specifications of the schema" in failure.value.stderr, (
        failure.value.stderr
    )


# ---------------------------------------------------------------- the dashboard JSON


def test_shipped_dashboard_is_the_file(shipped: dict[str, Any]) -> None:
    assert shipped == dashboard_file()


def test_dashboard_identity_and_variables(shipped: dict[str, Any]) -> None:
    assert shipped["uid"] == "fonestorm-bridge"
    assert shipped["title"] == "FoneStorm bridge"
    assert 36 <= shipped["schemaVersion"] <= 41
    # Provisioned dashboards must not pin a database id.
    assert shipped.get("id") is None
    variables = {v["name"]: v for v in shipped["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "job", "pod"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "job", "pod"):
        variable = variables[name]
        assert variable["type"] == "query", name
        assert variable["datasource"] == DATASOURCE, name
    assert not variables["namespace"]["multi"]
    for name in ("job", "pod"):
        assert variables[name]["multi"], name
        assert variables[name]["includeAll"], name
    # Each variable narrows the next one.
    queries = dict(variable_queries(shipped))
    assert "$namespace" in queries["job"]
    assert {"$namespace", "$job"} <= set(re.findall(r"\$\w+", queries["pod"]))


def test_every_panel_has_a_title_targets_and_the_datasource_variable(
    shipped: dict[str, Any],
) -> None:
    panels = query_panels(shipped)
    assert len(panels) >= 12
    ids = [p["id"] for p in all_panels(shipped["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    for panel in panels:
        title = panel.get("title")
        assert title, panel["id"]
        assert panel["type"] in {"timeseries", "stat", "gauge", "bargauge", "table"}, title
        assert panel["datasource"] == DATASOURCE, title
        assert panel["targets"], title
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip(), title
        grid = panel["gridPos"]
        assert min(grid["w"], grid["h"], grid["x"] + 1) > 0, title
        assert grid["x"] + grid["w"] <= 24, title
    for panel in all_panels(shipped["panels"]):
        if panel["type"] == "row":
            assert panel["title"], panel["id"]
            assert "targets" not in panel, panel["title"]


def test_panels_do_not_overlap(shipped: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in shipped["panels"]:  # top level: collapsed rows keep their own layout
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_dashboard_covers_the_issue(shipped: dict[str, Any]) -> None:
    """The panels the dashboard was asked for, found by the metric they query."""
    wanted = {
        "callbacks by outcome": r"by \(outcome\) \(rate\(bridge_callbacks_total",
        "callback latency": r"histogram_quantile\(0\.99, sum by \(le\) "
        r"\(rate\(bridge_callback_duration_seconds_bucket",
        "produce latency by topic": r"by \(topic, le\) "
        r"\(rate\(bridge_produce_duration_seconds_bucket",
        "produce errors": r"bridge_produce_errors_total",
        "dead letters by source and reason": r"by \(source, reason\) \(rate\(bridge_dead_letters",
        "kafka ready": r"bridge_kafka_ready",
        "brokers unreachable": r"by \(node_id\) \(1 - bridge_kafka_broker_reachable",
        "worker ready": r"bridge_worker_ready",
        "unauthenticated": r"bridge_callbacks_unauthenticated",
        "commands by status": r"by \(status\) \(rate\(bridge_commands_total",
        "command duration": r"bridge_command_duration_seconds_bucket",
        "in flight": r"bridge_commands_in_flight",
        "command lag": r"bridge_command_lag",
        "fonestorm errors": r'bridge_fonestorm_requests_total\{[^}]*outcome!="ok"',
        "ledger entries": r"bridge_ledger_entries",
    }
    exprs = [target["expr"] for _, target in panel_exprs(shipped)]
    for what, pattern in wanted.items():
        assert any(re.search(pattern, expr) for expr in exprs), what
    stats = {p["title"] for p in query_panels(shipped) if p["type"] == "stat"}
    assert {"Kafka connected", "Workers consuming", "Callback auth"} <= stats


# ---------------------------------------------------------------- PromQL


def test_promql_uses_only_metrics_the_bridge_exports(shipped: dict[str, Any]) -> None:
    exported = exported_series()
    used: set[str] = set()
    queries = [(title, target["expr"]) for title, target in panel_exprs(shipped)]
    queries += [(f"${name}", query) for name, query in variable_queries(shipped)]
    for where, expr in queries:
        names = {match.group(1) for match in SELECTOR.finditer(expr)}
        assert names, (where, expr)
        assert names <= set(exported), (where, names - set(exported))
        used |= names
    # ... and shows every one of them: a new metric needs a panel.
    families = {series.family for series in exported.values()}
    shown = {exported[name].family for name in used}
    assert shown == families, f"metrics without a panel: {sorted(families - shown)}"


def test_promql_functions_fit_the_metric_types(shipped: dict[str, Any]) -> None:
    exported = exported_series()
    for title, target in panel_exprs(shipped):
        expr = target["expr"]
        for function, name in RANGE_FUNCTION.findall(expr):
            assert exported[name].type in {"counter", "histogram"}, (title, function, name)
            assert re.search(rf"{name}\{{[^}}]*\}}\[\$__(rate_interval|range)\]", expr), (
                title,
                f"{function}({name}) over $__rate_interval or $__range",
            )
        for name in {m.group(1) for m in SELECTOR.finditer(expr)}:
            if exported[name].type == "counter":
                assert re.search(rf"\b(rate|irate|increase)\(\s*{name}\b", expr), (title, name)
        for quantile in re.finditer(r"histogram_quantile\(([^,]+),(.*)", expr):
            assert 0 < float(quantile.group(1)) < 1, title
            assert "_bucket{" in quantile.group(2), title
            assert "le" in {
                label.strip()
                for group in GROUPING.findall(quantile.group(2))
                for label in group.split(",")
            }, (title, "aggregate the buckets by le")


def test_promql_is_scoped_to_the_dashboard_variables(shipped: dict[str, Any]) -> None:
    for title, target in panel_exprs(shipped):
        for match in SELECTOR.finditer(target["expr"]):
            name, selector = match.group(1), match.group(2)
            assert selector, (title, name)
            matchers = set(MATCHER.findall(selector))
            assert matchers >= SCOPE, (title, name, SCOPE - matchers)
            if name in WORKER_GAUGES:
                assert ("app_kubernetes_io_component", "=", "worker") in matchers, (title, name)


def test_promql_labels_exist(render: Render, shipped: dict[str, Any]) -> None:
    """Matchers, groupings and legends only name labels the series have: the metric's own
    ones and those the chart's ServiceMonitor adds (namespace, job, pod, component...)."""
    exported = exported_series()
    scraped = target_labels(render(FULL))
    assert "app_kubernetes_io_component" in scraped
    for title, target in panel_exprs(shipped):
        expr = target["expr"]
        available = set(scraped)
        for match in SELECTOR.finditer(expr):
            series_labels = exported[match.group(1)].labels | scraped
            available |= series_labels
            for label, _, _ in MATCHER.findall(match.group(2) or ""):
                assert label in series_labels, (title, match.group(1), label)
        grouped = {
            label.strip() for group in GROUPING.findall(expr) for label in group.split(",")
        } - {""}
        assert grouped <= available, (title, grouped - available)
        legend = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
        if grouped:
            # Aggregated series keep only the grouping labels.
            assert legend <= grouped, (title, legend - grouped)
        else:
            assert legend <= available, (title, legend - available)
