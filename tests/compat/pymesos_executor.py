"""A pymesos custom executor and the scheduler that uses it, unchanged
client code, against tepui's master and agent.

`pymesos_executor.py scheduler --master HOST:PORT` subscribes, and launches
--tasks tasks on one custom executor whose ExecutorInfo command runs this
file as `executor` with the same Python. For each task the executor, driven
by pymesos's MesosExecutorDriver from the agent's environment, sends
TASK_RUNNING and a framework message naming the task; the scheduler answers
with a message of its own; on that answer the executor sends TASK_FINISHED.
The scheduler exits 0 when every task went RUNNING -> FINISHED and every
message crossed both ways.
"""
import argparse
import os
import shlex
import sys
import threading

from addict import Dict
from pymesos import Executor, MesosExecutorDriver, MesosSchedulerDriver, Scheduler, decode_data, encode_data

EXECUTOR_ID = "pymesos-executor"


class Echo(Executor):
    """Answers LAUNCH with RUNNING and a message, and the scheduler's reply with FINISHED."""

    def __init__(self):
        self.tasks = {}

    def registered(self, driver, executor_info, framework_info, agent_info):
        print("executor registered on", agent_info["hostname"], flush=True)

    def launchTask(self, driver, task):
        task_id = task.task_id.value
        self.tasks[task_id] = task.task_id
        driver.sendStatusUpdate(Dict(task_id=task.task_id, state="TASK_RUNNING",
                                     message="running in " + os.environ["MESOS_SANDBOX"]))
        driver.sendFrameworkMessage(encode_data(("ping " + task_id).encode()))

    def frameworkMessage(self, driver, message):
        words = decode_data(message).decode().split()
        if len(words) == 2 and words[0] == "pong" and words[1] in self.tasks:
            driver.sendStatusUpdate(Dict(task_id=self.tasks.pop(words[1]), state="TASK_FINISHED"))

    def shutdown(self, driver):
        print("executor told to shut down", flush=True)


class Launcher(Scheduler):
    def __init__(self, count):
        self.count = count
        self.launched = 0
        self.running, self.finished, self.pinged = set(), set(), set()
        self.failed = []
        self.done = threading.Event()

    def registered(self, driver, framework_id, master_info):
        print("registered", framework_id["value"], flush=True)

    def resourceOffers(self, driver, offers):
        for offer in offers:
            if self.launched == self.count:
                driver.declineOffer(offer.id, Dict(refuse_seconds=60))
                continue
            executor = Dict()
            executor.executor_id.value = EXECUTOR_ID
            executor.name = "pymesos custom executor"
            executor.command.value = " ".join(
                shlex.quote(a) for a in (sys.executable, os.path.abspath(__file__), "executor"))
            executor.resources = [
                dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
                dict(name="mem", type="SCALAR", scalar={"value": 64}),
            ]
            tasks = []
            for _ in range(self.count):
                task = Dict()
                task.task_id.value = "executor-task-%d" % self.launched
                task.agent_id.value = offer.agent_id.value
                task.name = task.task_id.value
                task.executor = executor
                task.resources = [dict(name="cpus", type="SCALAR", scalar={"value": 0.1})]
                tasks.append(task)
                self.launched += 1
            driver.launchTasks(offer.id, tasks)

    def frameworkMessage(self, driver, executor_id, agent_id, message):
        words = decode_data(message).decode().split()
        print("message from", executor_id["value"], words, flush=True)
        if len(words) == 2 and words[0] == "ping":
            self.pinged.add(words[1])
            driver.sendFrameworkMessage(executor_id, agent_id, encode_data(("pong " + words[1]).encode()))

    def statusUpdate(self, driver, update):
        task, state = update.task_id.value, update.state
        print("update", task, state, update.get("message", ""), flush=True)
        if state == "TASK_RUNNING":
            self.running.add(task)
        elif state == "TASK_FINISHED":
            self.finished.add(task)
        else:
            self.failed.append((task, state, update.get("message", "")))
        if len(self.finished) + len(self.failed) == self.count:
            self.done.set()


def executor_main():
    driver = MesosExecutorDriver(Echo(), use_addict=True)
    driver.run()
    return 0


def scheduler_main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--master", default="127.0.0.1:5050")
    p.add_argument("--tasks", type=int, default=3)
    a = p.parse_args(argv)
    scheduler = Launcher(a.tasks)
    framework = Dict(user="root", name="tepui-compat-pymesos-executor", checkpoint=True)
    driver = MesosSchedulerDriver(scheduler, framework, a.master, use_addict=True)
    driver.start()
    ok = scheduler.done.wait(120)
    # Not a failover: the framework is torn down and its executor shut down.
    driver.stop()
    driver.join()
    print("running", sorted(scheduler.running), "finished", sorted(scheduler.finished),
          "pinged", sorted(scheduler.pinged), "failed", scheduler.failed, flush=True)
    every = {"executor-task-%d" % i for i in range(a.tasks)}
    good = ok and scheduler.running == every and scheduler.finished == every and scheduler.pinged == every
    return 0 if good and not scheduler.failed else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["executor"]:
        sys.exit(executor_main())
    if sys.argv[1:2] == ["scheduler"]:
        sys.exit(scheduler_main(sys.argv[2:]))
    sys.exit("usage: pymesos_executor.py scheduler [--master HOST:PORT] [--tasks N] | executor")
