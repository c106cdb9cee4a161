"""kill -9 of the daemon at random points under load (the slow tier: ``-m slow``).

Twenty clients create, start, exec into, copy into, stop and remove containers (on a
bridge and chains of the test's own, some with published ports), import
images and use volumes while the daemon is killed at a random moment; the restarted
daemon (with or without ``--live-restore``, at random) must show every object whole or
not at all and leave nothing without an owner (:func:`tests.crashes.problems`), and
everything must then be removable.  ``DTW_CRASH_SEED`` replays a run;
``DTW_CRASH_ROUNDS`` sets the number of rounds (50).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli import import_image
from tests.crashes import Load, problems, remove_everything, runc_leftover_report
from tests.netsupport import network_args, network_leftovers
from tests.support import Daemon, mounts_left

pytestmark = pytest.mark.slow


def _restart(daemon: Daemon, live: bool) -> None:
    daemon.args = [arg for arg in daemon.args if arg != "--live-restore"]
    if live:
        daemon.args.append("--live-restore")
    daemon.start()


def test_kill_9_under_load_leaves_every_object_whole_or_gone(
        start_daemon: Callable[..., Daemon], busybox_tar: Path):
    seed = int(os.environ.get("DTW_CRASH_SEED") or time.time_ns() % 1_000_000)
    rounds = int(os.environ.get("DTW_CRASH_ROUNDS") or 50)
    rng = random.Random(seed)
    print(f"DTW_CRASH_SEED={seed}")
    live = rng.random() < 0.5
    daemon = start_daemon(*network_args(), *(["--live-restore"] if live else []))
    image = busybox_tar.read_bytes()
    try:
        import_image(daemon, busybox_tar, "bb:1")
        for round_id in range(rounds):
            load = Load(daemon, image, rng, round_id)
            load.start()
            time.sleep(rng.uniform(0.2, 1.5))
            daemon.stop(signal.SIGKILL)
            load.stop()
            where = f"round {round_id} (DTW_CRASH_SEED={seed}, live restore {live})"
            assert load.errors == [], f"{where}: {load.errors}"
            assert "Traceback" not in daemon.output(), f"{where}: {daemon.output()[-5000:]}"
            live = rng.random() < 0.5
            _restart(daemon, live)
            found = problems(daemon, live)
            assert found == [], (f"{where}, restarted (live {live}): {found}\n"
                                 f"{runc_leftover_report(daemon, found)}")
            print(f"{where}: {load.answered} answers, then nothing out of place")
            assert remove_everything(daemon) == [], where
            assert mounts_left(daemon.root) == [], where
            assert daemon.container_cgroups() == [], where
        assert "Traceback" not in daemon.output(), daemon.output()[-5000:]
        daemon.kill_leftovers()
        assert network_leftovers(daemon, [daemon.args[daemon.args.index("--bridge") + 1]]) \
            == []
    finally:
        daemon.kill_leftovers()
