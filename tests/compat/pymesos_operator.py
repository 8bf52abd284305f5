"""pymesos's operator API drivers, unchanged client code, against tepui's
master and agent: health, version, and the master's agents, frameworks and
tasks, each checked for what it must name.

  usage: pymesos_operator.py MASTER AGENT FRAMEWORK_ID TASK_ID
"""
import sys

from pymesos import MesosOperatorAgentDriver, MesosOperatorMasterDriver


def main(master, agent, framework_id, task_id):
    failures = []

    def expect(what, ok, got):
        print("ok  " if ok else "FAIL", what, flush=True)
        if not ok:
            failures.append((what, got))

    for name, driver in (("master", MesosOperatorMasterDriver(master)), ("agent", MesosOperatorAgentDriver(agent))):
        health = driver.getHealth()
        expect(name + " GET_HEALTH says healthy", health.get("get_health", {}).get("healthy") is True, health)
        version = driver.getVersion()
        expect(name + " GET_VERSION gives a version",
               bool(version.get("get_version", {}).get("version_info", {}).get("version")), version)
    driver = MesosOperatorMasterDriver(master)
    agents = driver.getAgents()["get_agents"]["agents"]
    expect("master GET_AGENTS names the agent at " + agent,
           any(a.get("pid", "").endswith("@" + agent) for a in agents), agents)
    frameworks = driver.getFrameworks()["get_frameworks"]
    known = frameworks.get("frameworks", []) + frameworks.get("completed_frameworks", [])
    expect("master GET_FRAMEWORKS names " + framework_id,
           any(f["framework_info"]["id"]["value"] == framework_id for f in known), frameworks)
    tasks = driver.getTasks()["get_tasks"]
    every = [t for kind in ("tasks", "completed_tasks") for t in tasks.get(kind, [])]
    expect("master GET_TASKS names " + task_id, any(t["task_id"]["value"] == task_id for t in every), tasks)
    for what, got in failures:
        print(what, "got:", got, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
