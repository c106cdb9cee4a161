"""Container IDs and names: random IDs, generated names and Docker's name rules."""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable

from dockertw.errdefs import InvalidParameter

__all__ = ["VALID_NAME_CHARS", "generate_id", "random_name", "check_name",
           "conflict_message"]

VALID_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VALID_NAME = re.compile(rf"^/?{VALID_NAME_CHARS}+$")

_ADJECTIVES = (
    "agile", "amazing", "bold", "brave", "bright", "calm", "clever", "cool", "crisp",
    "daring", "eager", "elegant", "fervent", "festive", "gentle", "happy", "honest",
    "jolly", "keen", "kind", "lucid", "merry", "modest", "nimble", "patient", "quiet",
    "quirky", "serene", "sharp", "silly", "steady", "sunny", "tender", "tidy", "vivid",
    "witty", "zealous",
)
_SURNAMES = (
    "agnesi", "babbage", "bardeen", "bohr", "boole", "cannon", "curie", "darwin",
    "dijkstra", "euler", "fermat", "franklin", "gauss", "germain", "goodall", "hopper",
    "hypatia", "kepler", "knuth", "lamarr", "lovelace", "maxwell", "meitner", "noether",
    "pascal", "perlman", "ritchie", "shannon", "somerville", "tesla", "thompson",
    "turing", "volta", "wozniak", "yalow",
)


def generate_id(token_hex: Callable[[int], str] = secrets.token_hex) -> str:
    """64 lowercase hex digits whose 12-digit short form is not all decimal (moby's rule)."""
    while True:
        candidate = token_hex(32)
        if not candidate[:12].isdigit():
            return candidate


def random_name(retry: int, rng: random.Random | None = None) -> str:
    """``adjective_surname``; from the second try on, a digit is appended (namesgenerator)."""
    chooser = rng or random.SystemRandom()
    while True:
        name = f"{chooser.choice(_ADJECTIVES)}_{chooser.choice(_SURNAMES)}"
        if name != "boring_wozniak":
            break
    return f"{name}{chooser.randrange(10)}" if retry > 0 else name


def check_name(name: str) -> str:
    """``name`` with its leading ``/``; a 400 with Docker's message when it is invalid."""
    if not _VALID_NAME.match(name.removeprefix("/")):
        raise InvalidParameter(
            f"Invalid container name ({name}), only {VALID_NAME_CHARS} are allowed")
    return name if name.startswith("/") else "/" + name


def conflict_message(name: str, container_id: str) -> str:
    """Docker's 409 for a name already taken by ``container_id``."""
    return (f'Conflict. The container name "{name}" is already in use by container '
            f'"{container_id}". You have to remove (or rename) that container to be able '
            f"to reuse that name.")
