#!/bin/sh
# Set up dockertw on Debian 12 and run it.
#
#   sudo ./bootstrap.sh          install everything, then run the daemon in the foreground
#                                (socket unix:/run/dockertw.sock, state in /var/lib/dockertw)
#   sudo ./bootstrap.sh test     install everything, then run the whole test suite
#   sudo ./bootstrap.sh install  install everything and stop there
#
# Debian packages come from apt; Python packages go into a virtual environment in
# ./.venv, where the project itself is installed (not editable, so that twistd finds
# its plugin).  Extra arguments after "run"/"test" go to twistd/pytest.
set -eu

cd "$(dirname "$0")"
VENV="${DOCKERTW_VENV:-$PWD/.venv}"
DEBIAN_PACKAGES="python3 python3-venv runc tini busybox-static openssl ca-certificates iproute2 procps git
    containernetworking-plugins iptables"
TEST_PACKAGES="tinyproxy microsocks docker-registry skopeo apache2-utils docker-compose gcc libc6-dev curl"

need_packages() {
    for package in $DEBIAN_PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || { echo "$package"; }
    done
}

install_debian_packages() {
    missing=$(need_packages)
    [ -z "$missing" ] && return 0
    echo "bootstrap: installing Debian packages:" $missing
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

without_service_starts() {
    # Install Debian packages without letting their services start (tinyproxy and
    # dockerd would otherwise start system-wide on a machine with systemd).
    policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        "$@"
        return
    fi
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    status=0
    "$@" || status=$?
    rm -f "$policy"
    return $status
}

install_test_packages() {
    # The tests drive the real docker CLI (Debian 12 ships it only inside docker.io),
    # real proxies and real registries (docker-registry, whose service is kept from
    # starting; skopeo pushes OCI indexes; htpasswd makes bcrypt password files) on
    # loopback; gcc and libc6-dev build the static program the seccomp tests make
    # syscalls with; docker-compose runs projects.
    missing=""
    command -v docker >/dev/null 2>&1 || missing="docker.io"
    for package in $TEST_PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing="$missing $package"
    done
    [ -z "$missing" ] && return 0
    echo "bootstrap: installing Debian packages for the tests:" $missing
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    without_service_starts apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

install_python_packages() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check ".[test]"
    # A clean build directory keeps a later install from packaging stale files.
    rm -rf build
}

install_all() {
    install_debian_packages
    install_python_packages
}

command="${1:-run}"
[ $# -gt 0 ] && shift
case "$command" in
    install)
        install_all
        ;;
    run)
        install_all
        exec "$VENV/bin/twistd" --nodaemon --pidfile= dockertw "$@"
        ;;
    test)
        install_all
        install_test_packages
        "$VENV/bin/ruff" check .
        "$VENV/bin/mypy"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: $0 [run|test|install] [ARGS...]" >&2
        exit 2
        ;;
esac
