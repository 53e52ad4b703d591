"""``GET /metrics``: the console's health and the reactions' positions in Prometheus' text
format, computed when scraped (from the same reads as ``/healthz``; no registry, no extra
dependency). The application's own OpenTelemetry metrics (fires, deliveries) are exported by
the application's SDK setup, not here."""

from __future__ import annotations

from datetime import timedelta

from reventless.health import Health
from reventless.web._model import ReactionView

__all__ = ("metrics_text",)

_KINDS = ("late", "dead_letters", "reaction_stopped", "reaction_lag", "no_engine")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(health: Health, views: list[ReactionView]) -> str:
    lines = [
        "# HELP reventless_health_ok 1 when /healthz answers ok, else 0.",
        "# TYPE reventless_health_ok gauge",
        f"reventless_health_ok {int(health.ok)}",
        "# HELP reventless_health_problems Problems /healthz reports, by kind.",
        "# TYPE reventless_health_problems gauge",
    ]
    for kind in _KINDS:
        count = sum(1 for problem in health.problems if problem.kind == kind)
        lines.append(f'reventless_health_problems{{kind="{kind}"}} {count}')
    lines += [
        "# HELP reventless_reaction_pending_events Events a reaction has not handled yet.",
        "# TYPE reventless_reaction_pending_events gauge",
    ]
    lines += [
        f'reventless_reaction_pending_events{{reaction="{_label(v.status.name)}"}} '
        f"{v.status.pending}"
        for v in views
    ]
    lines += [
        "# HELP reventless_reaction_lag_seconds Age of the oldest event a reaction has not "
        "handled.",
        "# TYPE reventless_reaction_lag_seconds gauge",
    ]
    lines += [
        f'reventless_reaction_lag_seconds{{reaction="{_label(v.status.name)}"}} '
        f"{(v.lag or timedelta(0)).total_seconds():.3f}"
        for v in views
        if v.lag is not None
    ]
    lines += [
        "# HELP reventless_reaction_stopped 1 when a reaction stopped on a failure.",
        "# TYPE reventless_reaction_stopped gauge",
    ]
    lines += [
        f'reventless_reaction_stopped{{reaction="{_label(v.status.name)}"}} '
        f"{int(v.status.state == 'stopped')}"
        for v in views
    ]
    return "\n".join(lines) + "\n"
