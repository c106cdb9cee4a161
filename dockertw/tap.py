"""``twistd dockertw``: command-line options and the service they build."""

from __future__ import annotations

import atexit
import grp
import ipaddress
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet import ssl
from twisted.python import usage

from dockertw import loglevel
from dockertw import versions as api_versions
from dockertw.access import (
    RELOAD_EVENTS,
    EngineTargets,
    PolicyBook,
    make_gate,
    policy_sources,
)
from dockertw.api import ApiConfig, build_resource
from dockertw.api.gate import Gate
from dockertw.api.limits import ConnectionLimits
from dockertw.api.router import Router
from dockertw.api.routers import all_routers
from dockertw.api.site import ApiSite
from dockertw.daemon.containers.records.config import check_cgroup_parent
from dockertw.daemon.distribution.config import RegistryConfig
from dockertw.daemon.engine import Engine, EngineConfig
from dockertw.daemon.logconfig import LogConfigError, log_settings, parse_size
from dockertw.daemon.networks import ipam
from dockertw.daemon.networks.service import NetworkConfig
from dockertw.errdefs import DockerError, InvalidParameter
from dockertw.listeners import (
    DEFAULT_SOCKET,
    ListenerGroup,
    ListenerService,
    ListenerSpec,
    parse_listener,
    wrap_tls,
)
from dockertw.loglevel import Logger
from dockertw.metrics import metrics_resource, start_metrics
from dockertw.pidfile import PidFileTaken, check_pidfile, remove_pidfile, write_pidfile
from dockertw.policy import PolicyError
from dockertw.runtime.openfiles import raise_open_files_limit
from dockertw.runtime.reaper import become_subreaper
from dockertw.runtime.runtimes import STOCK_RUNTIME, OciRuntime, check_runtimes
from dockertw.settings import (
    DEFAULT_CONFIG_FILE,
    SETTINGS,
    ConfigFileError,
    Setting,
    file_settings,
    parse_ulimit,
)
from dockertw.tlslisten import server_options

__all__ = ["Options", "makeService", "MAX_API_VERSION", "LOWEST_API_VERSION"]

MAX_API_VERSION = api_versions.MAX_API_VERSION
LOWEST_API_VERSION = "1.12"
_log = Logger()


def _docker_cert_path(name: str) -> str:
    directory = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
    return os.path.join(directory, name)


_FLAG_ALIASES = {"root": "data-root"}
_TARGETS = {flag: setting.option for setting in SETTINGS
            for flag in (setting.flag, *setting.also)}


def _socket_gid(group: str, explicit: bool) -> int | None:
    """The gid of ``group`` (a name or a number); none when the default ``docker``
    group does not exist, as dockerd, but a group asked for must exist."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if explicit:
            raise usage.UsageError(f"group {group!r} not found") from None
        return None


class Options(usage.Options):
    synopsis = ("[--config-file FILE] [-H ADDR]... [--listen DESC]... [--data-root DIR] "
                "[--tlsverify ...]")
    longdesc = (
        "Serve the Docker Engine API on every listener given (default "
        f"unix:{DEFAULT_SOCKET}) and run containers with an OCI runtime. Settings also "
        f"come from daemon.json (--config-file, default {DEFAULT_CONFIG_FILE})."
    )
    optFlags = [
        ["experimental", None, "Enable experimental routes."],
        ["live-restore", None, "Keep containers running while the daemon is stopped, "
                               "killed or upgraded; take them back at start."],
        ["tls", None, "Serve TCP listeners over TLS (implied by --tlsverify)."],
        ["tlsverify", None, "Serve TCP listeners over TLS and require a client "
                            "certificate signed by --tlscacert."],
        ["debug", "D", "Enable debug mode (log level debug)."],
    ]
    optParameters = [
        ["config-file", None, DEFAULT_CONFIG_FILE, "Daemon configuration file (daemon.json)."],
        ["data-root", None, "/var/lib/dockertw", "Root directory of the daemon's state."],
        ["exec-root", None, "/run/dockertw", "Root directory of the runtime's state."],
        ["pidfile", "p", "/run/dockertw.pid", "Path of the daemon's PID file."],
        ["group", "G", "docker", "Group of the UNIX sockets."],
        ["log-level", None, "info", "Log level (debug, info, warn, error, fatal)."],
        ["runtime", None, "runc", "Binary of the stock OCI runtime runc (or crun)."],
        ["default-runtime", None, STOCK_RUNTIME, "Runtime of containers that name none."],
        ["log-driver", None, "json-file", "Default logging driver of containers."],
        ["cgroup-parent", None, "dockertw", "Parent cgroup of the containers' cgroups."],
        ["min-api-version", None, api_versions.MIN_API_VERSION, "Oldest API version served."],
        ["tlscacert", None, None, "CA certificate that client certificates must be signed "
                                  "by [default: ~/.docker/ca.pem]"],
        ["tlscert", None, None, "Server certificate [default: ~/.docker/cert.pem]"],
        ["tlskey", None, None, "Server private key [default: ~/.docker/key.pem]"],
        ["max-concurrent-downloads", None, 3, "Layers a pull downloads at once.", int],
        ["max-concurrent-uploads", None, 5, "Layers a push uploads at once.", int],
        ["certs-dir", None, "/etc/docker/certs.d", "Registry CAs and client certificates, "
                                                   "in HOST:PORT/ sub-directories."],
        ["hub-registry", None, "", "URL used in place of Docker Hub's registry "
                                   "(https://registry-1.docker.io), after any mirror."],
        ["metrics-listen", None, None, "Serve Prometheus metrics on this listener (a "
                                       "strports description or a Docker address)."],
        ["header-timeout", None, 300.0, "Seconds a client has to send a request's headers, "
                                        "from its first byte (0: no limit).", float],
        ["body-timeout", None, 300.0, "Seconds a client has to send a request body the "
                                      "daemon buffers (JSON) (0: no limit).", float],
        ["idle-timeout", None, 0.0, "Seconds a keep-alive connection may wait between "
                                    "requests (0: no limit).", float],
        ["max-json-body", None, "4MiB", "Largest request body the daemon buffers (JSON); "
                                        "larger ones are refused with 413."],
        ["bridge", "b", "dockertw0", "Bridge device of the default bridge network, or "
                                     "'none' for no default bridge."],
        ["bip", None, "", "Address and prefix of the default bridge (e.g. 10.7.0.1/24)."],
        ["fixed-cidr", None, "", "Range of the default bridge's container addresses."],
        ["mtu", None, "0", "MTU of the default bridge's links (0: the kernel's)."],
        ["ip", None, "0.0.0.0", "Default host address of published ports."],
        ["ip-masq", None, "true", "Masquerade traffic leaving bridge networks."],
        ["icc", None, "true", "Let containers on the default bridge talk to each other."],
        ["iptables", None, "true", "Write firewall rules (in the daemon's own chains)."],
        ["ip-forward", None, "true", "Turn on net.ipv4.ip_forward while the daemon runs."],
        ["userland-proxy", None, "false", "Accepted for dockerd compatibility: published "
                                          "ports are always forwarded by kernel NAT."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["addresses"] = []
        self["registry-mirrors"] = []
        self["insecure-registries"] = []
        self["policies"] = []
        self["runtimes"] = {}
        self["default-ulimits"] = {}
        self["labels"] = []
        self["log-opts"] = {}
        self["default-address-pools"] = []
        self["dns"] = []
        self["dns-search"] = []
        self["dns-opts"] = []
        self.given: dict[str, Any] = {}  # flags on the command line, by long name
        self._flag_runtimes: dict[str, Any] = {}
        self._dispatch = {name: self._recording(name, handler)
                          for name, handler in self._dispatch.items()}

    def _recording(self, name: str, handler: Any) -> Any:
        flag = _FLAG_ALIASES.get(name, name)

        def record(option: str, value: Any = None) -> None:
            if isinstance(handler, usage.CoerceParameter):
                handler.dispatch(option, value)
            else:
                handler(option, value)
            self.given[flag] = None
        return record

    def opt_registry_mirror(self, url: str) -> None:
        """A mirror of Docker Hub to pull from first (repeatable), e.g. http://10.0.0.2:5000"""
        self["registry-mirrors"].append(url)

    def opt_insecure_registry(self, entry: str) -> None:
        """A registry (HOST:PORT) or CIDR reached without TLS verification (repeatable)"""
        self["insecure-registries"].append(entry)

    def opt_default_address_pool(self, value: str) -> None:
        """base=CIDR,size=N: where new networks' subnets come from (repeatable)"""
        self["default-address-pools"].append(value)

    def opt_dns(self, value: str) -> None:
        """A DNS server for containers (repeatable)"""
        self["dns"].append(value)

    def opt_dns_search(self, value: str) -> None:
        """A DNS search domain for containers (repeatable)"""
        self["dns-search"].append(value)

    def opt_dns_opt(self, value: str) -> None:
        """A resolv.conf option for containers (repeatable)"""
        self["dns-opts"].append(value)

    def opt_listen(self, description: str) -> None:
        """A strports description to listen on (repeatable), e.g. unix:/run/d.sock:mode=660"""
        self["addresses"].append(description)

    opt_l = opt_listen

    def opt_host(self, address: str) -> None:
        """A Docker address to listen on (repeatable): unix:///path, tcp://host:port, fd://"""
        self["addresses"].append(address)

    opt_H = opt_host

    def opt_policy(self, entry: str) -> None:
        """A listener's access policy, LISTENER=POLICY (repeatable): POLICY is full,
        readonly, none or a policy file; LISTENER as given to --listen or -H"""
        self["policies"].append(entry)

    def opt_root(self, directory: str) -> None:
        """The old name of --data-root."""
        self["data-root"] = directory

    def opt_add_runtime(self, text: str) -> None:
        """An OCI runtime containers may name, NAME=PATH (repeatable)."""
        name, sep, path = text.partition("=")
        if not sep or not name or not path:
            raise usage.UsageError(f"invalid --add-runtime {text!r}: expected NAME=PATH")
        self["runtimes"][name] = {"path": path}

    def opt_default_ulimit(self, text: str) -> None:
        """A default ulimit of containers, NAME=SOFT[:HARD] (repeatable)."""
        try:
            limit = parse_ulimit(text)
        except ValueError as error:
            raise usage.UsageError(str(error)) from None
        self["default-ulimits"][limit["Name"]] = limit

    def opt_label(self, label: str) -> None:
        """A label of the daemon, KEY=VALUE (repeatable)."""
        self["labels"].append(label)

    def opt_log_opt(self, text: str) -> None:
        """A default logging option of containers, KEY=VALUE (repeatable)."""
        key, sep, value = text.partition("=")
        if not sep:
            raise usage.UsageError(f"invalid --log-opt {text!r}: expected KEY=VALUE")
        self["log-opts"][key] = value

    def postOptions(self) -> None:
        self._read_config_file()
        if self["tlsverify"]:
            self["tls"] = True
        self._check_api_version()
        self._check_engine_settings()
        self["network"] = network_config(self)
        if self["tls"]:
            self._check_tls_files()
        self._check_registry_options()
        self._check_connection_limits()
        addresses = self["addresses"] or [f"unix://{DEFAULT_SOCKET}"]
        try:
            self["listeners"] = [spec for address in addresses
                                 for spec in parse_listener(address, self["tls"])]
            self["policy-sources"] = policy_sources(self["policies"], addresses)
            metrics = self["metrics-listen"]
            self["metrics-listeners"] = parse_listener(metrics, self["tls"]) if metrics else []
        except ValueError as error:
            raise usage.UsageError(str(error)) from None
        self["socket-gid"] = _socket_gid(self["group"], explicit="group" in self.given)

    @property
    def given_runtimes(self) -> dict[str, Any]:
        """The runtimes of --add-runtime alone (the file's join them on reload)."""
        return dict(self._flag_runtimes)

    def given_values(self) -> dict[str, Any]:
        """The command line's flags that daemon.json also sets, with their values (as
        a conflict shows them); flags with no daemon.json key (``--policy``) are left out."""
        return {flag: self[_TARGETS[flag]] for flag in self.given if flag in _TARGETS}

    def _read_config_file(self) -> None:
        self._flag_runtimes = dict(self["runtimes"])
        path = self["config-file"]
        try:
            found = file_settings(path, "config-file" in self.given, self.given_values())
        except ConfigFileError as error:
            raise usage.UsageError(
                f"unable to configure the daemon with file {path}: {error}") from None
        for setting, value in found.items():
            if setting.merges:
                self[setting.option] = {**value, **self[setting.option]}
            else:
                self[setting.option] = value

    def _check_engine_settings(self) -> None:
        try:
            check_cgroup_parent(self["cgroup-parent"])
            check_runtimes(self["runtimes"], self["default-runtime"])
            loglevel.set_level(self["log-level"])
            log_settings({"Type": self["log-driver"], "Config": self["log-opts"]})
        except (InvalidParameter, LogConfigError, ValueError) as error:
            raise usage.UsageError(str(error)) from None

    def _check_registry_options(self) -> None:
        for option in ("max-concurrent-downloads", "max-concurrent-uploads"):
            if self[option] < 1:
                raise usage.UsageError(f"--{option} must be at least 1")
        try:
            self["registry"] = RegistryConfig.build(
                self["registry-mirrors"], self["insecure-registries"],
                Path(self["certs-dir"]), self["hub-registry"])
        except InvalidParameter as error:
            raise usage.UsageError(str(error)) from None

    def _check_connection_limits(self) -> None:
        for option in ("header-timeout", "body-timeout", "idle-timeout"):
            if self[option] < 0:
                raise usage.UsageError(f"--{option} must be 0 (no limit) or more seconds")
        try:
            max_body = parse_size(self["max-json-body"], binary=True)
        except ValueError:
            raise usage.UsageError(f"--max-json-body: invalid size {self['max-json-body']!r}"
                                   ) from None
        if max_body < 1:
            raise usage.UsageError("--max-json-body must be at least 1 byte")
        self["limits"] = ConnectionLimits(header_timeout=self["header-timeout"] or None,
                                          body_timeout=self["body-timeout"] or None,
                                          idle_timeout=self["idle-timeout"] or None,
                                          max_body=max_body)

    def _check_api_version(self) -> None:
        wanted = self["min-api-version"]
        if not api_versions.is_valid(wanted) or not (
            api_versions.compare(LOWEST_API_VERSION, wanted) <= 0
            and api_versions.compare(wanted, MAX_API_VERSION) <= 0
        ):
            raise usage.UsageError(
                f"invalid --min-api-version {wanted!r}: must be between "
                f"{LOWEST_API_VERSION} and {MAX_API_VERSION}"
            )

    def _check_tls_files(self) -> None:
        for option, default in (("tlscert", "cert.pem"), ("tlskey", "key.pem"),
                                ("tlscacert", "ca.pem")):
            if option == "tlscacert" and not self["tlsverify"] and not self[option]:
                continue
            self[option] = self[option] or _docker_cert_path(default)
            if not os.path.isfile(self[option]):
                raise usage.UsageError(f"--{option}: cannot read {self[option]!r}")


def _flag(options: Options, name: str) -> bool:
    value = str(options[name]).strip().lower()
    if value not in ("1", "0", "t", "f", "true", "false"):
        raise usage.UsageError(f"--{name}: expected true or false, got {options[name]!r}")
    return value in ("1", "t", "true")


def _check_address(value: str, name: str, interface: bool = False) -> None:
    try:
        (ipaddress.ip_interface if interface else ipaddress.ip_network)(value)
    except ValueError:
        raise usage.UsageError(f"--{name}: invalid address {value!r}") from None


def network_config(options: Options) -> NetworkConfig:
    """The networking options as the engine takes them."""
    bridge = options["bridge"] or "none"
    if len(bridge) > 15 or "/" in bridge or " " in bridge:
        raise usage.UsageError(f"--bridge: invalid device name {bridge!r}")
    if options["bip"]:
        _check_address(options["bip"], "bip", interface=True)
    if options["fixed-cidr"]:
        _check_address(options["fixed-cidr"], "fixed-cidr")
    for server in options["dns"]:
        _check_address(server, "dns")
    try:
        mtu = int(options["mtu"])
    except ValueError:
        raise usage.UsageError(f"--mtu: not a number: {options['mtu']!r}") from None
    _flag(options, "userland-proxy")
    try:
        pools = tuple(ipam.parse_address_pool(pool) for pool in options["default-address-pools"])
    except ValueError as error:
        raise usage.UsageError(str(error)) from None
    return NetworkConfig(
        bridge=bridge, bip=options["bip"], fixed_cidr=options["fixed-cidr"],
        pools=pools or ipam.DEFAULT_POOLS, mtu=mtu,
        ip_masq=_flag(options, "ip-masq"), icc=_flag(options, "icc"),
        iptables=_flag(options, "iptables"), ip_forward=_flag(options, "ip-forward"),
        host_ip=options["ip"], dns=tuple(options["dns"]),
        dns_search=tuple(options["dns-search"]), dns_options=tuple(options["dns-opts"]))


def tls_options(options: Options) -> ssl.CertificateOptions:
    """Server TLS settings; with --tlsverify, clients must present a certificate of the CA."""
    key_and_cert = Path(options["tlskey"]).read_bytes() + Path(options["tlscert"]).read_bytes()
    authority = Path(options["tlscacert"]).read_bytes() if options["tlsverify"] else None
    return server_options(key_and_cert, authority)


class _FatalExit:
    """Stops the reactor when a listener fails, and makes the process exit non-zero."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.code = 0
        atexit.register(self._exit_if_failed)

    def __call__(self, message: str) -> None:
        sys.stderr.write(f"dockertw: {message}\n")
        sys.stderr.flush()
        self.code = 1
        self._reactor.callWhenRunning(self._stop)

    def _stop(self) -> None:
        if self._reactor.running:
            self._reactor.stop()

    def _exit_if_failed(self) -> None:
        if self.code:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(self.code)


class _ReloadOnHangup(Service):
    """SIGHUP makes the daemon read its configuration file again and apply what Docker
    applies without a restart (the reloadable keys), as dockerd does."""

    def __init__(self, engine: Engine, options: Options, reactor: Any) -> None:
        self._engine = engine
        self._options = options
        self._reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._hangup)

    def stopService(self) -> None:
        super().stopService()
        signal.signal(signal.SIGHUP, self._previous or signal.SIG_DFL)

    def _hangup(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self.reload)

    def reload(self) -> None:
        options = self._options
        try:
            found = file_settings(options["config-file"], "config-file" in options.given,
                                  options.given_values())
            self._engine.reload(_reloaded(found, options))
        except (ConfigFileError, InvalidParameter, ValueError) as error:
            _log.error("Error reloading configuration: {error}", error=str(error))
            return
        _log.info("Reloaded configuration from {path}", path=options["config-file"])


def _reloaded(found: Mapping[Setting, Any], options: Options) -> dict[str, Any]:
    """The reloadable settings of the file, by key; runtimes add up with --add-runtime."""
    values = {setting.key: value for setting, value in found.items() if setting.reloads}
    if "runtimes" in values:
        values["runtimes"] = {**values["runtimes"], **options.given_runtimes}
    return values


class _PidFile(Service):
    """Writes ``--pidfile`` once running (after twistd daemonised), removes it at exit."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def startService(self) -> None:
        super().startService()
        write_pidfile(self._path)

    def stopService(self) -> None:
        super().stopService()
        remove_pidfile(self._path)


def _listener_service(spec: ListenerSpec, resource: Any, tls: Any,
                      limits: ConnectionLimits, socket_gid: int | None = None,
                      **site_options: Any) -> ListenerService:
    site = ApiSite(resource, spec.name, **site_options)
    site.limits = limits
    use_tls = tls is not None and spec.is_tcp
    service = ListenerService(spec, wrap_tls(site, tls) if use_tls else site, use_tls,
                              socket_gid=socket_gid)
    site.on_stop = service.factory_stopped
    return service


def _raise_open_files_limit() -> None:
    """One descriptor per connection: allow as many as the hard limit does."""
    before, after = raise_open_files_limit()
    if after != before:
        _log.info("Open files limit raised from {before} to {after}", before=before,
                  after=after)


def _open_engine(config: EngineConfig, reactor: Any) -> Engine:
    """The engine; one that cannot start (another daemon's holder) ends the process
    with the reason."""
    try:
        return Engine.open(config, reactor)
    except DockerError as error:
        sys.exit(f"dockertw: cannot start: {error}")


def _engine_config(options: Options) -> EngineConfig:
    return EngineConfig(
        root=Path(options["data-root"]), runtime=options["runtime"],
        cgroup_parent=options["cgroup-parent"],
        experimental=bool(options["experimental"]),
        max_api_version=MAX_API_VERSION, min_api_version=options["min-api-version"],
        exec_root=Path(options["exec-root"]),
        runtimes=tuple(OciRuntime(name, spec["path"], tuple(spec.get("runtimeArgs") or ()))
                       for name, spec in options["runtimes"].items()),
        default_runtime=options["default-runtime"],
        default_ulimits=tuple(options["default-ulimits"].values()),
        default_log={"Type": options["log-driver"], "Config": dict(options["log-opts"])},
        debug=bool(options["debug"]), log_level=options["log-level"],
        labels=tuple(options["labels"]),
        registry=options["registry"],
        max_concurrent_downloads=options["max-concurrent-downloads"],
        max_concurrent_uploads=options["max-concurrent-uploads"],
        network=options["network"],
        live_restore=bool(options["live-restore"]),
    )


def _take_interrupts() -> None:
    """Stop on SIGINT even when started with it ignored (a background job), as dockerd
    does: Twisted only handles SIGINT when it finds Python's default handler."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def makeService(options: Options) -> IService:
    """The daemon: one listener service per --listen, all serving one Klein resource."""
    from twisted.internet import reactor

    pidfile = Path(options["pidfile"])
    try:
        check_pidfile(pidfile)
    except PidFileTaken as error:
        raise SystemExit(f"dockertw: {error}") from None
    _take_interrupts()
    become_subreaper()  # container inits are re-parented to the daemon, which reaps them
    _raise_open_files_limit()
    engine = _open_engine(_engine_config(options), reactor)
    for warning in engine.system.info()["Warnings"]:
        _log.warn("{warning}", warning=warning)
    api = ApiConfig(max_version=MAX_API_VERSION, min_version=options["min-api-version"],
                    experimental=bool(options["experimental"]))
    routers = all_routers(engine, reactor)
    resource = build_resource(routers, api)
    tls = tls_options(options) if options["tls"] else None
    daemon = MultiService()
    _PidFile(pidfile).setServiceParent(daemon)
    _ReloadOnHangup(engine, options, reactor).setServiceParent(daemon)
    listeners = ListenerGroup(_FatalExit(reactor))
    gates = _gates(options, engine, routers)
    for spec in options["listeners"]:
        _listener_service(spec, resource, tls, options["limits"], options["socket-gid"],
                          gate=gates(spec), metered=bool(options["metrics-listeners"])
                          ).setServiceParent(listeners)
    if options["metrics-listeners"]:
        metrics = metrics_resource(start_metrics(engine.events, engine.containers))
        for spec in options["metrics-listeners"]:
            _listener_service(spec, metrics, tls, options["limits"],
                              options["socket-gid"]).setServiceParent(listeners)
    listeners.setServiceParent(daemon)
    return daemon


def _gates(options: Options, engine: Engine, routers: list[Router]
           ) -> Callable[[ListenerSpec], Gate | None]:
    """Each listener's gate (its policy, read again on reload; its route names)."""
    sources = options["policy-sources"]
    try:
        book = PolicyBook(sources, routers)
    except PolicyError as error:
        raise SystemExit(f"dockertw: {error}") from None
    engine.events.subscribe(RELOAD_EVENTS, lambda event: book.reload(), counted=False)
    targets = EngineTargets(engine.containers, engine.containers.execs, engine.images)
    metered = bool(options["metrics-listeners"])
    return lambda spec: make_gate(spec, sources, book, targets, metered)
