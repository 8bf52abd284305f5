#!/usr/bin/env bash
# The compatibility tier: Mesos clients nobody here wrote, unchanged,
# against `tepui local` clusters on 127.0.0.1 (each with its own ports,
# work dir and cgroup subtree; one image store with a busybox image). The
# first runs as `tepui local` does by default, with authentication on in
# every realm: the clients that can authenticate (pymesos's scheduler
# driver, mesoshttp, avmesos-cli, tepui itself) use the credential it
# made, and requests without one are refused. The second runs with
# --no-authentication, for pymesos's executor and operator drivers, which
# have no way to send a credential (nor could they to a Mesos cluster with
# authentication on). Prints PASS/FAIL per check and closes on 'N passed,
# M failed'.
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
cgroups=()
local_pids=()
cleanup() {
    for pid in "${local_pids[@]}"; do
        kill -INT "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    # What tasks are left (none when every check passed) go with the subtrees.
    for cgroup in "${cgroups[@]}"; do
        [ -d "$cgroup" ] || continue
        find "$cgroup" -name cgroup.kill -exec sh -c 'echo 1 >"$1"' _ {} \; 2>/dev/null
        sleep 0.5
        find "$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

"$here/../fixtures/busybox-image.sh" "$work/busybox"
"$bin/tepui" image --store "$work/images" import "$work/busybox" --name busybox:latest >/dev/null
start_local() { # NAME MASTER_PORT AGENT_PORT [FLAG...]: a cluster, waited for
    local name=$1 master_port=$2 agent_port=$3
    shift 3
    local cgroup=$mount/tepui-compat-$name-$$
    cgroups+=("$cgroup")
    TEPUI_COMMAND_EXECUTOR=$bin/tepui-executor "$bin/tepui" local --work-dir "$work/$name" \
        --master-port "$master_port" --agent-port "$agent_port" --cgroup-root "$cgroup" \
        --container-state-dir "$work/$name-state" --store "$work/images" "$@" >"$work/$name.log" 2>&1 &
    local_pids+=($!)
    for _ in $(seq 300); do
        grep -q ready "$work/$name.log" && break
        sleep 0.1
    done
    grep -q ready "$work/$name.log" || { echo "tepui local ($name) did not start:"; cat "$work/$name.log"; exit 1; }
}
get_json() { # ADDRESS PATH: the JSON of GET http://ADDRESS/PATH, with the credential when there is one
    "$py" -c 'import base64, json, os, sys, urllib.request
request = urllib.request.Request("http://" + sys.argv[1] + sys.argv[2])
if os.environ.get("COMPAT_PRINCIPAL"):
    token = base64.b64encode((os.environ["COMPAT_PRINCIPAL"] + ":" + os.environ["COMPAT_SECRET"]).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
print(json.dumps(json.load(urllib.request.urlopen(request))))' "$1" "$2"
}

master_port=$(free_port)
agent_port=$(free_port)
master=127.0.0.1:$master_port
start_local secure "$master_port" "$agent_port"
credential=$work/secure/secrets/client.json
COMPAT_PRINCIPAL=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["principal"])' "$credential")
COMPAT_SECRET=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["secret"])' "$credential")
export COMPAT_PRINCIPAL COMPAT_SECRET

# Without the credential, nothing is served: a scheduler's SUBSCRIBE, the
# master's state, the agent's; a wrong secret neither. Each 401 names
# its Mesos realm.
refused() { # ADDRESS PATH [USER:PASSWORD]: the request is answered 401 in a Mesos realm
    local code
    code=$("$py" -c 'import base64, sys, urllib.error, urllib.request
body = b"{\"type\": \"SUBSCRIBE\", \"subscribe\": {\"framework_info\": {\"user\": \"root\", \"name\": \"intruder\"}}}"
request = urllib.request.Request("http://" + sys.argv[1] + sys.argv[2],
                                 data=body if sys.argv[2] == "/api/v1/scheduler" else None,
                                 headers={"Content-Type": "application/json"})
if len(sys.argv) > 3:
    request.add_header("Authorization", "Basic " + base64.b64encode(sys.argv[3].encode()).decode())
try:
    print(urllib.request.urlopen(request, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("WWW-Authenticate"))' "$@")
    echo "$*: $code"
    # Mesos's realm of the endpoint: mesos-master-scheduler,
    # mesos-master-readonly, mesos-agent-readonly.
    [[ $code == '401 Basic realm="mesos-'*'"' ]]
}
check "authentication on: an unauthenticated SUBSCRIBE is refused (401)" refused "$master" /api/v1/scheduler
check "authentication on: a wrong secret is refused (401)" refused "$master" /api/v1/scheduler "$COMPAT_PRINCIPAL:wrong"
state_refused() { refused "$master" /master/state && refused "127.0.0.1:$agent_port" /state; }
check "authentication on: the master's and the agent's state need the credential" state_refused
check "pymesos scheduler: 10 tasks, one from an OCI image, reconciled" \
    "$py" "$here/pymesos_scheduler.py" --master "$master" --image busybox:latest \
    --prefix first --save-id "$work/framework-id"
check "pymesos scheduler: failover with the saved framework id" \
    "$py" "$here/pymesos_scheduler.py" --master "$master" --prefix second \
    --failover-from "$work/framework-id" --save-id "$work/framework-id"
check "mesoshttp scheduler: one task" "$py" "$here/mesoshttp_scheduler.py" "$master"

# avmesos-cli against the same cluster, with the credential in its config
# for the master and the agent: each listing names what it must.
printf '[master]\naddress = "%s"\nprincipal = "%s"\nsecret = "%s"\n[agent]\nprincipal = "%s"\nsecret = "%s"\n' \
    "$master" "$COMPAT_PRINCIPAL" "$COMPAT_SECRET" "$COMPAT_PRINCIPAL" "$COMPAT_SECRET" >"$work/mesos-cli.toml"
export MESOS_CLI_CONFIG=$work/mesos-cli.toml
agent_id=$(get_json "$master" /master/slaves | "$py" -c 'import json, sys; print(json.load(sys.stdin)["slaves"][0]["id"])')
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

# While a task runs (started by `tepui run`: a line, 5 s of sleep, another
# line), the default listings show it and its framework, and `mesos-cli
# task attach` (how avmesos-cli reads a task's stdout) must print both
# lines, from the sandbox's first to its last, and exit 0 when the task
# ends. attach insists on a terminal, so it runs under script(1).
running_task() { # NAME: the id of the running task called NAME
    get_json "$master" /tasks | "$py" -c 'import json, sys
print(" ".join(t["id"] for t in json.load(sys.stdin)["tasks"]
               if t["name"] == sys.argv[1] and t["state"] == "TASK_RUNNING"))' "$1"
}
"$bin/tepui" run --credential "$credential" --master "$master" --name attached -- \
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

# pymesos's executor and operator drivers send no credential: a cluster
# without authentication (the first one stopped), with a framework of its
# own for the operator calls to find.
kill -INT "${local_pids[0]}" 2>/dev/null
wait "${local_pids[0]}" 2>/dev/null
unset COMPAT_PRINCIPAL COMPAT_SECRET
open_master_port=$(free_port)
open_agent_port=$(free_port)
open_master=127.0.0.1:$open_master_port
start_local open "$open_master_port" "$open_agent_port" --no-authentication
check "pymesos custom executor: LAUNCH, updates and framework messages both ways" \
    "$py" "$here/pymesos_executor.py" scheduler --master "$open_master"
check "pymesos scheduler without authentication: 10 tasks" \
    "$py" "$here/pymesos_scheduler.py" --master "$open_master" --prefix first --save-id "$work/open-framework-id"
check "pymesos operator drivers: health and version of both, the master's agents, frameworks, tasks" \
    "$py" "$here/pymesos_operator.py" "$open_master" "127.0.0.1:$open_agent_port" "$(cat "$work/open-framework-id")" first-0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
