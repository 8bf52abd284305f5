#!/usr/bin/env bash
# The compatibility tier: Mesos clients nobody here wrote, unchanged,
# against a `tepui local` cluster on 127.0.0.1 (its own ports, work dir,
# cgroup subtree and image store with a busybox image). Prints PASS/FAIL
# per check and closes on 'N passed, M failed'.
#   usage: tests/compat/run.sh VENV TEPUI_BIN_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:?usage: run.sh VENV TEPUI_BIN_DIR}
bin=$(cd "${2:?usage: run.sh VENV TEPUI_BIN_DIR}" && pwd)
py=$venv/bin/python
export PATH=$venv/bin:$PATH
passed=0
failed=0
check() { # NAME COMMAND... ; the command's output goes to $work/NAME.log
    local name=$1
    shift
    local log=$work/${name// /_}.log
    local start=$SECONDS
    if "$@" >"$log" 2>&1; then
        echo "PASS $name ($((SECONDS - start)) s)"
        passed=$((passed + 1))
    else
        echo "FAIL $name ($((SECONDS - start)) s); its output's last lines:"
        tail -15 "$log" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}
free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tepui-compat.XXXXXX")
# The cgroup2 mount: the mount point (field 5) of the line whose type,
# after the optional fields' "-", is cgroup2.
mount=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' /proc/self/mountinfo)
[ -n "$mount" ] || { echo "no cgroup2 mount" >&2; exit 1; }
cgroup=$mount/tepui-compat-$$
local_pid=
cleanup() {
    if [ -n "$local_pid" ]; then
        kill -INT "$local_pid" 2>/dev/null
        wait "$local_pid" 2>/dev/null
    fi
    # What tasks are left (none when every check passed) go with the subtree.
    if [ -d "$cgroup" ]; then
        find "$cgroup" -name cgroup.kill -exec sh -c 'echo 1 >"$1"' _ {} \; 2>/dev/null
        sleep 0.5
        find "$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

master_port=$(free_port)
agent_port=$(free_port)
master=127.0.0.1:$master_port
"$here/../fixtures/busybox-image.sh" "$work/busybox"
"$bin/tepui" image --store "$work/images" import "$work/busybox" --name busybox:latest >/dev/null
TEPUI_COMMAND_EXECUTOR=$bin/tepui-executor "$bin/tepui" local --work-dir "$work/local" \
    --master-port "$master_port" --agent-port "$agent_port" --cgroup-root "$cgroup" \
    --container-state-dir "$work/state" --store "$work/images" >"$work/local.log" 2>&1 &
local_pid=$!
for _ in $(seq 300); do
    grep -q ready "$work/local.log" && break
    sleep 0.1
done
grep -q ready "$work/local.log" || { echo "tepui local did not start:"; cat "$work/local.log"; exit 1; }

check "pymesos scheduler: 10 tasks, one from an OCI image, reconciled" \
    "$py" "$here/pymesos_scheduler.py" --master "$master" --image busybox:latest \
    --prefix first --save-id "$work/framework-id"
check "pymesos scheduler: failover with the saved framework id" \
    "$py" "$here/pymesos_scheduler.py" --master "$master" --prefix second \
    --failover-from "$work/framework-id" --save-id "$work/framework-id"
check "pymesos custom executor: LAUNCH, updates and framework messages both ways" \
    "$py" "$here/pymesos_executor.py" scheduler --master "$master"
check "mesoshttp scheduler: one task" "$py" "$here/mesoshttp_scheduler.py" "$master"

# avmesos-cli against the same cluster: each listing names what it must.
printf '[master]\naddress = "%s"\n' "$master" >"$work/mesos-cli.toml"
export MESOS_CLI_CONFIG=$work/mesos-cli.toml
agent_id=$("$py" -c 'import json, sys, urllib.request; print(json.load(urllib.request.urlopen("http://" + sys.argv[1] + "/master/slaves"))["slaves"][0]["id"])' "$master")
framework_id=$(cat "$work/framework-id")
lists() { # WHAT NEEDLE: `mesos-cli WHAT` prints NEEDLE
    local out
    out=$(mesos-cli $1 2>&1)
    echo "$out"
    grep -q -- "$2" <<<"$out"
}
check "avmesos-cli agent list names the agent" lists "agent list" "$agent_id"
check "avmesos-cli framework list --all names the failed-over framework" \
    lists "framework list --all" "$framework_id *False *tepui-compat-pymesos"
check "avmesos-cli task list --all names a finished task" lists "task list --all" "first-0 *TASK_FINISHED"
check "pymesos operator drivers: health and version of both, the master's agents, frameworks, tasks" \
    "$py" "$here/pymesos_operator.py" "$master" "127.0.0.1:$agent_port" "$framework_id" first-0

# While a task runs (started by `tepui run`: a line, 5 s of sleep, another
# line), the default listings show it and its framework, and `mesos-cli
# task attach` (how avmesos-cli reads a task's stdout) must print both
# lines, from the sandbox's first to its last, and exit 0 when the task
# ends. attach insists on a terminal, so it runs under script(1).
running_task() { # NAME: the id of the running task called NAME
    "$py" -c 'import json, sys, urllib.request
print(" ".join(t["id"] for t in json.load(urllib.request.urlopen("http://" + sys.argv[1] + "/tasks"))["tasks"]
               if t["name"] == sys.argv[2] and t["state"] == "TASK_RUNNING"))' "$master" "$1"
}
"$bin/tepui" run --master "$master" --name attached -- \
    'echo attach-first-line; sleep 5; echo attach-last-line' >"$work/attached-run.log" 2>&1 &
attached_run=$!
attached=
for _ in $(seq 100); do
    attached=$(running_task attached)
    [ -n "$attached" ] && break
    sleep 0.1
done
check "avmesos-cli task list names the running task" lists "task list" "${attached:-no task started} *TASK_RUNNING"
check "avmesos-cli framework list names its framework, active" lists "framework list" "True .*tepui-run"
attach_reads_stdout() {
    local out rc
    out=$(script -qec "mesos-cli task attach --no-stdin $attached" /dev/null 2>&1)
    rc=$?
    echo "$out"
    wait "$attached_run" || { echo "tepui run failed:"; cat "$work/attached-run.log"; return 1; }
    [ "$rc" -eq 0 ] && grep -q attach-first-line <<<"$out" && grep -q attach-last-line <<<"$out"
}
check "avmesos-cli task attach prints a running task's stdout to its end" attach_reads_stdout

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
