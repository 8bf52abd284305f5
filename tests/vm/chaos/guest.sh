#!/bin/bash
# Chaos tier (issue 18), in the VM guest under systemd and pure cgroup v2:
# two frameworks (the Rust driver's chaos_framework and a pymesos one) run
# TASKS tasks each, busybox-image and plain-command, short and long, some
# fetching a URI, while the agent is killed with SIGKILL at random moments
# (at least 10 times), the master too (at least 3), each is restarted once
# by systemctl, busy loops hog every core throughout, and for a while the
# agent's work dir filesystem (a small tmpfs) is full. Then check.py checks
# the invariants and prints the counts; each invariant is a PASS/FAIL line.
# Runs from the 9p share, which holds tepui's Debian package, a busybox OCI
# layout, the two frameworks, check.py and the pymesos site-packages.
set -u
share=/mnt/share
. "$share/check.sh"
tasks=${CHAOS_TASKS:-100}
agent_kills=${CHAOS_AGENT_KILLS:-11}
master_kills=${CHAOS_MASTER_KILLS:-3}
# The tier's own logs go straight to the share, so that even a run cut off
# by the VM's timeout leaves them (tests/vm/run.sh TEPUI_VM_ARTIFACTS).
work=$share/artifacts
wd=/var/lib/tepui/agent
cgroot=/sys/fs/cgroup/system.slice/tepui-containers.service/containers
mkdir -p "$work"
say() { echo "chaos: $(date +%T.%N | cut -c1-12) $*"; }
now_ms() { date +%s%3N; }
# Polls COMMAND... every 0.1 s for up to SECONDS; true once it holds.
wait_for() {
    local tries=$(($1 * 10))
    shift
    while [ "$tries" -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}
up() { timeout 3 busybox wget -q -O /dev/null "$1" 2>/dev/null; }
agent_up() { up http://127.0.0.1:5051/state; }
registered() { tepui agents 2>/dev/null | grep -q " true "; }
# The master is back once it answers and the agent has re-registered.
master_up() { up http://127.0.0.1:5050/master/state && registered; }

# 1. tepui from its package, the agent's work dir on a 384 MiB tmpfs (so
# it can be filled), Debian's registry holding the busybox image.
mkdir -p "$wd"
mount -t tmpfs -o size=384m tmpfs "$wd"
dpkg -i "$share"/tepui_*.deb >"$work/install.log" 2>&1 || { tail "$work/install.log"; exit 1; }
cat >>/etc/tepui/agent.env <<'ENV'
TEPUI_INSECURE_REGISTRIES=127.0.0.1:5000
TEPUI_LOG=debug
ENV
cat >/etc/docker/registry/config.yml <<'YAML'
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: 127.0.0.1:5000
YAML
systemctl restart docker-registry
systemctl enable --now tepui-master tepui-agent >"$work/enable.log" 2>&1
wait_for 60 sh -c 'busybox wget -qO- http://127.0.0.1:5000/v2/ >/dev/null 2>&1'
skopeo copy --quiet --dest-tls-verify=false "oci:$share/busybox:latest" \
    docker://127.0.0.1:5000/busybox:latest >"$work/push.log" 2>&1
wait_for 60 registered
detail="$(tepui agents 2>&1 | tail -1)"
check "tepui is installed and the agent registered" registered
mkdir -p /var/tmp/chaos/py
echo "the chaos tier's fetched file" >/var/tmp/chaos/payload.txt
tar xf "$share/site-packages.tar" -C /var/tmp/chaos/py

# 2. Busy loops on every core, for the whole run.
hogs=()
for _ in $(seq "$(nproc)"); do
    sh -c 'while :; do :; done' &
    hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT

# 3. The frameworks.
image=127.0.0.1:5000/busybox:latest
deadline=${CHAOS_DEADLINE:-600}
start_ms=$(now_ms)
"$share/chaos_framework" 127.0.0.1:5050 rust "$tasks" "$image" "$deadline" "$work/rust.log" \
    >"$work/rust.out" 2>&1 &
rust=$!
PYTHONPATH=/var/tmp/chaos/py python3 "$share/chaos_pymesos.py" 127.0.0.1:5050 py "$tasks" "$image" \
    "$deadline" "$work/py.log" >"$work/py.out" 2>&1 &
py=$!
say "frameworks started: rust (pid $rust), pymesos (pid $py), $tasks tasks each"

# 4. The events, in a random order, a random 2-9 s apart, while tasks run:
# SIGKILLs of the agent and the master, one systemctl restart of each, and
# one period of 15 s with the work dir full. Each recovery is timed: from
# the kill to the daemon answering its state endpoint (the agent answers
# 503 while it recovers).
events=()
for _ in $(seq "$agent_kills"); do events+=(kill-agent); done
for _ in $(seq "$master_kills"); do events+=(kill-master); done
events+=(restart-agent restart-master disk-full)
mapfile -t events < <(printf '%s\n' "${events[@]}" | shuf)
# Two looks at both daemons' views 3 s apart after every third event,
# while tasks run, for check.py to compare (what is steady must agree).
snap() {
    timeout 10 busybox wget -qO "$work/$1-master.json" http://127.0.0.1:5050/master/state
    timeout 10 busybox wget -qO "$work/$1-agent.json" http://127.0.0.1:5051/state
}
: >"$work/events"
done_events=0
for event in "${events[@]}"; do
    done_events=$((done_events + 1))
    if [ $((done_events % 3)) = 1 ] && [ "$done_events" -gt 1 ]; then
        wait_for 60 master_up
        snap "first-$done_events"
        sleep 3
        snap "second-$done_events"
    fi
    sleep "$(shuf -i 2-9 -n 1).$(shuf -i 0-9 -n 1)"
    t0=$(now_ms)
    case $event in
    kill-agent | kill-master)
        unit=tepui-${event#kill-}
        pid=$(systemctl show -p MainPID --value "$unit")
        kill -9 "$pid"
        # systemd starts a new one a second later (Restart=always).
        wait_for 60 sh -c "p=\$(systemctl show -p MainPID --value $unit); [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ]"
        if [ "$unit" = tepui-agent ]; then wait_for 120 agent_up; else wait_for 120 master_up; fi
        ;;
    restart-agent)
        systemctl restart tepui-agent
        wait_for 120 agent_up
        ;;
    restart-master)
        systemctl restart tepui-master
        wait_for 120 master_up
        ;;
    disk-full)
        dd if=/dev/zero of="$wd/chaos-filler" bs=1M >/dev/null 2>&1
        say "work dir full: $(df -h "$wd" | awk 'NR == 2 { print $4 }') free"
        sleep 15
        rm -f "$wd/chaos-filler"
        ;;
    esac
    t1=$(now_ms)
    echo "$t0 $event $((t1 - t0))" >>"$work/events"
    say "$event done in $((t1 - t0)) ms"
done
say "events done; waiting for the frameworks"
wait "$rust"
rust_rc=$?
wait "$py"
py_rc=$?
kill "${hogs[@]}" 2>/dev/null
say "frameworks ended (rust $rust_rc, pymesos $py_rc) after $((($(now_ms) - start_ms) / 1000)) s"
check "the Rust framework ran to its end" grep -q ' done$' "$work/rust.log"
check "the pymesos framework ran to its end" grep -q ' done$' "$work/py.log"

# 5. Once every task is terminal its container goes; then the invariants.
wait_for 120 sh -c '[ "$(busybox wget -qO- http://127.0.0.1:5051/containers 2>/dev/null)" = "[]" ]'
# The daemons' journal beside the logs (check.py reads the agent's GC).
journalctl -o short-precise -u tepui-agent -u tepui-master >"$work/journal.txt" 2>&1
python3 "$share/check.py" --work "$work" --agent-work "$wd" --cgroot "$cgroot" \
    --logs "$work/rust.log" "$work/py.log" --tasks "$((2 * tasks))"
check_rc=$?
summary || exit 1
exit "$check_rc"
