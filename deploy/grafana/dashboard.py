"""Generate deploy/grafana/dashboards/proofpilot.json, the Grafana dashboard, with grafana-foundation-sdk.

Panels and PromQL come from proofpilot.telemetry.promql, so what Grafana shows is exactly what the tests
evaluate. Usage: `.venv/bin/python deploy/grafana/dashboard.py [OUT.json]`; the JSON is committed and a test
checks that regenerating it changes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from proofpilot.telemetry.promql import PANELS, VARIABLE_ALL, PanelSpec

DASHBOARD_UID = "proofpilot"
PROVISIONED_UID = "prometheus"  # uid as in provisioning/datasources/prometheus.yml: the variable's default
# every panel and variable query goes through the datasource variable (a lab can point it at any Prometheus)
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
MODEL_QUERY = "label_values(vllm:num_requests_running, model_name)"  # = the pilot's --model
INSTANCE_QUERY = 'label_values(vllm:num_requests_running{model_name=~"$model"}, instance)'


def _variables() -> list:
    """datasource, model and instance: the SDK's variable builders; "All" = `.*` (promql.VARIABLE_ALL)."""
    datasource = (
        dashboard.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(VariableOption(selected=True, text=PROVISIONED_UID, value=PROVISIONED_UID))
    )

    def query_var(name: str, label: str, query: str):
        return (
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(VARIABLE_ALL[f"${name}"])
            .current(VariableOption(selected=True, text="All", value="$__all"))
        )

    return [datasource, query_var("model", "Model", MODEL_QUERY),
            query_var("instance", "vLLM instance", INSTANCE_QUERY)]  # fmt: skip
OUT = Path(__file__).resolve().parent / "dashboards" / "proofpilot.json"


def _panel(spec: PanelSpec, panel_id: int) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    for ref, q in zip("ABCDEFGH", spec.queries, strict=False):
        panel = panel.with_target(
            prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref).datasource(DATASOURCE)
        )
    return panel


def build_dashboard() -> dict:
    """The dashboard model as plain JSON-ready data."""
    builder = (
        dashboard.Dashboard("proofpilot pilot run")
        .uid(DASHBOARD_UID)
        .tags(["proofpilot", "vllm"])
        .description("Per-decision latency, throughput, errors and cost of a proofpilot run; vLLM's queue.")
        .refresh("5s")
        .time("now-30m", "now")
        .timezone("browser")
        .editable()
    )
    for variable in _variables():
        builder = builder.with_variable(variable)
    row = None
    panel_id = 0
    for spec in PANELS:
        if spec.row != row:
            row = spec.row
            panel_id += 1
            builder = builder.with_row(dashboard.Row(row).id(panel_id))
        panel_id += 1
        builder = builder.with_panel(_panel(spec, panel_id))
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def render() -> str:
    """The dashboard JSON text exactly as committed."""
    return json.dumps(build_dashboard(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
