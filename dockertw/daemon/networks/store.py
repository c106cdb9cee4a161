"""Network records under ``ROOT/network/networks/<id>.json``, written crash-safely.

Lookups follow moby's ``FindNetwork``: full ID, then exact name, then unique ID
prefix.  Every method is safe from any thread.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

from twisted.logger import Logger

from dockertw.daemon.networks.records import Network
from dockertw.daemon.storage import atomic_write, ensure_directory, fsync_directory
from dockertw.errdefs import InvalidParameter, NotFound

__all__ = ["NetworkStore", "new_network_id"]

_log = Logger()


def new_network_id() -> str:
    return secrets.token_hex(32)


class NetworkStore:
    """The networks of the daemon, kept in memory once loaded."""

    def __init__(self, root: Path) -> None:
        self.root = ensure_directory(root, 0o700)
        self._lock = threading.RLock()
        self._networks: dict[str, Network] = {}
        for path in sorted(self.root.glob("*.json")):
            try:
                network = Network.from_json(path.read_bytes())
            except (OSError, ValueError, KeyError, TypeError) as error:
                _log.warn("skipping unreadable network {path}: {error}", path=str(path),
                          error=str(error))
                continue
            self._networks[network.id] = network

    def all(self) -> list[Network]:
        """Every network, predefined ones first, then by name."""
        with self._lock:
            found = list(self._networks.values())
        return sorted(found, key=lambda n: (not n.predefined, n.name, n.id))

    def find(self, term: str) -> Network | None:
        """By full ID, unique name or unique ID prefix (400 when ambiguous)."""
        with self._lock:
            networks = list(self._networks.values())
        by_id = [n for n in networks if n.id == term]
        if by_id:
            return by_id[0]
        by_name = [n for n in networks if n.name == term]
        if len(by_name) > 1:
            raise InvalidParameter(f"network {term} is ambiguous ({len(by_name)} matches "
                                   "found on name)")
        if by_name:
            return by_name[0]
        by_prefix = [n for n in networks if term and n.id.startswith(term)]
        if len(by_prefix) > 1:
            raise InvalidParameter(f"network {term} is ambiguous ({len(by_prefix)} matches "
                                   "found based on ID prefix)")
        return by_prefix[0] if by_prefix else None

    def get(self, term: str) -> Network:
        found = self.find(term)
        if found is None:
            raise NotFound(f"network {term} not found")
        return found

    def by_name(self, name: str) -> Network | None:
        with self._lock:
            return next((n for n in self._networks.values() if n.name == name), None)

    def save(self, network: Network) -> None:
        """Add or replace a record (crash-safely)."""
        with self._lock:
            atomic_write(self.root / f"{network.id}.json", network.to_json())
            self._networks[network.id] = network

    def remove(self, network_id: str) -> Network:
        with self._lock:
            network = self._networks.pop(network_id)
            (self.root / f"{network_id}.json").unlink(missing_ok=True)
            fsync_directory(self.root)
            return network
