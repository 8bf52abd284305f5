"""A pymesos scheduler, unchanged client code, against tepui's master.

Subscribes, accepts offers, launches --tasks command tasks (the first from
the OCI image --image), sees TASK_RUNNING and TASK_FINISHED for each,
reconciles a running task, and exits 0. With --save-id it stops as a
failover (the framework stays) and writes its id; with --failover-from it
subscribes again under that id and runs its tasks the same way.
"""
import argparse
import os
import sys
import threading

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler


class Tasks(Scheduler):
    def __init__(self, count, image, prefix):
        self.count, self.image, self.prefix = count, image, prefix
        self.launched = 0
        self.running, self.finished = set(), set()
        self.reconciled = False
        self.framework_id = None
        self.failed = []
        self.done = threading.Event()

    def registered(self, driver, framework_id, master_info):
        self.framework_id = framework_id["value"]
        print("registered", self.framework_id, "with master", master_info.get("version"), flush=True)

    def reregistered(self, driver, master_info):
        # pymesos calls this when it subscribed with a framework id.
        self.framework_id = driver.framework_id
        print("re-registered", self.framework_id, flush=True)

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus = sum(r.scalar.value for r in offer.resources if r.name == "cpus")
            mem = sum(r.scalar.value for r in offer.resources if r.name == "mem")
            tasks = []
            while self.launched < self.count and cpus >= 0.1 and mem >= 32:
                task = Dict()
                task.task_id.value = "%s-%d" % (self.prefix, self.launched)
                task.agent_id.value = offer.agent_id.value
                task.name = task.task_id.value
                task.command.value = "echo task %d says hello" % self.launched
                task.resources = [
                    dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
                    dict(name="mem", type="SCALAR", scalar={"value": 32}),
                ]
                if self.launched == 0 and self.image:
                    task.container.type = "MESOS"
                    task.container.mesos.image.type = "DOCKER"
                    task.container.mesos.image.docker.name = self.image
                tasks.append(task)
                self.launched += 1
                cpus, mem = cpus - 0.1, mem - 32
            if tasks:
                driver.launchTasks(offer.id, tasks)
            else:
                driver.declineOffer(offer.id, Dict(refuse_seconds=5))

    def statusUpdate(self, driver, update):
        task, state = update.task_id.value, update.state
        print("update", task, state, update.get("reason", ""), flush=True)
        if update.get("reason") == "REASON_RECONCILIATION":
            self.reconciled = True
        elif state == "TASK_RUNNING" and task not in self.running:
            self.running.add(task)
            if len(self.running) == 1:
                driver.reconcileTasks([dict(task_id=update.task_id, agent_id=update.agent_id)])
        elif state == "TASK_FINISHED":
            self.finished.add(task)
        elif state in ("TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_KILLED", "TASK_DROPPED"):
            self.failed.append((task, state, update.get("message", "")))
        if len(self.finished) + len(self.failed) == self.count and self.reconciled:
            self.done.set()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--master", default="127.0.0.1:5050")
    p.add_argument("--tasks", type=int, default=10)
    p.add_argument("--image", default="")
    p.add_argument("--prefix", default="pymesos")
    p.add_argument("--save-id")
    p.add_argument("--failover-from")
    a = p.parse_args()
    scheduler = Tasks(a.tasks, a.image, a.prefix)
    framework = Dict(user="root", name="tepui-compat-pymesos", checkpoint=True, failover_timeout=300)
    expected = None
    if a.failover_from:
        with open(a.failover_from) as f:
            expected = f.read().strip()
        framework.id.value = expected
    # With authentication on, the credential tepui local made (pymesos
    # sends it as HTTP Basic, as to a Mesos master).
    principal, secret = os.environ.get("COMPAT_PRINCIPAL"), os.environ.get("COMPAT_SECRET")
    driver = MesosSchedulerDriver(scheduler, framework, a.master, use_addict=True,
                                  principal=principal, secret=secret)
    driver.start()
    ok = scheduler.done.wait(120)
    driver.stop(failover=bool(a.save_id))
    driver.join()
    if a.save_id and scheduler.framework_id:
        with open(a.save_id, "w") as f:
            f.write(scheduler.framework_id)
    print("running", len(scheduler.running), "finished", len(scheduler.finished),
          "reconciled", scheduler.reconciled, "failed", scheduler.failed, flush=True)
    if expected and scheduler.framework_id != expected:
        print("failover registered a new framework id", scheduler.framework_id, flush=True)
        return 1
    good = ok and len(scheduler.running) == a.tasks and len(scheduler.finished) == a.tasks
    return 0 if good and not scheduler.failed else 1


if __name__ == "__main__":
    sys.exit(main())
