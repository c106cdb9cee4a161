"""A Dockerfile as the classic builder reads it: stages of checked instructions.

The text is parsed by the ``dockerfile`` package (BuildKit's own Go parser, as
Docker uses it); what each instruction may take is checked here with the messages of
BuildKit's ``instructions.Parse`` as Docker 20.10 vendors it, so a bad Dockerfile is
refused (``dockerfile parse error line N: ...``) before anything is built.
Substitutions happen later, while building (see :mod:`.dispatch`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import dockerfile

from dockertw.daemon.images.changes import ChangeNode, ChangeState, apply_node, parse_flags
from dockertw.errdefs import InvalidParameter

__all__ = ["Instruction", "Stage", "Dockerfile", "parse_dockerfile", "parse_instruction",
           "escape_token"]

_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_FLAGS: dict[str, tuple[str, ...]] = {
    "add": ("chown", "chmod"), "copy": ("chown", "from", "chmod"), "from": ("platform",),
    "run": ("mount", "network", "security"),
}


@attrs.frozen
class Instruction:
    """One instruction: its lower-case name, source (``Step`` shows it), line, flags
    (parsed), arguments (split as BuildKit splits them) and whether they were a JSON
    array."""

    name: str
    code: str
    line: int
    flags: dict[str, str]
    args: tuple[str, ...]
    json_form: bool = False
    raw_flags: tuple[str, ...] = ()
    expand: bool = True  # ``LABEL``s of the build's ``labels`` are taken as they are

    def change_node(self) -> ChangeNode:
        """The instruction as :mod:`~dockertw.daemon.images.changes` applies it."""
        return ChangeNode(self.name, self.raw_flags, self.args, self.json_form, self.code)


@attrs.frozen
class Stage:
    """``FROM base [AS name]`` and the instructions after it."""

    base: str
    name: str
    code: str
    platform: str
    line: int
    instructions: tuple[Instruction, ...] = ()


@attrs.frozen
class Dockerfile:
    stages: tuple[Stage, ...]
    meta_args: tuple[Instruction, ...]
    escape: str


def _fail(line: int, message: str) -> InvalidParameter:
    return InvalidParameter(f"dockerfile parse error line {line}: {message}")


def escape_token(text: str) -> str:
    """The escape character of the ``# escape=`` directive (``\\`` by default)."""
    for line in text.splitlines():
        match = _DIRECTIVE.match(line)
        if match is None:
            break
        if match.group(1).lower() == "escape":
            return match.group(2)
    return "\\"


# -- checks of each kind of instruction ---------------------------------------------


def _at_least(count: int, what: str) -> Callable[[Instruction], None]:
    def check(instruction: Instruction) -> None:
        if len(instruction.args) < count:
            raise ValueError(what.format(instruction.name.upper()))
    return check


_ONE_OR_MORE = _at_least(1, "{} requires at least one argument")
_SOURCE_AND_DEST = _at_least(2, "{} requires at least two arguments, but only one was "
                                "provided. Destination could not be determined")


def _exactly_one(instruction: Instruction) -> None:
    if len(instruction.args) != 1:
        raise ValueError(f"{instruction.name.upper()} requires exactly one argument")


def _key_values(instruction: Instruction) -> None:
    _ONE_OR_MORE(instruction)
    name = instruction.name.upper()
    if len(instruction.args) % 2:
        raise ValueError(f"Bad input to {name}, too many arguments")
    if any(not key for key in instruction.args[::2]):
        raise ValueError(f"{name} names can not be blank")


def _arg(instruction: Instruction) -> None:
    _ONE_OR_MORE(instruction)
    if any(arg.startswith("=") for arg in instruction.args):
        raise ValueError("ARG names can not be blank")


def _volume(instruction: Instruction) -> None:
    _ONE_OR_MORE(instruction)
    if any(not volume.strip() for volume in instruction.args):
        raise ValueError("VOLUME specified can not be an empty string")


def _shell(instruction: Instruction) -> None:
    _ONE_OR_MORE(instruction)
    if not instruction.json_form:
        raise ValueError("SHELL requires the arguments to be in JSON form")


def _applied(instruction: Instruction) -> None:
    """Instructions without substitutions: applying them to nothing checks them."""
    try:
        apply_node(ChangeState({}), instruction.change_node())
    except InvalidParameter as error:
        raise ValueError(str(error)) from None


def _nothing(instruction: Instruction) -> None:
    return None


_CHECKS: dict[str, Callable[[Instruction], None]] = {
    "env": _key_values, "label": _key_values, "maintainer": _exactly_one,
    "add": _SOURCE_AND_DEST, "copy": _SOURCE_AND_DEST, "onbuild": _applied,
    "workdir": _exactly_one, "run": _nothing, "cmd": _nothing, "entrypoint": _nothing,
    "healthcheck": _applied, "expose": _ONE_OR_MORE, "user": _exactly_one,
    "volume": _volume, "stopsignal": _exactly_one, "arg": _arg, "shell": _shell,
    "from": _nothing,
}


# -- building the instructions -------------------------------------------------------


def _flags(name: str, raw: Sequence[str], args: Sequence[str]) -> dict[str, str]:
    if name == "healthcheck" and args and args[0].upper() == "NONE":
        return {}  # as BuildKit: HEALTHCHECK NONE never reads its flags
    allowed = _FLAGS.get(name, ("interval", "timeout", "start-period", "retries")
                         if name == "healthcheck" else ())
    try:
        return parse_flags(raw, allowed)
    except InvalidParameter as error:
        raise ValueError(str(error)) from None


def _from_command(command: Any) -> Instruction:
    name = str(command.cmd).lower()
    args = tuple(command.value)
    if command.sub_cmd:
        args = (str(command.sub_cmd), *args)
    code = str(command.original).strip()
    return Instruction(name=name, code=code, line=int(command.start_line),
                       flags={}, args=args, json_form=bool(command.json),
                       raw_flags=tuple(command.flags))


def parse_instruction(command: Any) -> Instruction:
    """A parsed command, checked; ``ValueError`` with BuildKit's message otherwise."""
    instruction = _from_command(command)
    check = _CHECKS.get(instruction.name)
    if check is None:
        raise ValueError(f"unknown instruction: {instruction.name.upper()}")
    flags = _flags(instruction.name, instruction.raw_flags, instruction.args)
    instruction = attrs.evolve(instruction, flags=flags)
    check(instruction)
    return instruction


def _heredoc_error(command: Any) -> str:
    """What a parser without heredocs says of the heredoc's first line."""
    first = str(command.original).split("\n", 1)[1:] or [""]
    word = first[0].split(None, 1)[0] if first[0].strip() else "<<"
    return f"unknown instruction: {word.upper()}"


def _stage(instruction: Instruction) -> Stage:
    args = instruction.args
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise ValueError(f'invalid name for build stage: "{args[2]}", name can\'t '
                             "start with a number or contain symbols")
    elif len(args) != 1:
        raise ValueError("FROM requires either one or three arguments")
    return Stage(base=args[0], name=name, code=instruction.code,
                 platform=instruction.flags.get("platform", ""), line=instruction.line)


def _parse_commands(text: str) -> list[Any]:
    try:
        return list(dockerfile.parse_string(text))
    except dockerfile.GoParseError as error:
        raise InvalidParameter(f"failed to parse Dockerfile: {error}") from None


def parse_dockerfile(text: str, name: str = "Dockerfile") -> Dockerfile:
    """The stages and the ``ARG``s before the first ``FROM`` of a Dockerfile."""
    if not text:
        raise InvalidParameter(f"the Dockerfile ({name}) cannot be empty")
    stages: list[Stage] = []
    meta_args: list[Instruction] = []
    for command in _parse_commands(text):
        if command.heredocs:  # the classic builder's parser reads the body as instructions
            raise _fail(int(command.start_line) + 1, _heredoc_error(command))
        try:
            instruction = parse_instruction(command)
            if instruction.name == "from":
                stages.append(_stage(instruction))
                continue
        except ValueError as error:
            raise _fail(int(command.start_line), str(error)) from None
        if not stages and instruction.name == "arg":
            meta_args.append(instruction)
        elif not stages:
            raise InvalidParameter("no build stage in current context")
        else:
            stages[-1] = attrs.evolve(stages[-1], instructions=(*stages[-1].instructions,
                                                                 instruction))
    return Dockerfile(tuple(stages), tuple(meta_args), escape_token(text))
