"""The Worker's metrics hook: values it records are what a scrape of its endpoint reads."""
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from mindspore_federated.metrics.worker import WorkerMetrics


def samples(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_worker_hook_is_scraped():
    metrics = WorkerMetrics()
    server = metrics.serve()
    try:
        before = samples(server.server_port)
        metrics.iteration(7)
        metrics.pulled(0.02, 1000)
        metrics.pushed(0.03, 400)
        metrics.pushed(0.01, 100)
        metrics.trained(1.5)
        metrics.failed("push")
        after = samples(server.server_port)
    finally:
        server.shutdown()
        server.server_close()

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)
    assert after[("msfl_worker_iteration", ())] == 7
    assert delta("msfl_worker_transferred_bytes_total", direction="received") == 1000
    assert delta("msfl_worker_transferred_bytes_total", direction="sent") == 500
    assert delta("msfl_worker_step_duration_seconds_count", step="push") == 2
    assert delta("msfl_worker_step_duration_seconds_count", step="train") == 1
    assert delta("msfl_worker_failures_total", step="push") == 1
    assert after[("process_resident_memory_bytes", ())] > 0
