"""The chaos tier's invariants, checked in the guest once the frameworks end.

Reads the frameworks' update logs (one line per event, see
driver/examples/chaos_framework.rs), the events the tier caused (kills,
restarts, the full disk, each with how long recovery took), the master's
and the agent's state endpoints, the agent's work dir and the containers'
cgroups, and prints one PASS/FAIL line per invariant (check.sh's format),
then the counts. Exits non-zero if an invariant failed.
"""
import argparse
import json
import os
import statistics
import sys
import urllib.request

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
RECONCILIATION = "REASON_RECONCILIATION"

passed = failed = 0


def check(name, problems, limit=8):
    """PASS when PROBLEMS (a list of strings) is empty; FAIL with the first few."""
    global passed, failed
    if problems:
        failed += 1
        shown = "; ".join(problems[:limit])
        more = " (and %d more)" % (len(problems) - limit) if len(problems) > limit else ""
        print("FAIL %s (%d: %s%s)" % (name, len(problems), shown, more))
    else:
        passed += 1
        print("PASS %s" % name)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def parse_log(path):
    """(launched [(ms, id)], updates [(ms, task, state, reason, uuid, source, message)])."""
    launched, updates = [], []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            if len(parts) < 2:
                continue
            ms, kind = int(parts[0]), parts[1]
            if kind == "launch":
                launched.append((ms, parts[2]))
            elif kind == "update" and len(parts) >= 7:
                updates.append((ms, parts[2], parts[3], parts[4], parts[5], parts[6],
                                " ".join(parts[7:])))
    return launched, updates


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))] if values else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--agent-work", required=True)
    ap.add_argument("--cgroot", required=True)
    ap.add_argument("--logs", nargs="+", required=True)
    ap.add_argument("--tasks", type=int, required=True)
    a = ap.parse_args()

    launch_times, updates = [], []
    for log in a.logs:
        l, u = parse_log(log)
        launch_times += l
        updates += u
    launched = [t for _, t in launch_times]
    events = []
    with open(os.path.join(a.work, "events")) as f:
        for line in f:
            t0, kind, took = line.split()
            events.append((int(t0), kind, int(took)))
    # When a daemon was down or its disk full: from the event's start to
    # its recovery. An acknowledgement in flight then may be lost (or not
    # checkpointed), and the update rightly comes again.
    outages = [(t, t + took) for t, kind, took in events]

    check("all %d tasks were launched, each once" % a.tasks,
          ([] if len(launched) == a.tasks else ["%d launched" % len(launched)]) +
          ["%s launched twice" % t for t in set(launched) if launched.count(t) > 1])

    by_task = {t: [] for t in launched}
    for u in updates:
        by_task.setdefault(u[1], []).append(u)

    # Every task reached exactly one terminal state seen by its framework
    # (an update with a uuid, not a reconciliation answer), or is running
    # and reconciles as running; nothing comes after the terminal state.
    problems, states, retries, dup_after_ack, never_ran = [], {}, 0, [], []
    for task, ups in sorted(by_task.items()):
        real = [u for u in ups if u[3] != RECONCILIATION and u[4] != "-"]
        first_seen = {}
        for u in real:
            if u[4] in first_seen:
                retries += 1
                # The framework acknowledged at first receipt: a second
                # delivery is a fault unless an outage may have lost the ack.
                if u[2] in TERMINAL and not any(t0 <= u[0] and t1 >= first_seen[u[4]]
                                                for t0, t1 in outages):
                    dup_after_ack.append("%s %s again after %d ms" %
                                         (task, u[2], u[0] - first_seen[u[4]]))
            else:
                first_seen[u[4]] = u[0]
        terminal_uuids = {u[4]: u[2] for u in real if u[2] in TERMINAL}
        reconciled = [u for u in ups if u[3] == RECONCILIATION]
        last_reconciled = reconciled[-1][2] if reconciled else None
        started = any(u[2] in ("TASK_STARTING", "TASK_RUNNING") for u in real)
        if len(terminal_uuids) == 1:
            state = next(iter(terminal_uuids.values()))
            states[state] = states.get(state, 0) + 1
            first_terminal = min(u[0] for u in real if u[2] in TERMINAL)
            later = [u[2] for u in real if u[0] > first_terminal and u[2] not in TERMINAL]
            if later:
                problems.append("%s: %s after %s" % (task, ",".join(later), state))
        elif not terminal_uuids and last_reconciled == "TASK_RUNNING":
            states["running"] = states.get("running", 0) + 1
        elif not terminal_uuids and not real and last_reconciled == "TASK_LOST":
            # Launched while the master died before the agent took it:
            # nobody knew it any more, and reconciliation said so, as in
            # Mesos. It must never have run (checked below).
            key = "lost before it reached the agent"
            states[key] = states.get(key, 0) + 1
            never_ran.append(task)
        else:
            seen = ",".join(u[2] for u in real) or "nothing"
            problems.append("%s: %d terminal updates (saw %s, started %s; reconciled %s)" %
                            (task, len(terminal_uuids), seen, started, last_reconciled))
    check("every task reached exactly one terminal state seen by its framework", problems)
    check("no terminal update was delivered again after its acknowledgement", dup_after_ack)

    # Every finished task's output is in its sandbox.
    found = set()
    slaves = os.path.join(a.agent_work, "slaves")
    sandboxes = []
    for root, dirs, files in os.walk(slaves):
        if os.path.basename(os.path.dirname(root)) == "runs":
            sandboxes.append(root)
            dirs[:] = []
            for name in files:
                if name.startswith("stdout"):
                    try:
                        with open(os.path.join(root, name), errors="replace") as f:
                            found.update(w for w in f.read().split() if w.startswith("out-"))
                    except OSError:
                        pass
    # The agent's GC (after the acknowledgements, sooner under disk
    # pressure) may remove a finished run's sandbox: such a task's output
    # is gone by design, and the journal says so.
    collected = set()
    with open(os.path.join(a.work, "journal.txt"), errors="replace") as f:
        for line in f:
            if "garbage collected" in line and "/executors/" in line:
                collected.add(line.split("/executors/")[1].split("/")[0])
    finished = [t for t, ups in by_task.items()
                if any(u[2] == "TASK_FINISHED" and u[3] != RECONCILIATION for u in ups)]
    # A task that ran while the work dir was full may have had its output
    # refused by the kernel (ENOSPC): that is the disk, not tepui.
    full = [(t, t + took) for t, kind, took in events if kind == "disk-full"]
    launched_at = {u: ms for ms, u in launch_times}
    ended_at = {t: max(u[0] for u in ups) for t, ups in by_task.items() if ups}

    def ran_on_full_disk(task):
        start, end = launched_at.get(task, 0), ended_at.get(task, 0)
        return any(start <= f1 and end >= f0 for f0, f1 in full)

    missing = [t for t in sorted(finished) if "out-" + t not in found and t not in collected]
    excused = [t for t in missing if ran_on_full_disk(t)]
    check("every finished task's output is in its sandbox (%d finished; %d sandboxes garbage "
          "collected, %d outputs lost to the full disk)"
          % (len(finished), sum(1 for t in finished if t in collected), len(excused)),
          ["out-%s missing" % t for t in missing if t not in excused])
    check("no task lost before it reached the agent ran (%d such)" % len(never_ran),
          ["%s ran: its output is in a sandbox" % t for t in never_ran if "out-" + t in found])

    # Nothing left that no task owns: no container, cgroup, process or
    # mount once all are terminal; every sandbox is a launched task's.
    containers = get_json("http://127.0.0.1:5051/containers")
    live = {c.get("container_id", {}).get("value", "") for c in containers}
    leftovers = []
    for entry in sorted(os.listdir(a.cgroot)) if os.path.isdir(a.cgroot) else []:
        path = os.path.join(a.cgroot, entry)
        if not os.path.isdir(path) or entry in live:
            continue
        procs = []
        for root, _, _ in os.walk(path):
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    procs += f.read().split()
            except OSError:
                pass
        leftovers.append("cgroup %s (%d processes)" % (entry, len(procs)))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(a.agent_work + "/") and not any(c in point for c in live if c):
                leftovers.append("mount %s" % point)
    task_ids = set(launched)
    for sandbox in sandboxes:
        executor = os.path.basename(os.path.dirname(os.path.dirname(sandbox)))
        if executor not in task_ids and not any(t in executor for t in task_ids):
            leftovers.append("sandbox of executor %s" % executor)
    check("no container, cgroup, process, mount or sandbox is left that no task owns (%d live)"
          % len(live), leftovers)

    # The master's and the agent's views agree: in two looks 3 s apart
    # while tasks ran, what the agent held steady the master must hold the
    # same at the second look, and what the master held steady the agent.
    def tasks_of(path, agent_side):
        with open(os.path.join(a.work, path)) as f:
            doc = json.load(f)
        out = {}
        for fw in doc.get("frameworks", []) + doc.get("completed_frameworks", []):
            if agent_side:
                found_tasks = [t for ex in fw.get("executors", []) + fw.get("completed_executors", [])
                               for t in ex.get("tasks", []) + ex.get("queued_tasks", [])
                               + ex.get("completed_tasks", [])]
            else:
                found_tasks = (fw.get("tasks", []) + fw.get("completed_tasks", [])
                               + fw.get("unreachable_tasks", []))
            for t in found_tasks:
                out[t["id"]] = t["state"]
        return out

    disagree, compared, lagging = [], 0, 0
    pairs = sorted(int(n.split("-")[1].split(".")[0]) for n in os.listdir(a.work)
                   if n.startswith("first-") and n.endswith("-master.json"))
    looks = []
    for n in pairs:
        try:
            looks.append((tasks_of("first-%d-master.json" % n, False),
                          tasks_of("second-%d-master.json" % n, False),
                          tasks_of("first-%d-agent.json" % n, True),
                          tasks_of("second-%d-agent.json" % n, True)))
        except (OSError, ValueError) as e:
            disagree.append("look after event %d unreadable: %s" % (n, e))
    for m1, m2, g1, g2 in looks:
        # What runs on the agent (steadily, in both looks) the master must know
        # and must not think ended; what the master holds live (steadily) the
        # agent must know. The master may lag behind the agent's newer state
        # while that update waits for the one before it to be acknowledged, as
        # in Mesos: counted, not a fault.
        for t, s in g2.items():
            if s not in TERMINAL and g1.get(t) == s:
                compared += 1
                if t not in m2:
                    disagree.append("%s: %s on the agent, unknown to the master" % (t, s))
                elif m2[t] in TERMINAL:
                    disagree.append("%s: %s on the agent, %s on the master" % (t, s, m2[t]))
                elif m2[t] != s:
                    lagging += 1
        for t, s in m2.items():
            if s not in TERMINAL and m1.get(t) == s and t not in g2:
                disagree.append("%s: %s on the master, unknown to the agent" % (t, s))
    check("the master's and the agent's views agree in %d looks (%d steady live tasks, %d with "
          "the master one update behind)" % (len(looks), compared, lagging),
          disagree + ([] if compared else ["no live task to compare"]))

    recov = {}
    for _, kind, took in events:
        recov.setdefault(kind, []).append(took)
    print("chaos: %d tasks, %d updates received, %d retries (the same update again), "
          "%d reconciliation answers" % (len(launched), len(updates), retries,
                                         sum(1 for u in updates if u[3] == RECONCILIATION)))
    print("chaos: end states %s" % ", ".join("%s %d" % kv for kv in sorted(states.items())))
    for kind in sorted(recov):
        v = recov[kind]
        print("chaos: %s x%d, recovery p50 %d ms, max %d ms" %
              (kind, len(v), statistics.median(v), max(v)))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
