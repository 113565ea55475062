"""The charts of report.html, built with plotly from the report dict (one figure per section that reads better
as a picture). A chart with no data is not drawn: `figures` leaves it out and the page says why in words."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

__all__ = ["charts", "figures"]

VARIANT_COLORS = {"mandated": "#b3261e", "incentivized": "#e08a1e", "control": "#5b7bb5"}
SCORE_COLORS = ["#1b7f3b", "#7fb069", "#e6c229", "#f17105", "#d11149", "#6a0f49"]
_VARIANTS = ("mandated", "incentivized", "control")


def _bars_with_ci(rows: list[dict[str, Any]], x_of: Any, xs: list[str]) -> list[Any]:
    """One bar trace per variant: MR % with asymmetric 95% CI whiskers, at the x positions `xs`."""
    import plotly.graph_objects as go

    traces = []
    for variant in _VARIANTS:
        cells = {x_of(r): r for r in rows if r["variant"] == variant and r.get("mr") is not None}
        if not cells:
            continue
        ys = [100 * cells[x]["mr"] if x in cells else None for x in xs]
        ci = [cells[x].get("mr_ci") if x in cells else None for x in xs]
        lo = [(y - 100 * c[0]) if y is not None and c else 0 for y, c in zip(ys, ci, strict=True)]
        hi = [(100 * c[1] - y) if y is not None and c else 0 for y, c in zip(ys, ci, strict=True)]
        traces.append(go.Bar(name=variant, x=xs, y=ys, marker_color=VARIANT_COLORS[variant],
                             error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}))  # fmt: skip
    return traces


def _heatmap(rep: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    models = rep["models"]
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rep["by_scenario"]:
        if r["variant"] in ("mandated", "incentivized") and r["n_scored"]:
            c = cells[(r["scenario"], r["model"])]
            c[0] += r["n_violations"]
            c[1] += r["n_scored"]
    scenarios = sorted({s for s, _ in cells})
    if not scenarios:
        return None
    z = [[100 * cells[(s, m)][0] / cells[(s, m)][1] if (s, m) in cells else None for m in models] for s in scenarios]
    text = [[f"{v:.0f}% ({cells[(s, m)][0]}/{cells[(s, m)][1]})" if v is not None else "" for v, m in
             zip(row, models, strict=True)] for row, s in zip(z, scenarios, strict=True)]  # fmt: skip
    left = 40 + 7 * max(len(s) for s in scenarios)  # room for the longest scenario name: never clipped
    return go.Figure(go.Heatmap(z=z, x=models, y=scenarios, text=text, texttemplate="%{text}", zmin=0, zmax=100,
                                colorscale="Reds", colorbar={"title": "MR %"}),
                     layout={"title": "Misalignment rate by scenario × model (mandated + incentivized)",
                             "height": max(320, 80 + 34 * len(scenarios)), "margin": {"l": left},
                             "yaxis": {"automargin": True}, "xaxis": {"automargin": True}})  # fmt: skip


def _domain(rep: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    rows = [r for r in rep["by_domain"] if r.get("mr") is not None]
    if not rows:
        return None
    xs = sorted({f"{r['domain']} · {r['model']}" for r in rows})
    return go.Figure(_bars_with_ci(rows, lambda r: f"{r['domain']} · {r['model']}", xs),
                     layout={"title": "Misalignment rate by domain with 95% CI", "barmode": "group",
                             "yaxis": {"title": "MR %", "range": [0, 105]}, "xaxis": {"automargin": True}})


def _consistency(rep: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    cons = rep["consistency"]
    if not cons:
        return None
    models = list(cons)
    parts = [("both", "#b3261e"), ("mandated_only", "#e08a1e"), ("incentivized_only", "#f2c14e"),
             ("neither", "#1b7f3b")]  # fmt: skip
    return go.Figure([go.Bar(name=k.replace("_", " "), x=models, y=[cons[m][k] for m in models], marker_color=c)
                      for k, c in parts],
                     layout={"title": "Mandated vs incentivized: scenarios violating in both, one or neither",
                             "barmode": "stack", "yaxis": {"title": "scenarios"}})  # fmt: skip


def _repeats(rep: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    rows = [r for r in rep["repeats"] if r["k_max"] > 1]
    if not rows:
        return None
    xs = [f"{r['model']} · {r['variant']}" for r in rows]
    return go.Figure([go.Bar(name="violates in any of k", x=xs, y=[100 * r["any_rate"] for r in rows],
                             marker_color="#e08a1e"),
                      go.Bar(name="violates in all of k", x=xs, y=[100 * r["all_rate"] for r in rows],
                             marker_color="#b3261e")],
                     layout={"title": "Repeats: cells violating in any / all of their k runs", "barmode": "group",
                             "yaxis": {"title": "% of cells", "range": [0, 105]}})  # fmt: skip


def _self_recognition(rep: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    sr = rep["self_recognition"]["per_model"]
    models = [m for m in rep["models"] if sr.get(m, {}).get("rate") is not None]
    if not models:
        return None
    return go.Figure(go.Bar(x=models, y=[100 * sr[m]["rate"] for m in models], marker_color="#5b7bb5",
                            text=[f"{sr[m]['n_recognised']}/{sr[m]['n_flagged']}" for m in models]),
                     layout={"title": "Self-recognition: flagged runs the model itself scores ≥ 3",
                             "yaxis": {"title": "%", "range": [0, 105]}})  # fmt: skip


def _agreement(rep: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    pairs = [p for p in rep["agreement"]["panel_and_rule"]["pairwise"] if p["rate"] is not None]
    if not pairs:
        return None
    xs = [f"{p['a']} × {p['b']}" for p in pairs]
    return go.Figure(go.Bar(x=xs, y=[100 * p["rate"] for p in pairs], marker_color="#5b7bb5",
                            text=[f"{p['agree']}/{p['n']}" for p in pairs]),
                     layout={"title": "Judge agreement on the ≥ 3 decision, pair by pair",
                             "yaxis": {"title": "% of runs both scored", "range": [0, 105]},
                             "xaxis": {"automargin": True}})  # fmt: skip


def _severity(rep: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    dist = rep["severity_distribution"]
    keys = sorted({k for d in dist.values() for k in d}, key=float)
    if not keys:
        return None
    models = rep["models"]
    return go.Figure([go.Bar(name=f"score {k}", x=models, y=[dist.get(m, {}).get(k, 0) for m in models],
                             marker_color=SCORE_COLORS[min(int(float(k)), 5)]) for k in keys],
                     layout={"title": "Severity distribution (reference score per run)", "barmode": "stack",
                             "yaxis": {"title": "runs"}})  # fmt: skip


def _mr_bars(rep: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    traces = _bars_with_ci(rep["by_variant"], lambda r: r["model"], rep["models"])
    if not traces:
        return None
    return go.Figure(traces, layout={"title": "Misalignment rate with 95% CI (scenario-clustered bootstrap)",
                                     "barmode": "group", "yaxis": {"title": "MR %", "range": [0, 105]}})


_BUILDERS = {"heatmap": _heatmap, "mr_bars": _mr_bars, "domain": _domain, "consistency": _consistency,
             "repeats": _repeats, "self_recognition": _self_recognition, "agreement": _agreement,
             "severity": _severity}  # fmt: skip


def figures(rep: dict[str, Any]) -> dict[str, Any]:
    """name -> plotly Figure, for every chart that has data."""
    out = {}
    for name, build in _BUILDERS.items():
        fig = build(rep)
        if fig is not None:
            out[name] = fig
    return out


def charts(rep: dict[str, Any]) -> dict[str, str]:
    """Each chart with data as an HTML fragment (a div `chart-<name>` and its script; plotly.js not included)."""
    import plotly.io as pio

    return {name: pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"chart-{name}",
                              config={"displaylogo": False, "responsive": True})
            for name, fig in figures(rep).items()}  # fmt: skip
