"""A mesoshttp scheduler, unchanged client code, against tepui's master:
subscribes, accepts an offer with one command task, sees it RUNNING and
FINISHED, and exits 0."""
import os
import sys
import threading

import requests.auth
from mesoshttp.client import MesosClient

master = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:5050"
done = threading.Event()
seen = []


class OneTask:
    def __init__(self):
        self.client = MesosClient(mesos_urls=["http://" + master], frameworkName="tepui-compat-mesoshttp")
        # With authentication on, the credential tepui local made, as HTTP
        # Basic through the client's own requests_auth hook (its
        # set_credentials puts them in the SUBSCRIBE body instead, where
        # the v1 API has no such field).
        if os.environ.get("COMPAT_PRINCIPAL"):
            self.client.requests_auth = requests.auth.HTTPBasicAuth(
                os.environ["COMPAT_PRINCIPAL"], os.environ["COMPAT_SECRET"])
        self.client.on(MesosClient.SUBSCRIBED, self.subscribed)
        self.client.on(MesosClient.OFFERS, self.offers)
        self.client.on(MesosClient.UPDATE, self.update)
        self.launched = False
        self.driver = None

    def subscribed(self, driver):
        print("subscribed", driver.frameworkId, flush=True)
        self.driver = driver

    def offers(self, offers):
        for offer in offers:
            if self.launched:
                offer.decline()
                continue
            agent = offer.get_offer()["agent_id"]["value"]
            task = {
                "name": "mesoshttp-1",
                "task_id": {"value": "mesoshttp-1"},
                "agent_id": {"value": agent},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
                "command": {"value": "echo hello from mesoshttp"},
            }
            offer.accept([task])
            self.launched = True

    def update(self, update):
        state = update["status"]["state"]
        seen.append(state)
        print("update", update["status"]["task_id"]["value"], state, flush=True)
        if state in ("TASK_FINISHED", "TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_KILLED"):
            done.set()


scheduler = OneTask()
threading.Thread(target=scheduler.client.register, daemon=True).start()
finished = done.wait(60)
if scheduler.driver is not None:
    scheduler.driver.tearDown()
print("states", seen, flush=True)
sys.exit(0 if finished and "TASK_RUNNING" in seen and seen[-1] == "TASK_FINISHED" else 1)
