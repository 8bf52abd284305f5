# Sourced by the guest scenarios: `check NAME COMMAND...` runs COMMAND and
# prints PASS or FAIL with NAME and $detail (then cleared), counting both;
# `summary` prints the counts and fails if anything did.
passed=0
failed=0
detail=
check() {
    local name=$1
    shift
    if "$@"; then
        echo "PASS $name${detail:+ ($detail)}"
        passed=$((passed + 1))
    else
        echo "FAIL $name${detail:+ ($detail)}"
        failed=$((failed + 1))
    fi
    detail=
}
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
