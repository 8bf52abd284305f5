"""The chaos tier's pymesos framework, unchanged client code.

Launches the same mix of tasks as the Rust one (driver/examples/
chaos_framework.rs: busybox image or plain command, short or long, some
fetching a URI), acknowledges every update explicitly and logs each as one
line for check.py; reconciles its open tasks every 20 s, and once all are
terminal (or at the deadline) reconciles them all and stops as a failover.

  usage: chaos_pymesos.py MASTER PREFIX TASKS IMAGE DEADLINE_SECS LOG
"""
import base64
import sys
import threading
import time

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler


def spec(index):
    image = index % 2 == 0
    sleep = 20 + index % 15 if index % 7 == 0 else index % 4
    return image, sleep, index % 5 == 1


class Chaos(Scheduler):
    def __init__(self, prefix, total, image, log):
        self.prefix, self.total, self.image, self.log = prefix, total, image, log
        self.lock = threading.Lock()
        self.next = 0
        self.launched = {}
        self.terminal = set()

    def write(self, line):
        with self.lock:
            self.log.write("%d %s\n" % (int(time.time() * 1000), line))
            self.log.flush()

    def registered(self, driver, framework_id, master_info):
        self.write("registered %s" % framework_id["value"])

    def reregistered(self, driver, master_info):
        self.write("reregistered")

    def disconnected(self, driver):
        self.write("disconnected")

    def task(self, index, agent_id):
        image, sleep, uri = spec(index)
        task_id = "%s-%d" % (self.prefix, index)
        task = Dict()
        task.task_id.value = task_id
        task.agent_id.value = agent_id
        task.name = task_id
        fetch = 'test -s "${MESOS_SANDBOX:-.}/payload.txt" && ' if uri else ""
        task.command.value = "%secho out-%s; sleep %d" % (fetch, task_id, sleep)
        task.command.shell = True
        task.command.user = "root"
        if uri:
            task.command.uris = [dict(value="/var/tmp/chaos/payload.txt")]
        task.resources = [
            dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
            dict(name="mem", type="SCALAR", scalar={"value": 32}),
        ]
        if image:
            task.container.type = "MESOS"
            task.container.mesos.image.type = "DOCKER"
            task.container.mesos.image.docker.name = self.image
        return task

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus = sum(r.scalar.value for r in offer.resources if r.name == "cpus")
            mem = sum(r.scalar.value for r in offer.resources if r.name == "mem")
            tasks = []
            while self.next < self.total and cpus >= 0.1 - 1e-9 and mem >= 32:
                task = self.task(self.next, offer.agent_id.value)
                with self.lock:
                    self.launched[task.task_id.value] = offer.agent_id.value
                self.write("launch %s" % task.task_id.value)
                tasks.append(task)
                self.next += 1
                cpus, mem = cpus - 0.1, mem - 32
            if tasks:
                driver.launchTasks(offer.id, tasks)
            else:
                driver.declineOffer(offer.id, Dict(refuse_seconds=2))

    def statusUpdate(self, driver, update):
        uuid = update.get("uuid")
        uuid = base64.b64decode(uuid).hex() if uuid else "-"
        message = (update.get("message") or "").replace("\n", "_").replace(" ", "_")
        self.write("update %s %s %s %s %s %s" % (
            update.task_id.value, update.state, update.get("reason") or "-", uuid,
            update.get("source") or "-", message))
        if update.get("uuid"):
            driver.acknowledgeStatusUpdate(update)
        if update.state in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST",
                            "TASK_ERROR", "TASK_DROPPED", "TASK_GONE",
                            "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"):
            with self.lock:
                self.terminal.add(update.task_id.value)

    def error(self, driver, message):
        self.write("error %s" % message.replace("\n", " "))


def main():
    master, prefix, total, image, deadline, log = sys.argv[1:7]
    total, deadline = int(total), time.time() + int(deadline)
    scheduler = Chaos(prefix, total, image, open(log, "w"))
    framework = Dict(user="root", name="chaos-" + prefix, checkpoint=True, failover_timeout=3600)
    driver = MesosSchedulerDriver(scheduler, framework, master, use_addict=True,
                                  implicit_acknowledgements=False)
    driver.start()
    last = time.time()
    while True:
        time.sleep(0.5)
        with scheduler.lock:
            launched = dict(scheduler.launched)
            done = len(scheduler.terminal) >= total
            open_tasks = [t for t in launched if t not in scheduler.terminal]
        if done or time.time() >= deadline:
            scheduler.write("final-reconcile %d" % len(launched))
            driver.reconcileTasks([dict(task_id=dict(value=t), agent_id=dict(value=a))
                                   for t, a in launched.items()])
            time.sleep(10)
            scheduler.write("done")
            break
        if time.time() - last >= 20 and open_tasks:
            last = time.time()
            scheduler.write("reconcile %d" % len(open_tasks))
            driver.reconcileTasks([dict(task_id=dict(value=t), agent_id=dict(value=launched[t]))
                                   for t in open_tasks])
    driver.stop(failover=True)
    driver.join()


if __name__ == "__main__":
    main()
