#!/bin/sh
# Set up dockertw on Debian 12 and run it.
#
#   sudo ./bootstrap.sh                  install everything (with a docker client), then run
#                                        the daemon in the foreground (socket
#                                        unix:/run/dockertw.sock, state in /var/lib/dockertw)
#   sudo ./bootstrap.sh test [ARGS]      install everything, then run the whole test suite
#   sudo ./bootstrap.sh install          install everything and stop there
#   sudo ./bootstrap.sh image [REF]      import a busybox-static root as REF (default
#                                        busybox:latest) into the running daemon
#   sudo ./bootstrap.sh install-service  install and start the systemd units (socket
#                                        activation: dockertw.socket, dockertw.service)
#   ./bootstrap.sh units DIR             write the systemd units for this checkout into DIR
#   ./bootstrap.sh lock                  refresh constraints.txt from a fresh install
#
# Debian packages come from apt; Python packages go into a virtual environment in
# ./.venv at the versions in constraints.txt, where the project itself is installed
# (not editable, so that twistd finds its plugin).  Extra arguments after "run"/"test"
# go to twistd/pytest.
set -eu

cd "$(dirname "$0")"
REPO=$PWD
VENV="${DOCKERTW_VENV:-$PWD/.venv}"
DEBIAN_PACKAGES="python3 python3-venv runc tini busybox-static openssl ca-certificates iproute2 procps git
    containernetworking-plugins iptables"
TEST_PACKAGES="tinyproxy microsocks docker-registry skopeo apache2-utils docker-compose gcc libc6-dev curl systemd"
SOCKET=/run/dockertw.sock

missing_packages() {
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || echo "$package"
    done
}

apt_install() {
    echo "bootstrap: installing Debian packages:" "$@"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    without_service_starts apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_debian_packages() {
    # shellcheck disable=SC2086
    missing=$(missing_packages $DEBIAN_PACKAGES)
    # shellcheck disable=SC2086
    [ -z "$missing" ] || apt_install $missing
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

install_client() {
    # The docker CLI: Debian 12 ships it only inside docker.io, whose dockerd and
    # containerd are kept from starting now and at boot (dockertw is the daemon here).
    command -v docker >/dev/null 2>&1 && return 0
    apt_install docker.io
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 \
            || true
    fi
    echo "bootstrap: installed the docker client (docker.io; its dockerd and containerd" \
         "services are disabled)"
}

install_test_packages() {
    # The tests also drive real proxies and real registries on loopback
    # (docker-registry, whose service is kept from starting; skopeo pushes OCI indexes;
    # htpasswd makes bcrypt password files), docker-compose, gcc and libc6-dev (to
    # build the static program the seccomp tests make syscalls with), curl (it scrapes
    # the metrics) and systemd's tools.
    # shellcheck disable=SC2086
    missing=$(missing_packages $TEST_PACKAGES)
    # shellcheck disable=SC2086
    [ -z "$missing" ] || apt_install $missing
}

pip_install() {
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt "$@"
}

install_python_packages() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    pip_install --upgrade pip
    pip_install ".[test]"
    # A clean build directory keeps a later install from packaging stale files.
    rm -rf build
}

install_all() {
    install_debian_packages
    install_client
    install_python_packages
}

lock() {
    # constraints.txt: every Python package of a fresh install of ".[test]" at the
    # newest versions that day; run the tests with it before committing it.
    install_debian_packages
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    python3 -m venv "$scratch/venv"
    "$scratch/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$scratch/venv/bin/python" -m pip install -q --disable-pip-version-check ".[test]"
    {
        echo "# Tested versions of every Python package bootstrap.sh installs (pip -c)."
        echo "# Made by './bootstrap.sh lock' with $("$scratch/venv/bin/python" --version)."
        "$scratch/venv/bin/python" -m pip freeze --all --exclude dockertw | sort -f
    } > constraints.txt
    rm -rf build
    echo "bootstrap: constraints.txt refreshed"
}

first_image() {
    # A root filesystem of busybox-static (one link per applet) imported as an image.
    reference="${1:-busybox:latest}"
    host="${DOCKER_HOST:-unix://$SOCKET}"
    install_debian_packages
    install_client
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" \
        "$rootfs/tmp" "$rootfs/root"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        > "$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
    tar -C "$rootfs" -c . | docker -H "$host" import \
        --change 'CMD ["sh"]' - "$reference"
    echo "bootstrap: imported $reference; try: docker -H $host run --rm $reference echo hello"
}

write_units() {
    # The systemd units of contrib/systemd for this checkout's virtual environment.
    mkdir -p "$1"
    for unit in dockertw.service dockertw.socket; do
        sed -e "s|@VENV@|$VENV|g" -e "s|@REPO@|$REPO|g" "contrib/systemd/$unit" > "$1/$unit"
    done
}

install_service() {
    install_all
    getent group docker >/dev/null || groupadd --system docker
    write_units /etc/systemd/system
    mkdir -p /etc/dockertw
    if [ ! -d /run/systemd/system ]; then
        echo "bootstrap: units written to /etc/systemd/system; systemd is not running" \
             "here, so nothing was started"
        return 0
    fi
    systemctl daemon-reload
    systemctl enable --now dockertw.socket
    echo "bootstrap: dockertw.socket listens on $SOCKET; the first client starts" \
         "dockertw.service. Try: docker -H unix://$SOCKET version"
}

command="${1:-run}"
[ $# -gt 0 ] && shift
case "$command" in
    install)
        install_all
        ;;
    run)
        install_all
        echo "bootstrap: starting the daemon; once it listens it prints the docker command" \
             "to try (stop it with Ctrl-C)"
        exec "$VENV/bin/twistd" --nodaemon --pidfile= dockertw "$@"
        ;;
    test)
        install_all
        install_test_packages
        "$VENV/bin/ruff" check .
        "$VENV/bin/mypy"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    image)
        first_image "$@"
        ;;
    install-service)
        install_service
        ;;
    units)
        [ $# -eq 1 ] || { echo "usage: $0 units DIR" >&2; exit 2; }
        write_units "$1"
        ;;
    lock)
        lock
        ;;
    *)
        echo "usage: $0 [run|test|install|image|install-service|units|lock] [ARGS...]" >&2
        exit 2
        ;;
esac
