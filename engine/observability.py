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
        active = self.store.jobs_with_status("running")
        running = GaugeMetricFamily("tuneup_engine_running_jobs", "Jobs training now")
        running.add_metric([], len(active))
        speed = GaugeMetricFamily(
            "tuneup_engine_training_tokens_per_second", "Training throughput of the running job"
        )
        speed.add_metric(
            [], sum(self.store.get_internal(j["id"]).get("tokens_per_second", 0.0) for j in active)
        )
        return [queued, running, speed]


def metrics_text(store: Store) -> bytes:
    registry = CollectorRegistry()
    registry.register(StoreGauges(store))  # type: ignore[arg-type]
    return generate_latest(registry)
