"""``twistd dockertw``: command-line options and the service they build."""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet import ssl
from twisted.logger import Logger
from twisted.python import usage

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
from dockertw.daemon.logconfig import parse_size
from dockertw.errdefs import DockerError, InvalidParameter
from dockertw.listeners import (
    DEFAULT_SOCKET,
    ListenerGroup,
    ListenerService,
    ListenerSpec,
    parse_listener,
    wrap_tls,
)
from dockertw.metrics import metrics_resource, start_metrics
from dockertw.policy import PolicyError
from dockertw.runtime.openfiles import raise_open_files_limit
from dockertw.runtime.reaper import become_subreaper
from dockertw.tlslisten import server_options

__all__ = ["Options", "makeService", "MAX_API_VERSION", "LOWEST_API_VERSION"]

MAX_API_VERSION = api_versions.MAX_API_VERSION
LOWEST_API_VERSION = "1.12"
_log = Logger()


def _docker_cert_path(name: str) -> str:
    directory = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
    return os.path.join(directory, name)


class Options(usage.Options):
    synopsis = "[--listen DESC]... [-H ADDR]... [--root DIR] [--tlsverify ...]"
    longdesc = (
        "Serve the Docker Engine API on every listener given (default "
        f"unix:{DEFAULT_SOCKET}) and run containers with an OCI runtime."
    )
    optFlags = [
        ["experimental", None, "Enable experimental routes."],
        ["live-restore", None, "Keep containers running while the daemon is stopped, "
                               "killed or upgraded; take them back at start."],
        ["tls", None, "Serve TCP listeners over TLS (implied by --tlsverify)."],
        ["tlsverify", None, "Serve TCP listeners over TLS and require a client "
                            "certificate signed by --tlscacert."],
    ]
    optParameters = [
        ["root", None, "/var/lib/dockertw", "Root directory of the daemon's state."],
        ["runtime", None, "runc", "OCI runtime binary (runc or crun)."],
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
    ]

    def __init__(self) -> None:
        super().__init__()
        self["addresses"] = []
        self["registry-mirrors"] = []
        self["insecure-registries"] = []
        self["policies"] = []

    def opt_registry_mirror(self, url: str) -> None:
        """A mirror of Docker Hub to pull from first (repeatable), e.g. http://10.0.0.2:5000"""
        self["registry-mirrors"].append(url)

    def opt_insecure_registry(self, entry: str) -> None:
        """A registry (HOST:PORT) or CIDR reached without TLS verification (repeatable)"""
        self["insecure-registries"].append(entry)

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

    def postOptions(self) -> None:
        if self["tlsverify"]:
            self["tls"] = True
        self._check_api_version()
        try:
            check_cgroup_parent(self["cgroup-parent"])
        except InvalidParameter as error:
            raise usage.UsageError(str(error)) from None
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
    """SIGHUP makes the engine reload, as it makes dockerd reload its configuration."""

    def __init__(self, engine: Engine, reactor: Any) -> None:
        self._engine = engine
        self._reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._hangup)

    def stopService(self) -> None:
        super().stopService()
        signal.signal(signal.SIGHUP, self._previous or signal.SIG_DFL)

    def _hangup(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._engine.reload)


def _listener_service(spec: ListenerSpec, resource: Any, tls: Any,
                      limits: ConnectionLimits, **site_options: Any) -> ListenerService:
    site = ApiSite(resource, spec.name, **site_options)
    site.limits = limits
    use_tls = tls is not None and spec.is_tcp
    service = ListenerService(spec, wrap_tls(site, tls) if use_tls else site, use_tls)
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


def makeService(options: Options) -> IService:
    """The daemon: one listener service per --listen, all serving one Klein resource."""
    from twisted.internet import reactor

    become_subreaper()  # container inits are re-parented to the daemon, which reaps them
    _raise_open_files_limit()
    engine = _open_engine(EngineConfig(
        root=Path(options["root"]), runtime=options["runtime"],
        cgroup_parent=options["cgroup-parent"],
        experimental=bool(options["experimental"]),
        max_api_version=MAX_API_VERSION, min_api_version=options["min-api-version"],
        registry=options["registry"],
        max_concurrent_downloads=options["max-concurrent-downloads"],
        max_concurrent_uploads=options["max-concurrent-uploads"],
        live_restore=bool(options["live-restore"]),
    ), reactor)
    api = ApiConfig(max_version=MAX_API_VERSION, min_version=options["min-api-version"],
                    experimental=bool(options["experimental"]))
    routers = all_routers(engine, reactor)
    resource = build_resource(routers, api)
    tls = tls_options(options) if options["tls"] else None
    daemon = MultiService()
    _ReloadOnHangup(engine, reactor).setServiceParent(daemon)
    listeners = ListenerGroup(_FatalExit(reactor))
    gates = _gates(options, engine, routers)
    for spec in options["listeners"]:
        _listener_service(spec, resource, tls, options["limits"], gate=gates(spec),
                          metered=bool(options["metrics-listeners"])).setServiceParent(listeners)
    if options["metrics-listeners"]:
        metrics = metrics_resource(start_metrics(engine.events, engine.containers))
        for spec in options["metrics-listeners"]:
            _listener_service(spec, metrics, tls, options["limits"]).setServiceParent(listeners)
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
    engine.events.subscribe(RELOAD_EVENTS, lambda event: book.reload())
    targets = EngineTargets(engine.containers, engine.containers.execs, engine.images)
    metered = bool(options["metrics-listeners"])
    return lambda spec: make_gate(spec, sources, book, targets, metered)
