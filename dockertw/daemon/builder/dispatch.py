"""The classic builder's evaluation of a Dockerfile: stages, steps and their images.

As moby's ``builder/dockerfile`` (``evaluator.go``, ``dispatchers.go``,
``internals.go``): each step prints ``Step N/M : <instruction>``; an instruction that
changes only the config is committed from a container made for it (``Running in``,
its command a ``#(nop)`` comment); ``RUN`` runs its command in a container made from
the current image; ``COPY`` and ``ADD`` write into a container's root, named in the
cache by their sources' content hashes; every step is first looked up in the build
cache (``Using cache``).  Containers go through the container service, images
through its commit (see :mod:`.containers`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import dockerfile

from dockertw.daemon.builder import gofmt
from dockertw.daemon.builder.buildargs import BuildArgs
from dockertw.daemon.builder.cache import ImageProber
from dockertw.daemon.builder.containers import BuildCancelled, BuildContainers
from dockertw.daemon.builder.copier import CopyRequest, chown_pair, normalize_dest, perform_copy
from dockertw.daemon.builder.instructions import Instruction, Stage, parse_instruction
from dockertw.daemon.builder.options import BuildOutput
from dockertw.daemon.builder.sources import (
    CopyInfo,
    SourceError,
    SourceTree,
    copy_infos,
    source_hash,
)
from dockertw.daemon.containers.files.inroot import RootView
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.images.changes import DEFAULT_SHELL, ChangeState, apply_node, set_env
from dockertw.daemon.images.shellwords import process_word
from dockertw.daemon.images.store import Image
from dockertw.daemon.workers import Runner
from dockertw.errdefs import DockerError, InvalidParameter, System

__all__ = ["Evaluator", "BuildParts", "StageState", "DEFAULT_PATH"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_BUILDKIT_ONLY = ("the --{} option requires BuildKit. Refer to https://docs.docker.com/go/"
                  "buildkit/ to learn how to build images with BuildKit enabled")
_CONFIG_CHANGES = frozenset({"cmd", "entrypoint", "expose", "healthcheck", "onbuild",
                             "stopsignal", "user", "volume"})

#: Opens the sources of a ``COPY``/``ADD`` (in a worker thread): the tree and how
#: to close it.
OpenTree = Callable[[], tuple[SourceTree, Callable[[], None]]]


@attrs.define
class StageState:
    """What the instructions of one stage change (moby's ``dispatchState``)."""

    args: BuildArgs
    config: dict[str, Any] = attrs.field(factory=dict)
    image_id: str = ""
    has_from: bool = False
    name: str = ""
    maintainer: str = ""
    cmd_set: bool = False

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


@attrs.frozen
class BuildParts:
    """What an evaluation uses of the engine."""

    containers: BuildContainers
    output: BuildOutput
    prober: ImageProber
    worker: Runner
    context_tree: SourceTree | None
    #: ``(name, local_only)`` -> the image (pulled first when needed).
    image: Callable[[str, bool], Awaitable[Image]]
    #: an image ID -> its files to copy from, mounted (in a worker thread).
    image_tree: Callable[[str], OpenTree]
    #: a URL -> the downloaded file as a tree (in a worker thread).
    download: Callable[[str, str], OpenTree]
    #: told of each image a step makes, and of each the cache answers
    made: Callable[[str], None]
    used: Callable[[str], None]
    escape: str = "\\"


class Evaluator:
    """The evaluation of one build's stages."""

    def __init__(self, parts: BuildParts, build_args: BuildArgs, force_remove: bool,
                 remove: bool) -> None:
        self._parts = parts
        self._output = parts.output
        self._containers = parts.containers
        self._args = build_args
        self._force_remove = force_remove
        self._remove = remove
        self._stages: list[dict[str, Any]] = []
        self._stage_names: dict[str, dict[str, Any]] = {}
        self._step = 0
        self._total = 0
        self.base_id = ""  # the last stage's FROM image (what squash merges onto)

    # -- the whole build ---------------------------------------------------------------

    async def run(self, stages: tuple[Stage, ...], meta_args: tuple[Instruction, ...]) -> str:
        """Build every stage; answers the last one's image ID."""
        self._total = len(meta_args) + len(stages) + sum(len(s.instructions) for s in stages)
        for meta in meta_args:
            self._print_step(meta.code)
            self._meta_arg(meta)
        state: StageState | None = None
        for stage in stages:
            state = await self._run_stage(stage)
        unused = self._args.unused()
        if unused:
            listed = gofmt.plain_list(sorted(unused))
            self._output.stream(f"[Warning] One or more build-args {listed} were not "
                                "consumed\n")
        if state is None or not state.image_id:
            raise System("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    def _print_step(self, code: str) -> None:
        self._step += 1
        self._output.stream(f"Step {self._step}/{self._total} : {code}")
        self._output.stream("\n")

    def _meta_arg(self, meta: Instruction) -> None:
        env = self._args.allowed()
        for key, value in _arg_pairs(meta, lambda word: process_word(word, env,
                                                                      self._parts.escape)):
            self._args.add_arg(key, value)
            self._args.add_meta_arg(key, value)

    async def _run_stage(self, stage: Stage) -> StageState:
        if stage.name and stage.name in self._stage_names:
            raise System(f"{stage.name} stage name already used")
        state = StageState(self._args.for_stage(), name=stage.name)
        self._print_step(stage.code)
        await self._begin_stage(state, stage)
        self._announce(state)
        for instruction in stage.instructions:
            if self._containers.cancelled:
                self._output.stream("Build cancelled\n")
                raise BuildCancelled()
            self._print_step(instruction.code)
            await self._dispatch(state, instruction)
            self._announce(state)
        if state.image_id:  # a stage of scratch and nothing else has none
            self._output.aux({"ID": state.image_id})
        self._args.merge_referenced(state.args)
        self._stages.append(state.config)
        if stage.name:
            self._stage_names[stage.name] = state.config
        return state

    def _announce(self, state: StageState) -> None:
        state.config["Image"] = state.image_id
        self._output.stream(f" ---> {state.image_id.removeprefix('sha256:')[:12]}\n")

    # -- FROM --------------------------------------------------------------------------

    async def _begin_stage(self, state: StageState, stage: Stage) -> None:
        self._parts.prober.reset()
        meta = self._args.meta()
        if stage.platform:
            _check_platform(process_word(stage.platform, meta, self._parts.escape))
        name = process_word(stage.base, meta, self._parts.escape)
        image = await self._from_image(name)
        self.base_id = image.id if image is not None else ""
        state.has_from = True
        state.image_id = image.id if image is not None else ""
        base = image.config.get("config") if image is not None else None
        state.config = copy.deepcopy(base) if isinstance(base, dict) else {}
        _set_default_path(state.config)
        state.config["OpenStdin"] = state.config["StdinOnce"] = False
        triggers = list(state.config.get("OnBuild") or ())
        if triggers:
            state.config["OnBuild"] = None
            await self._run_triggers(state, triggers)

    async def _from_image(self, name: str) -> Image | None:
        stage = self._stage_names.get(name.lower())
        if stage is not None:
            return await self._parts.image(str(stage.get("Image") or ""), True) \
                if stage.get("Image") else None
        if name == "scratch":
            return None
        return await self._parts.image(name, False)

    async def _run_triggers(self, state: StageState, triggers: list[str]) -> None:
        plural = "s" if len(triggers) > 1 else ""
        self._output.stream(f"# Executing {len(triggers)} build trigger{plural}")
        self._output.stream("\n")
        for trigger in triggers:
            state.config["Image"] = state.image_id
            await self._dispatch(state, _trigger_instruction(trigger))

    # -- one instruction ---------------------------------------------------------------

    async def _dispatch(self, state: StageState, instruction: Instruction) -> None:
        succeeded = False
        try:
            await self._handler(instruction.name)(state, instruction)
            succeeded = True
        finally:
            if self._force_remove or (self._remove and succeeded):
                await self._containers.remove_all()

    def _handler(self, name: str) -> Callable[[StageState, Instruction], Awaitable[None]]:
        if name in _CONFIG_CHANGES:
            return self._config_change
        handlers: dict[str, Callable[[StageState, Instruction], Awaitable[None]]] = {
            "env": self._env, "label": self._label, "maintainer": self._maintainer,
            "arg": self._arg, "shell": self._shell, "workdir": self._workdir,
            "run": self._run, "copy": self._copy, "add": self._copy,
        }
        return handlers[name]

    def _changes(self, state: StageState) -> ChangeState:
        """The config to change, with the build arguments usable in substitutions."""
        env = state.config.get("Env") or []
        extra = dict(entry.split("=", 1) for entry in state.args.filter_allowed(env))
        return ChangeState(state.config, state.cmd_set, extra, self._parts.escape)

    def _word(self, state: StageState) -> Callable[[str], str]:
        return self._changes(state).word

    async def _config_change(self, state: StageState, instruction: Instruction) -> None:
        changes = self._changes(state)
        comment = _comment_before(instruction, changes, state.config, self._output)
        previous_health = state.config.get("Healthcheck")
        apply_node(changes, instruction.change_node())
        state.config, state.cmd_set = changes.config, changes.cmd_set
        comment = comment or _comment_after(instruction, state.config)
        if instruction.name == "healthcheck":
            _inherit_health(state.config, previous_health)
        await self._commit(state, comment)

    async def _env(self, state: StageState, instruction: Instruction) -> None:
        word = self._word(state)
        pairs = [(word(key), word(value)) for key, value in _pairs(instruction.args)]
        environment = list(state.config.get("Env") or ())
        for key, value in pairs:
            environment = set_env(environment, key, value)
        state.config["Env"] = environment
        await self._commit(state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _label(self, state: StageState, instruction: Instruction) -> None:
        word = self._word(state) if instruction.expand else (lambda text: text)
        pairs = [(word(key), word(value)) for key, value in _pairs(instruction.args)]
        state.config["Labels"] = {**(state.config.get("Labels") or {}), **dict(pairs)}
        await self._commit(state, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _maintainer(self, state: StageState, instruction: Instruction) -> None:
        state.maintainer = instruction.args[0]
        await self._commit(state, "MAINTAINER " + state.maintainer)

    async def _arg(self, state: StageState, instruction: Instruction) -> None:
        parts = []
        for key, value in _arg_pairs(instruction, self._word(state)):
            parts.append(key if value is None else f"{key}={value}")
            state.args.add_arg(key, value)
        await self._commit(state, "ARG " + " ".join(parts))

    async def _shell(self, state: StageState, instruction: Instruction) -> None:
        state.config["Shell"] = list(instruction.args)
        await self._commit(state, f"SHELL {gofmt.plain_list(state.config['Shell'])}")

    # -- commits -------------------------------------------------------------------------

    def _probe(self, state: StageState, config: dict[str, Any]) -> bool:
        cached = self._parts.prober.probe(state.image_id, config)
        if not cached:
            return False
        self._output.stream(" ---> Using cache\n")
        self._parts.used(cached)
        state.image_id = cached
        return True

    def _comment_config(self, state: StageState, comment: str,
                        one_word: bool = False) -> dict[str, Any]:
        config = copy.deepcopy(state.config)
        config["Cmd"] = [*state.shell(), *(["#(nop) " + comment] if one_word
                                           else ["#(nop) ", comment])]
        return config

    async def _commit(self, state: StageState, comment: str) -> None:
        """A config-only step: a container of the step's config, committed."""
        if not state.has_from:
            raise System("Please provide a source image with `from` prior to commit")
        config = self._comment_config(state, comment)
        if self._probe(state, config):
            return
        container_id = await self._containers.create(config)
        await self._commit_container(state, container_id, config)

    async def _commit_container(self, state: StageState, container_id: str,
                                container_config: dict[str, Any]) -> None:
        state.image_id = await self._containers.commit(
            container_id, copy.deepcopy(state.config), container_config, state.maintainer)
        self._parts.made(state.image_id)

    # -- WORKDIR -----------------------------------------------------------------------

    async def _workdir(self, state: StageState, instruction: Instruction) -> None:
        changes = self._changes(state)
        apply_node(changes, instruction.change_node())
        state.config = changes.config
        workdir = str(state.config.get("WorkingDir") or "")
        config = self._comment_config(state, "WORKDIR " + workdir, one_word=True)
        if self._probe(state, config):
            return
        container_id = await self._containers.create(config)
        await self._containers.write_into(container_id, _make_workdir(workdir))
        await self._commit_container(state, container_id, config)

    # -- RUN ---------------------------------------------------------------------------

    async def _run(self, state: StageState, instruction: Instruction) -> None:
        if instruction.flags:
            raise System(_BUILDKIT_ONLY.format(sorted(instruction.flags)[0]))
        command = _command_line(instruction, state)
        env = list(state.config.get("Env") or ())
        build_env = state.args.filter_allowed(env)
        saved = _with_build_env(state.args, build_env, command) if build_env else command
        probe = copy.deepcopy(state.config)
        probe["Cmd"] = saved
        if saved:
            probe["Entrypoint"] = None
        if self._probe(state, probe):
            return
        run_config = {**copy.deepcopy(state.config), "Cmd": command, "Env": env + build_env,
                      "Image": state.image_id}
        if saved:
            run_config["Entrypoint"] = [""]
        container_id = await self._containers.create(run_config)
        await self._containers.run(container_id, command)
        await self._commit_container(state, container_id, probe)

    # -- COPY and ADD ------------------------------------------------------------------

    async def _copy(self, state: StageState, instruction: Instruction) -> None:
        name = instruction.name.upper()
        if instruction.flags.get("chmod"):
            raise System(_BUILDKIT_ONLY.format("chmod"))
        word = self._word(state)
        words = [word(arg) for arg in instruction.args]
        chown = word(instruction.flags.get("chown", ""))
        source = instruction.flags.get("from", "")
        closers: list[Callable[[], None]] = []
        try:
            infos = await self._infos(words[:-1], words[-1], name, source, closers)
            await self._copy_infos(state, name, words[-1], infos, chown, source)
        finally:
            for close in closers:
                await self._parts.worker(close)

    async def _copy_infos(self, state: StageState, name: str, dest: str,
                          infos: list[CopyInfo], chown: str, source: str) -> None:
        if len(infos) > 1 and not dest.endswith("/"):
            raise System(f"When using {name} with more than one source file, the "
                         "destination must be a directory and end with a /")
        chown_comment = f"--chown={chown}" if chown else ""
        comment = f"{name} {chown_comment}{source_hash(infos)} in {dest} "
        config = self._comment_config(state, comment, one_word=True)
        if self._probe(state, config):
            return
        request = CopyRequest(normalize_dest(str(state.config.get("WorkingDir") or ""), dest),
                              None, decompress=name == "ADD")
        await self._copy_step(state, config, infos, request, chown,
                              owner_kept=bool(source) and not chown)

    async def _infos(self, sources: list[str], dest: str, name: str, source: str,
                     closers: list[Callable[[], None]]) -> list[CopyInfo]:
        openers = await self._openers(sources, dest, name, source)
        infos: list[CopyInfo] = []
        for opener, paths in openers:
            tree, close = await self._parts.worker(opener)
            closers.append(close)
            try:
                infos += await self._parts.worker(functools.partial(copy_infos, tree, paths))
            except SourceError as error:
                raise System(f"{name} failed: {error}") from None
        return infos

    async def _openers(self, sources: list[str], dest: str, name: str, source: str
                       ) -> list[tuple[OpenTree, list[str]]]:
        """Which trees hold the sources: another image or stage, downloads (``ADD``
        of a URL), or the context."""
        if source:
            return [(await self._from_tree(source), sources)]
        openers: list[tuple[OpenTree, list[str]]] = []
        local = [s for s in sources if not _is_url(s)]
        for url in (s for s in sources if _is_url(s)):
            if name == "COPY":
                raise System(f"{name} failed: source can't be a URL for COPY")
            openers.append((self._parts.download(url, dest), []))
        if local:
            openers.append((self._context_opener(), local))
        return openers

    def _context_opener(self) -> OpenTree:
        tree = self._parts.context_tree
        if tree is None:
            raise System("missing build context")
        return lambda: (tree, lambda: None)

    async def _from_tree(self, source: str) -> OpenTree:
        local_only, image_ref = False, source
        stage = self._stage_config(source)
        if stage is not None:
            local_only, image_ref = True, str(stage.get("Image") or "")
        try:
            image = await self._parts.image(image_ref, local_only)
        except DockerError as error:
            raise type(error)(f"invalid from flag value {source}: {error}") from None
        return self._parts.image_tree(image.id)

    def _stage_config(self, name_or_index: str) -> dict[str, Any] | None:
        found = self._stage_names.get(name_or_index.lower())
        if found is not None or not name_or_index.lstrip("-").isdigit():
            return found
        index = int(name_or_index)
        if index == len(self._stages):
            raise System(f"invalid from flag value {name_or_index}: refers to current "
                         "build stage")
        if not 0 <= index < len(self._stages):
            raise System(f"invalid from flag value {name_or_index}: index out of bounds")
        return self._stages[index]

    async def _copy_step(self, state: StageState, config: dict[str, Any],
                         infos: list[CopyInfo], request: CopyRequest, chown: str,
                         owner_kept: bool) -> None:
        container_id = await self._containers.create(config, announce=False)
        try:
            await self._containers.write_into(
                container_id, _copy_work(infos, request, chown, owner_kept))
            await self._commit_container(state, container_id, config)
        finally:
            await self._containers.remove(container_id)


# -- helpers ---------------------------------------------------------------------------


def _pairs(args: tuple[str, ...]) -> list[tuple[str, str]]:
    return list(zip(args[::2], args[1::2], strict=True))


def _arg_pairs(instruction: Instruction, word: Callable[[str], str]
               ) -> list[tuple[str, str | None]]:
    """``ARG`` names and defaults, each substituted on its own."""
    pairs: list[tuple[str, str | None]] = []
    for arg in instruction.args:
        key, has_value, value = arg.partition("=")
        pairs.append((word(key), word(value) if has_value else None))
    return pairs


def _set_default_path(config: dict[str, Any]) -> None:
    env = list(config.get("Env") or ())
    if not any(entry.split("=", 1)[0] == "PATH" for entry in env):
        config["Env"] = [*env, "PATH=" + DEFAULT_PATH]


def _check_platform(platform: str) -> None:
    operating_system = platform.split("/", 1)[0].lower()
    if operating_system != "linux":
        raise InvalidParameter(f'"{platform}": unknown operating system or architecture: '
                               "invalid argument")


def _trigger_instruction(trigger: str) -> Instruction:
    try:
        commands = list(dockerfile.parse_string(trigger))
    except dockerfile.GoParseError as error:
        raise InvalidParameter(str(error)) from None
    if len(commands) != 1:
        raise InvalidParameter("onbuild trigger should be a single expression")
    try:
        return parse_instruction(commands[0])
    except ValueError as error:
        raise InvalidParameter(str(error)) from None


def _command_line(instruction: Instruction, state: StageState) -> list[str]:
    """A ``RUN`` command: the JSON array as is, else the shell and the text."""
    if instruction.json_form:
        return list(instruction.args)
    return [*state.shell(), *([" ".join(instruction.args)] if instruction.args else [])]


def _with_build_env(args: BuildArgs, build_env: list[str], command: list[str]) -> list[str]:
    """moby's ``prependEnvOnCmd``: ``|N`` and the build arguments that count, sorted."""
    kept = sorted(entry for entry in build_env
                  if args.is_referenced_or_not_builtin(entry.split("=", 1)[0]))
    return [f"|{len(kept)}", *kept, *command]


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _comment_before(instruction: Instruction, changes: ChangeState,
                    config: dict[str, Any], output: BuildOutput) -> str:
    """History comments that need the instruction's own words (before it applies)."""
    if instruction.name == "expose":
        words = [word for raw in sorted(instruction.args) for word in changes.words(raw)]
        return "EXPOSE " + " ".join(words)
    if instruction.name == "volume":
        return "VOLUME " + gofmt.plain_list([changes.word(v.strip()) for v in instruction.args])
    if instruction.name == "healthcheck":
        previous = (config.get("Healthcheck") or {}).get("Test") or []
        if previous and previous[0] != "NONE":
            output.stream(f"Note: overriding previous HEALTHCHECK: "
                          f"{gofmt.plain_list(previous)}\n")
    return ""


def _comment_after(instruction: Instruction, config: dict[str, Any]) -> str:
    """History comments read from the config the instruction made."""
    name = instruction.name
    if name == "cmd":
        return "CMD " + gofmt.quoted_list(config.get("Cmd"))
    if name == "entrypoint":
        return "ENTRYPOINT " + gofmt.quoted_list(config.get("Entrypoint"))
    if name == "healthcheck":
        return "HEALTHCHECK " + gofmt.health_comment(config.get("Healthcheck") or {})
    if name == "onbuild":
        return "ONBUILD " + str((config.get("OnBuild") or [""])[-1])
    if name == "stopsignal":
        return "STOPSIGNAL " + str(config.get("StopSignal") or "")
    return "USER " + str(config.get("User") or "")


def _inherit_health(config: dict[str, Any], previous: Any) -> None:
    """As moby's container create merges a step's health check into the one before
    (through the config they share), unset times and retries stay the previous'."""
    health = config.get("Healthcheck")
    if not isinstance(previous, dict) or not isinstance(health, dict) or \
            health.get("Test") == ["NONE"]:
        return
    for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
        if not health.get(key) and previous.get(key):
            health[key] = previous[key]


def _make_workdir(workdir: str) -> Callable[[Container, Path, RootView], None]:
    """moby's ``ContainerCreateWorkdir``: the directory made (0755, root's)."""
    def work(container: Container, root: Path, view: RootView) -> None:
        place = view.resolve(workdir, follow_last=True, must_exist=False, make_dirs=True)
        try:
            if place.name:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(place.name, 0o755, dir_fd=place.parent)
        finally:
            os.close(place.parent)
    return work


def _copy_work(infos: list[CopyInfo], request: CopyRequest, chown: str,
               owner_kept: bool) -> Callable[[Container, Path, RootView], None]:
    def work(container: Container, root: Path, view: RootView) -> None:
        owner: tuple[int, int] | None = None if owner_kept else (0, 0)
        if chown:
            try:
                owner = chown_pair(root, chown)
            except ValueError as error:
                raise System("unable to convert uid/gid chown string to host mapping: "
                             f"{error}") from None
        try:
            perform_copy(view, infos, attrs.evolve(request, owner=owner))
        except OSError as error:
            raise System(f"failed to copy files: {error}") from None
    return work
