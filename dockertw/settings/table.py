"""daemon.json: one line per key, naming the command-line option it stands for.

A new daemon option that Docker also reads from daemon.json is one :class:`Setting`
line in :data:`SETTINGS` (and, if SIGHUP applies it, ``reloads=True`` plus its place in
:meth:`dockertw.daemon.live.LiveSettings.apply`); its key then leaves
:data:`DOCKER_ONLY`.
"""

from __future__ import annotations

import attrs

from dockertw.settings.kinds import (
    ADDRESS_POOLS,
    BOOL,
    INT,
    RUNTIMES,
    STRING,
    STRING_MAP,
    STRINGS,
    ULIMITS,
    Kind,
)

__all__ = ["Setting", "SETTINGS", "BY_KEY", "DOCKER_ONLY", "IGNORED", "FLAT"]


@attrs.frozen
class Setting:
    """A daemon.json key and the option it sets.

    ``flag`` is the long option, ``target`` where the parsed options keep its value
    (the flag's name unless told).  ``reloads``: SIGHUP applies a new value.
    ``merges``: the file's value and the flags' add up instead of conflicting.
    ``also``: other flags that set the same thing (a conflict too).
    """

    key: str
    flag: str
    kind: Kind
    reloads: bool = False
    merges: bool = False
    target: str = ""
    also: tuple[str, ...] = ()

    @property
    def option(self) -> str:
        return self.target or self.flag


SETTINGS = (
    Setting("hosts", "host", STRINGS, target="addresses", also=("listen",)),
    Setting("data-root", "data-root", STRING),
    Setting("exec-root", "exec-root", STRING),
    Setting("pidfile", "pidfile", STRING),
    Setting("group", "group", STRING),
    Setting("debug", "debug", BOOL, reloads=True),
    Setting("log-level", "log-level", STRING),
    Setting("labels", "label", STRINGS, reloads=True, target="labels"),
    Setting("experimental", "experimental", BOOL),
    Setting("live-restore", "live-restore", BOOL),
    Setting("min-api-version", "min-api-version", STRING),  # dockertw's own key
    Setting("tls", "tls", BOOL),
    Setting("tlsverify", "tlsverify", BOOL),
    Setting("tlscacert", "tlscacert", STRING),
    Setting("tlscert", "tlscert", STRING),
    Setting("tlskey", "tlskey", STRING),
    Setting("cgroup-parent", "cgroup-parent", STRING),
    Setting("default-runtime", "default-runtime", STRING, reloads=True),
    Setting("runtimes", "add-runtime", RUNTIMES, reloads=True, merges=True,
            target="runtimes"),
    Setting("default-ulimits", "default-ulimit", ULIMITS, target="default-ulimits"),
    Setting("log-driver", "log-driver", STRING),
    Setting("log-opts", "log-opt", STRING_MAP, target="log-opts"),
    Setting("registry-mirrors", "registry-mirror", STRINGS, reloads=True,
            target="registry-mirrors"),
    Setting("insecure-registries", "insecure-registry", STRINGS, reloads=True,
            target="insecure-registries"),
    # dockerd reloads these two; dockertw sizes its pools at start.
    Setting("max-concurrent-downloads", "max-concurrent-downloads", INT),
    Setting("max-concurrent-uploads", "max-concurrent-uploads", INT),
    Setting("bridge", "bridge", STRING),
    Setting("bip", "bip", STRING),
    Setting("fixed-cidr", "fixed-cidr", STRING),
    Setting("default-address-pools", "default-address-pool", ADDRESS_POOLS,
            target="default-address-pools"),
    Setting("mtu", "mtu", INT),
    Setting("ip", "ip", STRING),
    Setting("ip-masq", "ip-masq", BOOL),
    Setting("icc", "icc", BOOL),
    Setting("iptables", "iptables", BOOL),
    Setting("ip-forward", "ip-forward", BOOL),
    Setting("userland-proxy", "userland-proxy", BOOL),
    Setting("dns", "dns", STRINGS, target="dns"),
    Setting("dns-search", "dns-search", STRINGS, target="dns-search"),
    Setting("dns-opts", "dns-opt", STRINGS, target="dns-opts"),
)
BY_KEY = {setting.key: setting for setting in SETTINGS}

# Keys whose value is an object of its own, not keys to flatten (as dockerd).
FLAT = frozenset({"runtimes", "default-ulimits", "log-opts", "default-network-opts",
                  "features", "builder", "cluster-store-opts"})
# Keys dockerd accepts and ignores.
IGNORED = frozenset({"features", "builder", "deprecated-key-path",
                     "allow-nondistributable-artifacts"})

# dockerd's daemon.json keys for what dockertw does not have (yet): refused with a
# message saying so, not as unknown keys.
DOCKER_ONLY = frozenset({
    "api-cors-header", "authorization-plugins", "bip", "bip6", "bridge",
    "cdi-spec-dirs", "cluster-advertise", "cluster-store", "cluster-store-opts",
    "containerd", "containerd-namespace", "containerd-plugin-namespace", "cpu-rt-period",
    "cpu-rt-runtime", "cri-containerd", "default-address-pools", "default-cgroupns-mode",
    "default-gateway", "default-gateway-v6", "default-ipc-mode", "default-network-opts",
    "default-shm-size", "dns", "dns-opts", "dns-search", "exec-opts", "fixed-cidr",
    "fixed-cidr-v6", "firewall-backend", "host-gateway-ip", "host-gateway-ips",
    "http-proxy", "https-proxy", "icc", "init", "init-path", "insecure-registries", "ip",
    "ip-forward", "ip-forward-no-drop", "ip-masq", "ip6tables", "iptables", "ipv6",
    "live-restore", "log-format", "max-concurrent-downloads", "max-concurrent-uploads",
    "max-download-attempts", "metrics-addr", "mtu", "network-control-plane-mtu",
    "network-diagnostic-port", "no-new-privileges", "no-proxy", "node-generic-resources",
    "oom-score-adjust", "raw-logs", "registry-mirrors", "seccomp-profile",
    "selinux-enabled", "shutdown-timeout", "storage-driver", "storage-opts",
    "swarm-default-advertise-addr", "swarm-raft-election-tick",
    "swarm-raft-heartbeat-tick", "userland-proxy", "userland-proxy-path",
    "userns-remap", "allow-direct-routing",
} - set(BY_KEY))
