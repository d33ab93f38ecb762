"""The engine's Prometheus metrics, read from its store when scraped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from engine.store import Store


def queue_depth(store: Store) -> int:
    return len(store.jobs_with_status("queued"))


class StoreGauges:
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> list[GaugeMetricFamily]:
        queued = GaugeMetricFamily("tuneup_engine_queue_depth", "Jobs waiting for the trainer")
        queued.add_metric([], queue_depth(self.store))
        running = GaugeMetricFamily("tuneup_engine_running_jobs", "Jobs training now")
        running.add_metric([], len(self.store.jobs_with_status("running")))
        return [queued, running]


def metrics_text(store: Store) -> bytes:
    registry = CollectorRegistry()
    registry.register(StoreGauges(store))  # type: ignore[arg-type]
    return generate_latest(registry)
