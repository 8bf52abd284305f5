# Sourced by the benchmarks: installs the Debian packages of the tools
# named, each TOOL or TOOL:PACKAGE when the package is named otherwise.
install_missing() {
    local need=()
    for tool in "$@"; do
        command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
    done
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
}
