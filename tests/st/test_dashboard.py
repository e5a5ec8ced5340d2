"""The scheduler's dashboard in headless Chromium (Playwright, Debian's chromium): a real cluster trains while
the page is open; the page loads without console errors, follows the iterations, and its Disable button
changes /state. Set MSF_DASHBOARD_SCREENSHOT=<path> to keep the screenshot (docs/dashboard.png)."""
import os
import shutil
import threading

import numpy as np
import pytest

from mindspore_federated.client import messages as m
from tests.utils.cluster import call, post, start_scheduler, wait_model, write_yaml
from tests.utils.multi import start_servers
from tests.utils.wait import wait_for

CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-token-42"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


class Trainer(threading.Thread):
    """Runs iterations (2 devices each, on both servers) until stopped; `done` is the last one completed."""

    def __init__(self, addresses, fl_name):
        super().__init__(daemon=True)
        self.addresses, self.fl_name = addresses, fl_name
        self.done = 0
        self.error = None
        self.stop_event = threading.Event()

    def run(self):
        rng = np.random.default_rng(11)
        try:
            while not self.stop_event.is_set() and self.done < 30:
                iteration = self.done + 1
                self.iterate(iteration, rng)
                for address in self.addresses:
                    wait_model(address, self.fl_name, iteration, 20)
                self.done = iteration
                self.stop_event.wait(0.7)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def iterate(self, iteration, rng):
        """Two devices, one per server, reporting a falling loss and a rising accuracy."""
        for d, address in enumerate(self.addresses):
            body = m.build_start_fl_job(self.fl_name, f"i{iteration}d{d}", iteration, 10, eval_data_size=5)
            status, reply = post(address, "startFLJob", body)
            assert status == 200 and m.parse_start_fl_job(reply).retcode == 200
        for d, address in enumerate(self.addresses):
            loss, acc = 2.0 / (1 + 0.3 * iteration) + 0.05 * d, 1 - 0.8 / (1 + 0.2 * iteration)
            features = {"w1": rng.standard_normal(6).astype(np.float32),
                        "b1": rng.standard_normal(3).astype(np.float32)}
            body = m.build_update_model(self.fl_name, f"i{iteration}d{d}", iteration, features,
                                        upload_loss=loss, upload_accuracy=acc)
            status, reply = post(address, "updateModel", body)
            assert status == 200 and m.parse_update_model(reply).retcode == 200


def test_dashboard_follows_a_training_cluster(tmp_path, redis_server, fl_name, procs):
    from playwright.sync_api import sync_playwright

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=100,
                           round={"start_fl_job_threshold": 2})
    servers = [address for _, address in start_servers(procs, tmp_path, yaml_path, 2)]
    _, sched = start_scheduler(procs, yaml_path, env={"MSF_MANAGE_TOKEN": TOKEN})
    trainer = Trainer(servers, fl_name)
    trainer.start()
    errors = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"http://{sched}/dashboard")
            page.wait_for_selector("#banner:not(.hidden)", timeout=10_000)  # no token yet: asked for it
            assert "management token" in page.inner_text("#banner")
            page.fill("#token", TOKEN)
            page.click("#token-form button")
            page.wait_for_function("document.querySelector('#state').textContent === 'running'", timeout=10_000)
            assert page.inner_text("#live-servers") == "2"
            # the page follows the cluster: iterations advance, each listed with its result and participants
            first = int(page.inner_text("#iteration"))
            wait_for(lambda: trainer.error is None and trainer.done >= first + 2, 60, what="two more iterations")
            page.wait_for_function(f"Number(document.querySelector('#iteration').textContent) >= {first + 2}",
                                   timeout=15_000)
            row = page.wait_for_selector(f"#iterations tr[data-iteration='{first}']", timeout=15_000)
            page.wait_for_function(f"document.querySelector(\"#iterations tr[data-iteration='{first}']\")"
                                   ".children[3].textContent === '2'", timeout=20_000)
            assert row.query_selector("td:nth-child(2)").inner_text() == "success"
            assert page.locator("#strip span.ok").count() >= 2
            assert page.locator("#strip span.fail").count() == 0
            # every ended iteration is in the timeline, in order
            listed = page.eval_on_selector_all("#iterations tr", "rows => rows.map(r => +r.dataset.iteration)")
            assert listed == list(range(max(listed), 0, -1))
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("MSF_DASHBOARD_SCREENSHOT"):
                shutil.copyfile(shot, os.environ["MSF_DASHBOARD_SCREENSHOT"])
            # an operator action: Disable changes /state
            trainer.stop_event.set()
            trainer.join(60)
            page.click("#disable")
            page.wait_for_function("document.querySelector('#action-result').textContent.includes('disabling')",
                                   timeout=10_000)
            assert call(sched, "state", token=TOKEN)[1]["cluster_state"] == "CLUSTER_DISABLE"
            page.wait_for_function("document.querySelector('#state').textContent === 'disable'", timeout=10_000)
            page.click("#enable")
            wait_for(lambda: call(sched, "state", token=TOKEN)[1]["cluster_state"] == "CLUSTER_READY", 10,
                     what="enabled again")
            browser.close()
    finally:
        trainer.stop_event.set()
        trainer.join(60)
    assert errors == []
