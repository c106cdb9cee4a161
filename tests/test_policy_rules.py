"""The policy engine on its own: presets, rule order, identities, label scopes, body
limits and the policy file's checks (no daemon, no I/O); route names and what the
gate tells the policy about each route; the policies of docs/security.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from dockertw.access import policy_key, policy_sources
from dockertw.api.gate import route_facts
from dockertw.api.router import Route, route_name
from dockertw.api.routers import all_routers
from dockertw.listeners import ListenerSpec
from dockertw.policy import (
    ANONYMOUS,
    Policy,
    PolicyError,
    RequestFacts,
    RouteFacts,
    Target,
    certificate_identity,
    parse_policy,
    peer_identity,
    preset,
)
from dockertw.policy.bodies import CreateLimits, ExecLimits, create_violation, exec_violation

ROUTES = {"system.ping", "system.ping_head", "system.events", "system.info",
          "containers.list", "containers.inspect", "containers.create", "containers.start",
          "containers.export", "containers.archive_get", "containers.prune",
          "exec.create", "exec.start", "images.list", "images.save", "volumes.create"}
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"}

PING = RouteFacts("system.ping", "GET")
LIST = RouteFacts("containers.list", "GET", Target.LISTING)
INSPECT = RouteFacts("containers.inspect", "GET", Target.CONTAINER)
CREATE = RouteFacts("containers.create", "POST", Target.CREATE, "create")
EXEC = RouteFacts("exec.create", "POST", Target.CONTAINER, "exec")
EXEC_START = RouteFacts("exec.start", "POST", Target.CONTAINER)
EXPORT = RouteFacts("containers.export", "GET", Target.CONTAINER)
IMAGES = RouteFacts("images.list", "GET")

TEAM_A = certificate_identity("team-a", ["team-a.example", "10.0.0.1"])
TEAM_B = certificate_identity("team-b", [])
ROOT = peer_identity(0, 0)
NOBODY = peer_identity(65534, 65534)


def policy(text: str, **names: str) -> Policy:
    def principal(kind: str, name: str) -> str:
        if name not in names:
            raise PolicyError(f"no {kind} named {name!r}")
        return names[name]

    return parse_policy(text, "test.toml", ROUTES, METHODS, principal)


def allowed(chosen: Policy, route: RouteFacts, identity: Any = ANONYMOUS,
            **facts: Any) -> bool:
    return chosen.decide(route, identity, RequestFacts(**facts)).allowed


# -- presets -------------------------------------------------------------------------


def test_full_allows_everything() -> None:
    full = preset("full")
    assert all(allowed(full, route) for route in (PING, CREATE, EXEC_START, EXPORT))


def test_none_denies_everything_with_its_message() -> None:
    decision = preset("none").decide(PING, ROOT)
    assert not decision.allowed
    assert decision.text == "system.ping is not allowed (this listener serves no API requests)"


def test_readonly_allows_reads_but_not_writes_nor_file_reads() -> None:
    readonly = preset("readonly")
    assert allowed(readonly, PING) and allowed(readonly, LIST) and allowed(readonly, INSPECT)
    assert allowed(readonly, RouteFacts("system.ping_head", "HEAD"))
    for route in (CREATE, EXEC, EXEC_START, EXPORT,
                  RouteFacts("containers.archive_get", "GET", Target.CONTAINER),
                  RouteFacts("images.save", "GET")):
        assert not allowed(readonly, route), route
    assert readonly.decide(CREATE, ANONYMOUS).text == (
        "containers.create is not allowed (this listener is read-only)")


def test_an_unknown_preset_is_an_error() -> None:
    with pytest.raises(PolicyError, match="unknown policy preset 'readwrite'"):
        preset("readwrite")


# -- rules, order, identities --------------------------------------------------------


def test_the_first_matching_rule_decides_and_the_default_comes_last() -> None:
    chosen = policy('''
        [[rules]]
        action = "deny"
        routes = ["containers.create"]
        message = "no creates here"
        [[rules]]
        action = "allow"
        routes = ["containers.*"]
    ''')
    denied = chosen.decide(CREATE, ROOT)
    assert (denied.allowed, denied.rule, denied.text) == (
        False, 1, "containers.create is denied by rule 1 (no creates here)")
    assert chosen.decide(LIST, ROOT).rule == 2
    assert chosen.decide(IMAGES, ROOT).rule == 0 and not allowed(chosen, IMAGES)


def test_methods_narrow_a_rule() -> None:
    chosen = policy('[[rules]]\naction = "allow"\nmethods = ["get", "HEAD"]\n')
    assert allowed(chosen, PING) and not allowed(chosen, CREATE)


def test_default_allow_with_a_deny_rule() -> None:
    chosen = policy('default = "allow"\n[[rules]]\naction = "deny"\nroutes = ["exec.*"]\n')
    assert allowed(chosen, CREATE) and not allowed(chosen, EXEC)


@pytest.mark.parametrize(("pattern", "identity", "expected"), [
    ("cn:team-a", TEAM_A, True),
    ("cn:team-a", TEAM_B, False),
    ("san:team-a.example", TEAM_A, True),
    ("san:10.0.0.1", TEAM_A, True),
    ("cn:team-*", TEAM_B, True),
    ("uid:0", ROOT, True),
    ("uid:0", NOBODY, False),
    ("gid:65534", NOBODY, True),
    ("user:nobody", NOBODY, True),
    ("anonymous", ANONYMOUS, True),
    ("anonymous", ROOT, False),
    ("cn:*", ANONYMOUS, False),
])
def test_identities(pattern: str, identity: Any, expected: bool) -> None:
    chosen = policy(f'[[rules]]\naction = "allow"\nidentities = ["{pattern}"]\n',
                    nobody="uid:65534")
    assert allowed(chosen, PING, identity) is expected


def test_identity_display() -> None:
    assert TEAM_A.display == "cn=team-a"
    assert certificate_identity(None, ["host.example"]).display == "san=host.example"
    assert certificate_identity(None, []) is ANONYMOUS
    assert NOBODY.display == "uid=65534,gid=65534"


def test_plans_are_kept_per_route_and_identity() -> None:
    chosen = preset("readonly")
    assert chosen.plan(LIST, TEAM_A) is chosen.plan(LIST, certificate_identity(
        "team-a", ["team-a.example", "10.0.0.1"]))
    assert chosen.plan(LIST, TEAM_A) is not chosen.plan(LIST, TEAM_B)


def test_log_only_mode_is_read() -> None:
    assert policy('mode = "log-only"').log_only
    assert not policy("").log_only


# -- labels --------------------------------------------------------------------------

TEAM_POLICY = '''
    [[rules]]
    action = "allow"
    identities = ["cn:team-a"]
    routes = ["containers.list", "containers.inspect", "system.events", "exec.*",
              "containers.create", "containers.prune"]
    labels = { team = "a" }
    [[rules]]
    action = "allow"
    routes = ["system.ping"]
'''


def test_a_labelled_rule_reaches_only_containers_with_the_labels() -> None:
    chosen = policy(TEAM_POLICY)
    assert allowed(chosen, EXEC, TEAM_A, labels={"team": "a", "x": "y"})
    refused = chosen.decide(EXEC, TEAM_A, RequestFacts(labels={"team": "b"}))
    assert not refused.allowed
    assert refused.text == "exec.create needs a container labelled team=a"
    assert not allowed(chosen, EXEC_START, TEAM_A, labels=None)  # no such container
    assert not allowed(chosen, EXEC, TEAM_B, labels={"team": "a"})


def test_a_labelled_rule_narrows_listings() -> None:
    decision = policy(TEAM_POLICY).decide(LIST, TEAM_A)
    assert decision.allowed and decision.narrow == (("team", "a"),)
    prune = RouteFacts("containers.prune", "POST", Target.LISTING)
    assert policy(TEAM_POLICY).decide(prune, TEAM_A).narrow == (("team", "a"),)


def test_a_create_must_carry_the_labels() -> None:
    chosen = policy(TEAM_POLICY)
    assert allowed(chosen, CREATE, TEAM_A, body={"Image": "x", "Labels": {"team": "a"}})
    refused = chosen.decide(CREATE, TEAM_A, RequestFacts(body={"Image": "x"}))
    assert refused.text == "containers.create needs a create labelled team=a"


def test_a_labelled_rule_never_applies_elsewhere() -> None:
    chosen = policy('''
        [[rules]]
        action = "allow"
        routes = ["images.list"]
        labels = { team = "a" }
    ''')
    assert not allowed(chosen, IMAGES, TEAM_A)


def test_labelled_steps_fall_through_to_later_rules() -> None:
    chosen = policy(TEAM_POLICY + '''
        [[rules]]
        action = "allow"
        routes = ["containers.inspect"]
        identities = ["cn:team-a"]
    ''')
    assert allowed(chosen, INSPECT, TEAM_A, labels={"team": "b"})
    assert chosen.plan(INSPECT, TEAM_A).needs_labels
    assert chosen.plan(PING, TEAM_A).settled is not None


# -- body limits ---------------------------------------------------------------------

LIMITED = '''
    [[rules]]
    action = "allow"
    routes = ["containers.create", "exec.create"]
    [rules.create]
    bind_prefixes = ["/srv/ci/"]
    capabilities = ["cap_net_admin"]
    images = ["ci/*", "busybox"]
    [rules.exec]
    users = ["1000", "app"]
'''


def create_refusal(host: dict[str, Any] | None = None, image: str = "busybox",
                   names: tuple[str, ...] | None = None) -> str:
    body = {"Image": image, "HostConfig": host or {}}
    decision = policy(LIMITED).decide(CREATE, ROOT, RequestFacts(
        body=body, image_names=names if names is not None else (image,)))
    return "" if decision.allowed else decision.reason


@pytest.mark.parametrize(("host", "refusal"), [
    ({"Privileged": True}, "privileged containers are not allowed"),
    ({"PidMode": "host"}, "the host's namespaces are not allowed (HostConfig.PidMode=host)"),
    ({"NetworkMode": "host"}, "the host's namespaces are not allowed "
                              "(HostConfig.NetworkMode=host)"),
    ({"IpcMode": "host"}, "the host's namespaces are not allowed (HostConfig.IpcMode=host)"),
    ({"UsernsMode": "host"}, "the host's namespaces are not allowed "
                             "(HostConfig.UsernsMode=host)"),
    ({"NetworkMode": "container:abc"}, "joining another container is not allowed "
                                       "(HostConfig.NetworkMode=container:abc)"),
    ({"VolumesFrom": ["other"]}, "volumes from other containers are not allowed "
                                 "(HostConfig.VolumesFrom)"),
    ({"Binds": ["/:/host"]}, "bind mount of / is not allowed: host paths must be under "
                             "/srv/ci"),
    ({"Binds": ["/srv/ci/../../etc:/etc"]}, "bind mount of /srv/ci/../../etc is not "
                                            "allowed: host paths must be under /srv/ci"),
    ({"Binds": ["/srv/cinema:/x"]}, "bind mount of /srv/cinema is not allowed: host "
                                    "paths must be under /srv/ci"),
    ({"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}]},
     "bind mount of /etc is not allowed: host paths must be under /srv/ci"),
    ({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"device": "/", "o": "bind"}}}}]},
     "volume driver options are not allowed (Mounts[].VolumeOptions.DriverConfig)"),
    ({"CapAdd": ["SYS_ADMIN"]}, "adding the capability SYS_ADMIN is not allowed"),
    ({"CapAdd": ["ALL"]}, "adding the capability ALL is not allowed"),
    ({"Devices": [{"PathOnHost": "/dev/sda"}]}, "host devices are not allowed "
                                                "(HostConfig.Devices)"),
    ({"SecurityOpt": ["seccomp=unconfined"]}, "the security option seccomp=unconfined is "
                                              "not allowed"),
    ({"SecurityOpt": ["apparmor:unconfined"]}, "the security option apparmor:unconfined "
                                               "is not allowed"),
    ({"MaskedPaths": []}, "changing the masked or read-only paths is not allowed "
                          "(HostConfig.MaskedPaths)"),
])
def test_create_limits_refuse(host: dict[str, Any], refusal: str) -> None:
    assert create_refusal(host) == refusal


@pytest.mark.parametrize("host", [
    {},
    {"Binds": ["/srv/ci:/ci", "/srv/ci/a/b:/b:ro", "named:/data"]},
    {"Mounts": [{"Type": "bind", "Source": "/srv/ci/x", "Target": "/x"},
                {"Type": "volume", "Source": "v", "Target": "/v"},
                {"Type": "tmpfs", "Target": "/t"}]},
    {"CapAdd": ["NET_ADMIN"]}, {"CapAdd": ["CAP_NET_ADMIN"]},
    {"SecurityOpt": ["no-new-privileges"]},
    {"NetworkMode": "bridge", "PidMode": "", "Privileged": False},
])
def test_create_limits_allow(host: dict[str, Any]) -> None:
    assert create_refusal(host) == ""


def test_images_are_allowed_by_any_of_their_names() -> None:
    assert create_refusal(image="ci/app:1") == ""
    assert create_refusal(image="3f2a", names=("3f2a", "ci/app:1")) == ""
    assert create_refusal(image="evil") == (
        "the image evil is not allowed: images must match ci/*, busybox")


def test_bind_sources_are_checked_after_resolving_links() -> None:
    limits = CreateLimits(bind_prefixes=("/srv/ci",))
    body = {"HostConfig": {"Binds": ["/srv/ci/link:/x"]}}
    assert create_violation(body, limits) is None
    assert create_violation(body, limits, resolve=lambda path: "/etc") == (
        "bind mount of /srv/ci/link is not allowed: host paths must be under /srv/ci")


def test_exec_limits() -> None:
    chosen = policy(LIMITED)
    assert allowed(chosen, EXEC, ROOT, body={"Cmd": ["sh"], "User": "app"})
    refused = chosen.decide(EXEC, ROOT, RequestFacts(body={"Cmd": ["sh"]}))
    assert refused.reason == ("exec as the container's default user is not allowed: users "
                              "must match 1000, app")
    assert exec_violation({"Privileged": True}, ExecLimits()) == "privileged exec is not allowed"
    assert exec_violation({"User": "root"}, ExecLimits()) is None


def test_a_body_that_is_no_object_is_left_to_the_route() -> None:
    assert allowed(policy(LIMITED), CREATE, ROOT, body=["not", "an", "object"])


def test_limits_are_planned_not_settled() -> None:
    plan = policy(LIMITED).plan(CREATE, ROOT)
    assert plan.settled is None and plan.needs_body and plan.needs_image
    assert not policy(TEAM_POLICY).plan(INSPECT, TEAM_A).needs_image


# -- the file's checks ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "error"), [
    ("mode = 'strict'", "mode must be one of enforce, log-only, not 'strict'"),
    ("colour = 1", "the policy: unknown key 'colour'"),
    ("rules = 1", "rules must be an array of tables"),
    ("[[rules]]\naction = 'permit'", "rule 1: action must be one of allow, deny"),
    ("[[rules]]\naction = 'allow'\nroute = ['x']", "rule 1: unknown key 'route'"),
    ("[[rules]]\naction = 'allow'\nroutes = ['container.list']",
     "rule 1: the route pattern 'container.list' names no route"),
    ("[[rules]]\naction = 'allow'\nmethods = ['FETCH']", "rule 1: no route has the method"),
    ("[[rules]]\naction = 'allow'\nidentities = ['team-a']", "rule 1: bad identity 'team-a'"),
    ("[[rules]]\naction = 'allow'\nidentities = ['uid:root']", "uid must be a number"),
    ("[[rules]]\naction = 'allow'\nidentities = ['user:nosuchuser']",
     "rule 1: no user named 'nosuchuser'"),
    ("[[rules]]\naction = 'allow'\nlabels = { team = 1 }", "labels must be a table of strings"),
    ("[[rules]]\naction = 'allow'\nroutes = ['containers.list']\n[rules.create]\n",
     "rule 1: a create table needs the rule to cover containers.create"),
    ("[[rules]]\naction = 'allow'\n[rules.create]\nprivileged = 'yes'",
     "privileged must be true or false"),
    ("[[rules]]\naction = 'allow'\n[rules.create]\nbind_prefixes = ['srv']",
     "bind_prefixes must be absolute paths"),
    ("[[rules]]\naction = 'allow'\n[rules.create]\nroot = true", "create: unknown key 'root'"),
    ("[[rules]]\naction = 'allow'\n[rules.exec]\nusers = 'app'", "users must be a list"),
    ("[[rules]\n", "test.toml: not valid TOML"),
])
def test_policy_file_errors(text: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("*", r"\*")) as raised:
        policy(text)
    assert str(raised.value).startswith("test.toml: ")


# -- the daemon's route names, and the documented policies ---------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "security.md"


def daemon_routes() -> list[Any]:
    return [route for router in all_routers(mock.MagicMock(), None)
            for route in router.routes()]


def test_route_names_come_from_router_modules_and_handlers() -> None:
    named = {(route.method, route.path): route_name(route) for route in daemon_routes()}
    assert named[("GET", "/containers/json")] == "containers.list"
    assert named[("POST", "/exec/<path:name>/start")] == "exec.start"
    assert named[("HEAD", "/_ping")] == "system.ping_head"
    assert named[("GET", "/volumes")] == "volumes.list"
    assert named[("POST", "/commit")] == "containers.commit"
    assert route_name(Route("GET", "/x", lambda call: None, name="custom.x")) == "custom.x"


def test_route_facts_say_what_a_route_is_about() -> None:
    facts = {route_name(route): route_facts(route) for route in daemon_routes()}
    assert facts["containers.create"].target is Target.CREATE
    assert facts["containers.create"].body == "create"
    assert facts["exec.create"].target is Target.CONTAINER
    assert facts["exec.create"].body == "exec"
    assert facts["exec.start"].target is Target.CONTAINER
    assert facts["containers.commit"].target is Target.CONTAINER
    for listing in ("containers.list", "containers.prune", "system.events"):
        assert facts[listing].target is Target.LISTING
    assert facts["images.list"].target is Target.NONE
    assert facts["containers.attach"].method == "POST"


def test_the_documented_names_and_policies_hold() -> None:
    routes = daemon_routes()
    names = {route_name(route) for route in routes}
    text = DOCS.read_text()
    table = text.split("## Route names", 1)[1].split("## The policy file", 1)[0]
    for router, cell in re.findall(r"^\| `(\w+)` \| (.+) \|$", table, re.MULTILINE):
        if router != "unsupported":
            for action in re.findall(r"`(\w+)`", cell):
                assert f"{router}.{action}" in names
    blocks = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:
        parse_policy(block, "docs", names, {route.method for route in routes},
                     lambda kind, name: f"gid:{len(name)}")


# -- --policy entries ----------------------------------------------------------------


def test_policy_entries_split_at_the_last_equals_sign() -> None:
    listeners = ["unix:/run/d.sock:mode=660", "tcp://0.0.0.0:2376", "fd://"]
    assert policy_sources(["unix:/run/d.sock:mode=660=readonly",
                           "tcp://0.0.0.0:2376=/etc/p.toml"], listeners) == {
        "unix:/run/d.sock:mode=660": "readonly", "tcp://0.0.0.0:2376": "/etc/p.toml"}
    with pytest.raises(ValueError, match="expected LISTENER=POLICY"):
        policy_sources(["readonly"], listeners)
    with pytest.raises(ValueError, match="has a policy already"):
        policy_sources(["fd://=none", "fd://=full"], listeners)
    with pytest.raises(ValueError, match=r"no listener 'unix:/run/d.sock' \(listeners: "):
        policy_sources(["unix:/run/d.sock=none"], listeners)


def test_each_socket_of_an_address_takes_its_policy() -> None:
    sources = {"fd://": "readonly", "tcp://127.0.0.1:2375": "none"}
    assert policy_key(ListenerSpec("fd://#1", "systemd:domain=UNIX:index=1", False),
                      sources) == "fd://"
    assert policy_key(ListenerSpec("tcp://127.0.0.1:2375", "tcp:2375", True),
                      sources) == "tcp://127.0.0.1:2375"
    assert policy_key(ListenerSpec("unix:///x", "unix:/x", False), sources) == ""
