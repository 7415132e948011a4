"""Plotly figures of the pages, built from the frames of `data` (tests call them directly)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.data import STATE_COLOURS, STATES
from dashboard.layout import FloorPlan

FONT = {"family": "sans-serif", "size": 11}


def zone_label(category: str) -> str:
    """A category name broken over lines to fit a zone."""
    label = category.replace(" AND ", "<br>& ")
    if "<br>" not in label and len(label) > 12:
        label = label.replace(" ", "<br>", 1)
    return label


def store_map(zones: pd.DataFrame, plan: FloorPlan) -> go.Figure:
    """The floor plan, each zone a clickable rectangle coloured by its worst shelf state; one
    trace per state (the legend), each point's customdata [category, shelves, empty, below
    threshold, near expiry]."""
    rects = {z.label: z for z in plan.zones}
    fig = go.Figure()
    for state in (*STATES, "no data"):
        rows = zones[zones["state"] == state]
        if rows.empty:
            continue
        boxes = [rects[c] for c in rows["item_category"]]
        fig.add_trace(go.Bar(
            name=state, x=[b.centre[0] for b in boxes], y=[b.h for b in boxes],
            base=[b.y for b in boxes], width=[b.w for b in boxes],
            marker={"color": STATE_COLOURS[state], "line": {"color": "white", "width": 2}},
            text=[zone_label(c) for c in rows["item_category"]], textposition="inside",
            insidetextanchor="middle", textangle=0, textfont={"color": "white", "size": 10},
            selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 0.45}},
            customdata=rows[["item_category", "shelves", *STATES[:3]]].to_numpy(),
            hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]} shelves: "
                          "%{customdata[2]} empty, %{customdata[3]} below threshold, "
                          "%{customdata[4]} near expiry<extra></extra>"))
    for fixture in plan.fixtures:
        fig.add_shape(type="rect", x0=fixture.x, y0=fixture.y, x1=fixture.x + fixture.w,
                      y1=fixture.y + fixture.h, fillcolor="#ecf0f1",
                      line={"color": "#95a5a6"}, layer="below")
        fig.add_annotation(x=fixture.centre[0], y=fixture.centre[1], text=fixture.label,
                           showarrow=False, font={"color": "#7f8c8d", **FONT})
    fig.update_layout(
        barmode="overlay", height=580, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"range": [0, plan.width], "visible": False, "fixedrange": True},
        yaxis={"range": [0, plan.height], "visible": False, "fixedrange": True},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0,
                "title": "zone state: "},
        uniformtext={"minsize": 7, "mode": "show"}, clickmode="event+select",
        dragmode=False, plot_bgcolor="white", font=FONT)
    return fig


def alerts_by_type(alerts: pd.DataFrame) -> go.Figure:
    """Alerts per type, stacked by status."""
    counts = alerts.groupby(["alert_type", "status"]).size().rename("alerts").reset_index()
    fig = go.Figure([go.Bar(name=status, x=rows["alert_type"], y=rows["alerts"])
                     for status, rows in counts.groupby("status")])
    fig.update_layout(barmode="stack", height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "title": "status: "}, font=FONT)
    return fig


def dead_letters_over_time(dead: pd.DataFrame, freq: str = "h") -> go.Figure:
    """Dead letters per period (wall time they were received) and reason, stacked."""
    frame = dead.assign(period=pd.to_datetime(dead["received_at"], utc=True).dt.floor(freq))
    counts = frame.groupby(["period", "reason"]).size().rename("records").reset_index()
    fig = go.Figure([go.Bar(name=reason, x=rows["period"], y=rows["records"])
                     for reason, rows in counts.groupby("reason")])
    fig.update_layout(barmode="stack", height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h"}, font=FONT)
    return fig


def metric_bars(frame: pd.DataFrame, label: str, metrics: list[str]) -> go.Figure:
    """One group of bars per metric, one bar per `label` value (a model or a baseline)."""
    fig = go.Figure([go.Bar(name=str(row[label]), x=metrics, y=[row[m] for m in metrics])
                     for _, row in frame.iterrows()])
    fig.update_layout(barmode="group", height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h"}, font=FONT)
    return fig


def lines(frame: pd.DataFrame, x: str, columns: dict[str, str]) -> go.Figure:
    """One line per column along `x`; `columns`: column -> its name in the legend."""
    fig = go.Figure([go.Scatter(name=name, x=frame[x], y=frame[column], mode="lines+markers")
                     for column, name in columns.items()])
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h"}, font=FONT)
    return fig
