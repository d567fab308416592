"""``/metrics`` in the Prometheus text format (0.0.4): requests by route and status, a
latency histogram by route, and decisions by operation and outcome. Counted in the
event loop's thread only, so no lock is needed."""

from __future__ import annotations

from collections import Counter

__all__ = ["Metrics"]

#: Upper bounds of the latency histogram's buckets, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._buckets: Counter[tuple[str, float]] = Counter()
        self._count: Counter[str] = Counter()
        self._sum: dict[str, float] = {}
        self._decisions: Counter[tuple[str, str]] = Counter()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests[(method, route, str(status))] += 1
        for bound in BUCKETS:
            if seconds <= bound:
                self._buckets[(route, bound)] += 1
        self._count[route] += 1
        self._sum[route] = self._sum.get(route, 0.0) + seconds

    def decision(self, operation: str, outcome: str) -> None:
        self._decisions[(operation, outcome)] += 1

    def render(self) -> str:
        lines = [
            "# HELP speakerdb_requests_total HTTP requests and WebSocket streams answered.",
            "# TYPE speakerdb_requests_total counter",
        ]
        for (method, route, status), n in sorted(self._requests.items()):
            labels = _labels(method=method, route=route, status=status)
            lines.append(f"speakerdb_requests_total{labels} {n}")
        lines += [
            "# HELP speakerdb_request_duration_seconds Time to answer a request.",
            "# TYPE speakerdb_request_duration_seconds histogram",
        ]
        for route in sorted(self._count):
            for bound in BUCKETS:
                labels = _labels(route=route, le=f"{bound:g}")
                value = self._buckets[(route, bound)]
                lines.append(f"speakerdb_request_duration_seconds_bucket{labels} {value}")
            every = _labels(route=route, le="+Inf")
            lines.append(f"speakerdb_request_duration_seconds_bucket{every} {self._count[route]}")
            lines.append(
                f"speakerdb_request_duration_seconds_sum{_labels(route=route)} "
                f"{self._sum[route]:.6f}"
            )
            lines.append(
                f"speakerdb_request_duration_seconds_count{_labels(route=route)} "
                f"{self._count[route]}"
            )
        lines += [
            "# HELP speakerdb_decisions_total Identify and verify decisions, by outcome.",
            "# TYPE speakerdb_decisions_total counter",
        ]
        for (operation, outcome), n in sorted(self._decisions.items()):
            labels = _labels(operation=operation, outcome=outcome)
            lines.append(f"speakerdb_decisions_total{labels} {n}")
        return "\n".join(lines) + "\n"


def _labels(**values: str) -> str:
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in values.items()) + "}"
