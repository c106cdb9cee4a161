"""Dockerfile instructions applied to a container config: ``docker import --change``.

The same subset and messages as moby's ``BuildFromConfig`` (Docker 20.10, with
``STOPSIGNAL`` as newer engines allow): ``CMD``, ``ENTRYPOINT``, ``ENV``, ``EXPOSE``,
``HEALTHCHECK``, ``LABEL``, ``ONBUILD``, ``STOPSIGNAL``, ``USER``, ``VOLUME`` and
``WORKDIR``, in JSON-array and shell forms, with line continuations, comments and
``$VAR`` substitution from the environment set so far.  Every error is an
:class:`~dockertw.errdefs.InvalidParameter` carrying Docker's message.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from dockertw.daemon.images.shellwords import env_map, process_word, process_words
from dockertw.daemon.signals import parse_signal
from dockertw.daemon.timestamps import parse_go_duration
from dockertw.errdefs import InvalidParameter

__all__ = ["VALID_CHANGE_COMMANDS", "DEFAULT_SHELL", "ChangeNode", "ChangeState",
           "apply_changes", "apply_node", "parse_flags", "parse_go_duration", "set_env"]

VALID_CHANGE_COMMANDS = frozenset({
    "cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "stopsignal",
    "user", "volume", "workdir",
})
DEFAULT_SHELL = ("/bin/sh", "-c")

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_CONTINUATION = re.compile(r"([^\\])\\[ \t]*$|^\\[ \t]*$")
_ONBUILD_PREFIX = re.compile(r"(?i)^\s*ONBUILD\s*")
_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})


@attrs.frozen
class ChangeNode:
    """One parsed instruction: its lower-case name, flags, arguments (split as
    BuildKit's parser splits them) and source line."""

    command: str
    flags: tuple[str, ...]
    args: tuple[str, ...]
    json_form: bool
    original: str


@attrs.define
class ChangeState:
    """The config being changed; ``extra_env`` (a build's arguments) and ``escape``
    (the Dockerfile's escape character) take part in substitutions."""

    config: dict[str, Any]
    cmd_set: bool = False
    extra_env: dict[str, str] = attrs.field(factory=dict)
    escape: str = "\\"

    @property
    def env(self) -> dict[str, str]:
        return {**self.extra_env, **env_map(self.config.get("Env") or ())}

    def word(self, text: str) -> str:
        """``text`` with its quotes removed and variables substituted."""
        return process_word(text, self.env, self.escape)

    def words(self, text: str) -> list[str]:
        """The words of ``text`` after substitution."""
        return process_words(text, self.env, self.escape)


# -- lines -------------------------------------------------------------------------


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _trim_continuation(line: str) -> tuple[str, bool]:
    """The line without a trailing ``\\`` and whether the instruction ends here."""
    if _CONTINUATION.search(line):
        return _CONTINUATION.sub(r"\1", line), False
    return line, True


def _logical_lines(text: str) -> list[str]:
    """Instructions joined across continuation lines; comments and blanks dropped."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    result: list[str] = []
    index = 0
    while index < len(lines):
        raw, index = lines[index], index + 1
        line, ended = _trim_continuation("" if _is_comment(raw) else raw.lstrip())
        while not ended and index < len(lines):
            raw, index = lines[index], index + 1
            if _is_comment(raw) or not raw.strip():
                continue
            more, ended = _trim_continuation(raw)
            line += more
        if line.strip():
            result.append(line)
    if not result:
        raise InvalidParameter("file with no instructions")
    return result


# -- splitting an instruction --------------------------------------------------------


def _flag_word(text: str, start: int) -> tuple[str, int]:
    """One ``--flag[=value]`` word (quotes and ``\\`` honoured) and where it ends."""
    word, quote, position = "", "", start
    while position < len(text):
        char = text[position]
        if not quote and char.isspace():
            break
        if char in "'\"" and (not quote or char == quote):
            quote = "" if quote else char
        elif char == "\\" and position + 1 < len(text):
            position += 1
            word += text[position]
        elif char != "\\":
            word += char
        position += 1
    return word, position


def _extract_flags(text: str) -> tuple[str, tuple[str, ...]]:
    """Split leading ``--flag`` words from the arguments, as BuildKit's parser does."""
    flags: list[str] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if not text.startswith("--", position) or position + 2 > len(text):
            return text[position:], tuple(flags)
        word, position = _flag_word(text, position)
        if word == "--":
            return text[position:], tuple(flags)
        flags.append(word)


def _parse_json_array(rest: str) -> list[str] | None:
    """The strings of a JSON array (trailing text ignored, as Go's decoder does)."""
    text = rest.lstrip()
    if not text.startswith("["):
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise InvalidParameter(_NOT_STRINGS)
    return value


def _split_words(rest: str) -> tuple[str, ...]:
    return tuple(_WHITESPACE.split(rest)) if rest else ()


def _maybe_json(rest: str, as_list: bool) -> tuple[tuple[str, ...], bool]:
    array = _parse_json_array(rest)
    if array is not None:
        return tuple(array), True
    if as_list:
        return _split_words(rest), False
    return ((rest,) if rest else ()), False


def _parse_words(rest: str) -> list[str]:
    """BuildKit's ``parseWords``: whitespace-separated words, quotes and escapes kept."""
    words: list[str] = []
    word, quote, blank_ok, position = "", "", False, 0
    while position < len(rest):
        char = rest[position]
        position += 1
        if not quote and char.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok = "", False
            continue
        if char == "\\" and quote != "'":
            if position < len(rest):
                word += char + rest[position]
                position += 1
            continue
        if not quote and char in "'\"":
            quote, blank_ok = char, True
        elif char == quote:
            quote = ""
        word += char
    if blank_ok or word:
        words.append(word)
    return words


def _name_values(rest: str, command: str) -> tuple[str, ...]:
    """``KEY value`` (legacy) or ``KEY=value ...`` as a flat key, value, ... tuple."""
    words = _parse_words(rest)
    if not words:
        return ()
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidParameter(f"{command} must have two arguments")
        return parts[0], parts[1]
    flat: list[str] = []
    for word in words:
        if "=" not in word:
            raise InvalidParameter(f'Syntax error - can\'t find = in "{word}". '
                                   "Must be of the form: name=value")
        flat.extend(word.split("=", 1))
    return tuple(flat)


def _health_args(rest: str) -> tuple[tuple[str, ...], bool]:
    """``HEALTHCHECK TYPE [command]``: the type word, then the command as CMD splits it."""
    if not rest:
        return (), False
    kind = rest.split(None, 1)[0]
    args, json_form = _maybe_json(rest[len(kind):].lstrip(), as_list=False)
    return (kind, *args), json_form


def _arguments(command: str, rest: str) -> tuple[tuple[str, ...], bool]:
    """The arguments of ``command`` split as BuildKit's line parsers split them."""
    if command in ("cmd", "entrypoint"):
        return _maybe_json(rest, as_list=False)
    if command == "volume":
        return _maybe_json(rest, as_list=True)
    if command in ("env", "label"):
        return _name_values(rest, command.upper()), False
    if command == "expose":
        return _split_words(rest), False
    if command == "healthcheck":
        return _health_args(rest)
    if command == "onbuild":
        trigger = _node(rest) if rest else None
        return ((trigger.command, *trigger.args) if trigger else ()), False
    return ((rest,) if rest else ()), False


def _node(line: str) -> ChangeNode:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    command = parts[0].lower()
    rest, flags = _extract_flags(parts[1]) if len(parts) > 1 else ("", ())
    rest = rest.strip()
    if command not in VALID_CHANGE_COMMANDS and command != "onbuild":
        return ChangeNode(command, flags, (), False, line)
    args, json_form = _arguments(command, rest)
    return ChangeNode(command, flags, args, json_form, line)


# -- instructions ------------------------------------------------------------------


def parse_flags(flags: Sequence[str], allowed: Sequence[str] = ()) -> dict[str, str]:
    """BuildKit's ``BFlags.Parse`` for string flags."""
    values: dict[str, str] = {}
    for flag in flags:
        if not flag.startswith("--"):
            raise InvalidParameter(f"Arg should start with -- : {flag}")
        name, has_value, value = flag[2:].partition("=")
        if name not in allowed:
            raise InvalidParameter(f"Unknown flag: {name}")
        if name in values:
            raise InvalidParameter(f"Duplicate flag specified: {name}")
        if not has_value:
            raise InvalidParameter(f"Missing a value on flag: {name}")
        values[name] = value
    return values


def _exactly_one(node: ChangeNode) -> str:
    parse_flags(node.flags)
    if len(node.args) != 1:
        raise InvalidParameter(f"{node.command.upper()} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: ChangeNode) -> tuple[str, ...]:
    parse_flags(node.flags)
    if not node.args:
        raise InvalidParameter(f"{node.command.upper()} requires at least one argument")
    return node.args


def _key_values(node: ChangeNode, state: ChangeState) -> list[tuple[str, str]]:
    args = _at_least_one(node)
    pairs = []
    for key, value in zip(args[::2], args[1::2], strict=True):
        if not key:
            raise InvalidParameter(f"{node.command.upper()} names can not be blank")
        pairs.append((state.word(key), state.word(value)))
    return pairs


def _command_line(node: ChangeNode, state: ChangeState, empty_as_none: bool) -> list[str] | None:
    parse_flags(node.flags)
    args = list(node.args) if node.json_form else ([" ".join(node.args)] if node.args else [])
    if empty_as_none and not args:
        return None
    if node.json_form:
        return args
    return list(state.config.get("Shell") or DEFAULT_SHELL) + args


def set_env(environment: Sequence[str], key: str, value: str) -> list[str]:
    """``environment`` with ``key`` set to ``value`` (in its place, or added last)."""
    entry = f"{key}={value}"
    changed = list(environment)
    for index, existing in enumerate(changed):
        if existing.split("=", 1)[0] == key:
            changed[index] = entry
            return changed
    return [*changed, entry]


def _env(node: ChangeNode, state: ChangeState) -> None:
    environment = list(state.config.get("Env") or ())
    for key, value in _key_values(node, state):
        environment = set_env(environment, key, value)
    state.config["Env"] = environment


def _label(node: ChangeNode, state: ChangeState) -> None:
    labels = dict(state.config.get("Labels") or {})
    labels.update(_key_values(node, state))
    state.config["Labels"] = labels


def _cmd(node: ChangeNode, state: ChangeState) -> None:
    state.config["Cmd"] = _command_line(node, state, empty_as_none=False)
    state.config.pop("ArgsEscaped", None)
    if node.args:
        state.cmd_set = True


def _entrypoint(node: ChangeNode, state: ChangeState) -> None:
    state.config["Entrypoint"] = _command_line(node, state, empty_as_none=True)
    state.config.pop("ArgsEscaped", None)
    if not state.cmd_set:
        state.config["Cmd"] = None


def _workdir(node: ChangeNode, state: ChangeState) -> None:
    requested = state.word(_exactly_one(node))
    if not requested:
        raise InvalidParameter("cannot normalize nothing")
    if not requested.startswith("/"):
        current = state.config.get("WorkingDir") or ""
        requested = posixpath.normpath(posixpath.join("/", current, requested))
    state.config["WorkingDir"] = requested


def _user(node: ChangeNode, state: ChangeState) -> None:
    state.config["User"] = state.word(_exactly_one(node))


def _volume(node: ChangeNode, state: ChangeState) -> None:
    volumes = dict(state.config.get("Volumes") or {})
    for raw in _at_least_one(node):
        if not raw.strip():
            raise InvalidParameter("VOLUME specified can not be an empty string")
        path = state.word(raw.strip())
        if not path:
            raise InvalidParameter("VOLUME specified can not be an empty string")
        volumes[path] = {}
    state.config["Volumes"] = volumes


def _stopsignal(node: ChangeNode, state: ChangeState) -> None:
    signal = state.word(_exactly_one(node))
    parse_signal(signal)
    state.config["StopSignal"] = signal


def _onbuild(node: ChangeNode, state: ChangeState) -> None:
    trigger = _at_least_one(node)[0].strip().upper()
    if trigger == "ONBUILD":
        raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    state.config["OnBuild"] = [*(state.config.get("OnBuild") or ()), expression]


def _port_keys(spec: str) -> list[str]:
    """nat.ParsePortSpec reduced to what EXPOSE keeps: ``PORT[-PORT][/PROTO]``."""
    container, _, protocol = spec.rpartition(":")[2].partition("/")
    protocol = protocol or "tcp"
    if not container:
        raise InvalidParameter(f"No port specified: {spec}<empty>")
    low, _, high = container.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise InvalidParameter(f"Invalid containerPort: {container}")
    first, last = int(low), int(high or low)
    if first > 65535 or last > 65535 or last < first:
        raise InvalidParameter(f"Invalid containerPort: {container}")
    if protocol.lower() not in _PROTOCOLS:
        raise InvalidParameter(f"Invalid proto: {protocol}")
    return [f"{port}/{protocol.lower()}" for port in range(first, last + 1)]


def _expose(node: ChangeNode, state: ChangeState) -> None:
    exposed = dict(state.config.get("ExposedPorts") or {})
    for raw in sorted(_at_least_one(node)):
        for word in state.words(raw):
            exposed.update({key: {} for key in _port_keys(word)})
    state.config["ExposedPorts"] = exposed


def _interval(flags: dict[str, str], name: str) -> int:
    value = flags.get(name, "")
    if not value:
        return 0
    nanoseconds = parse_go_duration(value)
    if nanoseconds < 1_000_000:
        raise InvalidParameter(f'Interval "{name}" cannot be less than 1ms')
    return nanoseconds


def _retries(flags: dict[str, str]) -> int:
    value = flags.get("retries", "")
    if not value:
        return 0
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise InvalidParameter(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    if int(value) < 1:
        raise InvalidParameter(f"--retries must be at least 1 (not {int(value)})")
    return int(value)


def _healthcheck(node: ChangeNode, state: ChangeState) -> None:
    if not node.args:
        raise InvalidParameter("HEALTHCHECK requires at least one argument")
    kind, args = node.args[0].upper(), node.args[1:]
    if kind == "NONE":
        if args:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        state.config["Healthcheck"] = {"Test": ["NONE"]}
        return
    flags = parse_flags(node.flags, ("interval", "timeout", "start-period", "retries"))
    if kind != "CMD":
        raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    command = list(args) if node.json_form else ([" ".join(args)] if args else [])
    if not command:
        raise InvalidParameter("Missing command after HEALTHCHECK CMD")
    health: dict[str, Any] = {"Test": [kind if node.json_form else "CMD-SHELL", *command]}
    for field, name in (("Interval", "interval"), ("Timeout", "timeout"),
                        ("StartPeriod", "start-period")):
        health[field] = _interval(flags, name)
    health["Retries"] = _retries(flags)
    state.config["Healthcheck"] = {key: value for key, value in health.items() if value}


_DISPATCH: dict[str, Callable[[ChangeNode, ChangeState], None]] = {
    "cmd": _cmd, "entrypoint": _entrypoint, "env": _env, "expose": _expose,
    "healthcheck": _healthcheck, "label": _label, "onbuild": _onbuild,
    "stopsignal": _stopsignal, "user": _user, "volume": _volume, "workdir": _workdir,
}


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """A copy of the container ``config`` with the Dockerfile ``changes`` applied."""
    if not changes:
        return dict(config)
    nodes = [_node(line) for line in _logical_lines("\n".join(changes))]
    for node in nodes:
        if node.command not in VALID_CHANGE_COMMANDS:
            raise InvalidParameter(f"{node.command} is not a valid change command")
    state = ChangeState(dict(config))
    for node in nodes:
        apply_node(state, node)
    return state.config


def apply_node(state: ChangeState, node: ChangeNode) -> None:
    """Apply one instruction of :data:`VALID_CHANGE_COMMANDS` to ``state``."""
    _DISPATCH[node.command](node, state)
