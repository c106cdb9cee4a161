"""Stats without a container: cgroup v1 and v2 files, /proc texts, the ticker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock

from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.usage.cgroups import read_pids, read_stats_files
from dockertw.daemon.containers.usage.sampler import (
    KeptFiles,
    SharedSampler,
    Target,
    read_samples,
)
from dockertw.daemon.containers.usage.stats import (
    Sample,
    cgroup_files,
    network_stats,
    parse_sample,
    stats_json,
    system_cpu,
    v1_stats,
    v2_stats,
    zero_stats,
)
from dockertw.daemon.containers.usage.statsstream import (
    INTERVAL,
    StatsOptions,
    StatsSource,
    stream_stats,
)
from dockertw.errdefs import NotFound

GIB = 1 << 30
ZERO_TIME = "0001-01-01T00:00:00Z"

V1 = {
    "cpuacct.usage": "2500000000\n",
    "cpuacct.usage_percpu": "2000000000 500000000 \n",
    "cpuacct.stat": "user 200\nsystem 50\n",
    "cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n",
    "memory.usage_in_bytes": "1048576\n",
    "memory.max_usage_in_bytes": "2097152\n",
    "memory.limit_in_bytes": "9223372036854771712\n",
    "memory.failcnt": "0\n",
    "memory.stat": "cache 4096\nrss 8192\ntotal_inactive_file 4096\n",
    "pids.current": "3\n",
    "pids.max": "max\n",
    "blkio.throttle.io_service_bytes_recursive":
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Total 12288\n"
        "Total 12288\n",
    "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
}

V2 = {
    "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
                "nr_periods 10\nnr_throttled 2\nthrottled_usec 3\n",
    "memory.current": "1048576\n",
    "memory.max": "67108864\n",
    "memory.stat": "anon 8192\nfile 4096\ninactive_file 4096\npgfault 7\n",
    "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
    "pids.current": "3\n",
    "pids.max": "100\n",
    "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
}

PROC_STAT = """cpu  100 0 50 800 10 0 5 0 0 0
cpu0 50 0 25 400 5 0 3 0 0 0
cpu1 50 0 25 400 5 0 2 0 0 0
intr 12345
"""

NET_DEV = "\n".join([
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets"
    " errs drop fifo colls carrier compressed",
    "    lo:     100       1    0    0    0     0          0         0      100       1"
    "    0    0    0     0       0          0",
    "  eth0:    2000      20    1    2    0     0          0         0      3000      30"
    "    3    4    0     0       0          0",
]) + "\n"


def test_v1_files():
    parts = v1_stats(V1, machine_memory=GIB, clk_tck=100)
    assert parts["cpu_usage"] == {"total_usage": 2_500_000_000,
                                  "percpu_usage": [2_000_000_000, 500_000_000],
                                  "usage_in_kernelmode": 500_000_000,
                                  "usage_in_usermode": 2_000_000_000}
    assert parts["throttling_data"] == {"periods": 10, "throttled_periods": 2,
                                        "throttled_time": 3000}
    memory = parts["memory_stats"]
    assert list(memory) == ["usage", "max_usage", "stats", "limit"]  # moby's order
    assert (memory["usage"], memory["max_usage"], memory["limit"]) == (1048576, 2097152,
                                                                      GIB)
    assert (memory["stats"]["cache"], memory["stats"]["rss"],
            memory["stats"]["total_inactive_file"]) == (4096, 8192, 4096)
    assert len(memory["stats"]) == 32 and memory["stats"]["total_rss"] == 0
    assert list(memory["stats"]) == sorted(memory["stats"])  # a Go map
    assert parts["pids_stats"] == {"current": 3}
    blkio = parts["blkio_stats"]
    assert blkio["io_service_bytes_recursive"][:2] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 8192}]
    assert len(blkio["io_service_bytes_recursive"]) == 5
    assert len(blkio["io_serviced_recursive"]) == 2
    assert blkio["sectors_recursive"] == []  # moby copies every v1 list: [] not null


def test_v1_prefers_the_bfq_counters_and_keeps_a_set_limit():
    files = {**V1, "blkio.bfq.io_service_bytes_recursive": "8:16 Read 1\nTotal 1\n",
             "memory.limit_in_bytes": "67108864\n"}
    parts = v1_stats(files, machine_memory=GIB)
    assert parts["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 16, "op": "Read", "value": 1}]
    assert parts["memory_stats"]["limit"] == 64 << 20


def test_v2_files():
    parts = v2_stats(V2, machine_memory=GIB)
    assert parts["cpu_usage"] == {"total_usage": 2_500_000_000,
                                  "usage_in_kernelmode": 500_000_000,
                                  "usage_in_usermode": 2_000_000_000}
    assert parts["throttling_data"] == {"periods": 10, "throttled_periods": 2,
                                        "throttled_time": 3000}
    memory = parts["memory_stats"]
    assert list(memory) == ["usage", "stats", "failcnt", "limit"]
    assert (memory["usage"], memory["failcnt"], memory["limit"]) == (1048576, 1, 64 << 20)
    assert {key: value for key, value in memory["stats"].items() if value} == {
        "anon": 8192, "file": 4096, "inactive_file": 4096, "pgfault": 7}
    assert len(memory["stats"]) == 31 and list(memory["stats"]) == sorted(memory["stats"])
    assert parts["pids_stats"] == {"current": 3, "limit": 100}
    assert parts["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 4096},
        {"major": 8, "minor": 0, "op": "write", "value": 8192}]
    assert parts["blkio_stats"]["io_serviced_recursive"] is None


def test_memory_stat_keys_are_mobys():
    v1 = v1_stats({**V1, "memory.stat": "cache 1\nshmem 2\nswap 3\n"})
    assert "shmem" not in v1["memory_stats"]["stats"]
    assert "swap" not in v1["memory_stats"]["stats"]
    v2 = v2_stats({**V2, "memory.stat": "anon 1\nzswap 2\nworkingset_refault_file 3\n"})
    assert v2["memory_stats"]["stats"]["workingset_refault"] == 0
    assert "zswap" not in v2["memory_stats"]["stats"]


def test_v2_without_limits_shows_the_host_memory():
    files = {**V2, "memory.max": "max\n", "pids.max": "max\n", "memory.events": ""}
    parts = v2_stats(files, machine_memory=GIB)
    assert parts["memory_stats"]["limit"] == GIB and "failcnt" not in parts["memory_stats"]
    assert parts["pids_stats"] == {"current": 3}


def test_missing_files_give_zeroes():
    parts = v2_stats({})
    assert parts["cpu_usage"]["total_usage"] == 0 and parts["memory_stats"] == {}


def test_host_cpu_and_network():
    assert system_cpu(PROC_STAT, clk_tck=100) == (965 * 10_000_000, 2)
    assert network_stats(NET_DEV) == {"eth0": {
        "rx_bytes": 2000, "rx_packets": 20, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 3000, "tx_packets": 30, "tx_errors": 3, "tx_dropped": 4}}


def test_the_answer_with_and_without_a_previous_sample():
    first = parse_sample("2", V2, PROC_STAT, NET_DEV, 1_000_000_000, GIB)
    second = parse_sample("2", V2, PROC_STAT, None, 2_500_000_000, GIB)
    shown = stats_json("/c", "abc", second, first)
    assert shown["read"] == "1970-01-01T00:00:02.5Z"
    assert shown["preread"] == "1970-01-01T00:00:01Z"
    assert shown["precpu_stats"]["system_cpu_usage"] == 9_650_000_000
    assert shown["cpu_stats"]["online_cpus"] == 2 and "networks" not in shown
    assert stats_json("/c", "abc", first)["networks"]["eth0"]["rx_bytes"] == 2000
    alone = stats_json("/c", "abc", first)
    assert alone["preread"] == "0001-01-01T00:00:00Z"
    assert alone["precpu_stats"] == {"cpu_usage": {"total_usage": 0,
                                                   "usage_in_kernelmode": 0,
                                                   "usage_in_usermode": 0},
                                     "throttling_data": {"periods": 0,
                                                         "throttled_periods": 0,
                                                         "throttled_time": 0}}


def test_zeroed_stats():
    shown = zero_stats("/c", "abc")
    assert shown["read"] == shown["preread"] == "0001-01-01T00:00:00Z"
    assert shown["memory_stats"] == {} and shown["pids_stats"] == {}
    assert shown["blkio_stats"]["io_service_bytes_recursive"] is None
    assert (shown["name"], shown["id"], shown["num_procs"]) == ("/c", "abc", 0)


class _Engine:
    """A fake service: one container that runs while ``running`` is set."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.container = Container("abc", "/c", 0, "sh", [], {}, {}, "sha256:x")
        self.running = True
        self.removed = False
        self.reads = 0
        self.passes = 0
        self.sent: list[dict[str, Any]] = []
        self.sampler = SharedSampler(self.clock, INTERVAL, self._read_all)

    def _find(self, key: str) -> Deferred[Container]:
        if self.removed:
            raise NotFound(f"No such container: {key}")
        return succeed(self.container)

    def _sample(self, container: Container) -> Deferred[Sample | None]:
        if not self.running:
            return succeed(None)
        self.reads += 1
        files = {**V2, "cpu.stat": f"usage_usec {self.reads}\n"}
        return succeed(parse_sample("2", files, PROC_STAT, None,
                                    int(self.clock.seconds() * 1e9) + 1, GIB))

    def _read_all(self, containers: list[Container]) -> Deferred[dict[str, Sample]]:
        self.passes += 1
        samples = {c.id: self._sample(c).result for c in containers}
        return succeed({key: sample for key, sample in samples.items() if sample})

    def serve(self, stream: bool, one_shot: bool = False) -> Deferred[None]:
        source = StatsSource(find=self._find, running=lambda _: self.running,
                             sample=self._sample, clock=self.clock,
                             next_sample=self.sampler.next)
        return ensureDeferred(stream_stats(source, self.container,
                                           StatsOptions(stream, one_shot), self.sent.append))


def _total(shown: dict[str, Any], key: str = "cpu_stats") -> int:
    return int(shown[key]["cpu_usage"]["total_usage"])


def test_a_stream_follows_the_container_until_it_is_removed():
    engine = _Engine()
    done = engine.serve(stream=True)
    assert len(engine.sent) == 1 and engine.sent[0]["preread"] == ZERO_TIME
    engine.clock.advance(1)
    assert engine.sent[1]["preread"] == engine.sent[0]["read"]
    assert _total(engine.sent[1], "precpu_stats") == 1000
    engine.running = False  # stopped: zeroed objects, as moby's collector publishes
    engine.clock.advance(1)
    assert engine.sent[2]["read"] == ZERO_TIME and _total(engine.sent[2]) == 0
    assert _total(engine.sent[2], "precpu_stats") == 2000
    engine.running = True  # restarted: real numbers again
    engine.clock.advance(1)
    assert engine.sent[3]["preread"] == ZERO_TIME and _total(engine.sent[3]) == 3000
    assert not done.called
    engine.removed = True
    engine.clock.advance(1)
    assert done.called and len(engine.sent) == 4 and engine.clock.getDelayedCalls() == []


def test_cancelling_a_stream_stops_its_timer():
    engine = _Engine()
    done = engine.serve(stream=True)
    engine.clock.advance(1)
    failures: list[Any] = []
    done.addErrback(failures.append)
    done.cancel()
    assert failures[0].check(CancelledError) and engine.clock.getDelayedCalls() == []
    engine.clock.advance(5)
    assert len(engine.sent) == 2 and engine.reads == 2


def test_streams_share_one_pass_a_second():
    engine = _Engine()
    streams = [engine.serve(stream=True) for _ in range(3)]
    assert len(engine.sent) == 3 and engine.passes == 0  # the first samples: at once
    engine.clock.advance(1)
    assert len(engine.sent) == 6 and engine.passes == 1
    engine.clock.advance(1)
    assert len(engine.sent) == 9 and engine.passes == 2
    streams[0].addErrback(lambda failure: None)
    streams[0].cancel()
    engine.clock.advance(1)
    assert len(engine.sent) == 11 and engine.passes == 3
    assert engine.sampler.waiting == 1  # one container, two streams waiting on it
    for stream in streams[1:]:
        stream.addErrback(lambda failure: None)
        stream.cancel()
    assert engine.sampler.waiting == 0 and engine.clock.getDelayedCalls() == []


def test_a_pass_reads_proc_stat_once_and_each_cgroup(tmp_path: Path):
    proc = tmp_path / "proc"
    (proc / "7" / "net").mkdir(parents=True)
    (proc / "stat").write_text(PROC_STAT)
    (proc / "7" / "net" / "dev").write_text(NET_DEV)
    for name in ("a", "b"):
        cgroup = tmp_path / "v2" / "parent" / name
        cgroup.mkdir(parents=True)
        for file, text in V2.items():
            (cgroup / file).write_text(text)
    samples = read_samples("2", [Target("a", "/parent/a", 7), Target("b", "/parent/b", None)],
                           GIB, 100, root=tmp_path / "v2", proc=proc)
    expected = parse_sample("2", V2, PROC_STAT, NET_DEV, 0, GIB)
    assert samples["a"].cgroup == expected.cgroup and samples["a"].networks
    assert samples["b"].system_cpu == expected.system_cpu and samples["b"].networks is None


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_kept_files_are_read_again_from_the_start_and_closed_when_not_followed(
        tmp_path: Path):
    (tmp_path / "cpu.stat").write_text("usage_usec 1\n")
    before, files = _open_fds(), KeptFiles()
    paths = {"cpu.stat": str(tmp_path / "cpu.stat"), "io.stat": str(tmp_path / "io.stat")}
    with files.pass_of({"a/7"}):
        assert files.read("a/7", lambda: paths) == {"cpu.stat": "usage_usec 1\n"}
    (tmp_path / "cpu.stat").write_text("usage_usec 22\n")  # the same file, new text
    (tmp_path / "io.stat").write_text("8:0 rbytes=1\n")  # missing at first: not tried again
    with files.pass_of({"a/7"}):
        assert files.read("a/7", lambda: paths) == {"cpu.stat": "usage_usec 22\n"}
    assert _open_fds() == before + 1
    with files.pass_of({"a/8"}):  # restarted (another pid): opened afresh
        assert len(files.read("a/8", lambda: paths)) == 2
    assert _open_fds() == before + 2
    files.close()
    assert _open_fds() == before


def test_the_sampler_says_when_no_one_waits_any_more():
    engine = _Engine()
    idle: list[bool] = []
    engine.sampler = SharedSampler(engine.clock, INTERVAL, engine._read_all,
                                   lambda: idle.append(True))
    stream = engine.serve(stream=True)
    engine.clock.advance(1)
    assert idle == []
    stream.addErrback(lambda failure: None)
    stream.cancel()
    assert idle == [True]


def test_once_after_a_second_sample_at_once_with_one_shot_or_zeroed():
    engine = _Engine()
    done = engine.serve(stream=False)
    assert engine.sent == [] and not done.called
    engine.clock.advance(1)
    assert done.called and _total(engine.sent[0], "precpu_stats") == 1000
    assert _total(engine.sent[0]) == 2000
    assert engine.serve(stream=False, one_shot=True).called
    assert _total(engine.sent[1], "precpu_stats") == 0 and _total(engine.sent[1]) == 3000
    engine.running = False
    assert engine.serve(stream=False).called and engine.sent[2]["read"] == ZERO_TIME
    assert (engine.sent[2]["name"], engine.sent[2]["id"]) == ("/c", "abc")


def test_reading_a_v2_and_a_v1_hierarchy(tmp_path: Path):
    unified = tmp_path / "v2" / "parent" / "abc"
    unified.mkdir(parents=True)
    for name, text in V2.items():
        (unified / name).write_text(text)
    (unified / "cgroup.procs").write_text("7\n9\n")
    proc = tmp_path / "proc"
    (proc / "7" / "net").mkdir(parents=True)
    (proc / "stat").write_text(PROC_STAT)
    (proc / "7" / "net" / "dev").write_text(NET_DEV)
    files = read_stats_files("2", "/parent/abc", cgroup_files("2"), 7,
                             root=tmp_path / "v2", proc=proc)
    assert files.cgroup == V2 and files.proc_stat == PROC_STAT and files.net_dev == NET_DEV
    assert read_pids("2", "/parent/abc", root=tmp_path / "v2") == {7, 9}
    memory = tmp_path / "v1" / "memory" / "parent" / "abc"
    memory.mkdir(parents=True)
    (memory / "memory.usage_in_bytes").write_text("5\n")
    (memory / "cgroup.procs").write_text("11\n")
    files = read_stats_files("1", "/parent/abc", cgroup_files("1"), None,
                             root=tmp_path / "v1", proc=proc)
    assert files.cgroup == {"memory.usage_in_bytes": "5\n"} and files.net_dev is None
    assert read_pids("1", "/parent/abc", root=tmp_path / "v1") == {11}
    assert read_pids("1", "/gone", root=tmp_path / "v1") == set()
