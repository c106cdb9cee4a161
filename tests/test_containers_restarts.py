"""Restart policy decisions, their backoff and ``docker update`` bodies (no daemon)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from dockertw.daemon.containers.records import config as configs
from dockertw.daemon.containers.running.restarts import (
    Backoff,
    RestartPolicy,
    RestartSchedule,
    should_restart,
)
from dockertw.errdefs import InvalidParameter


@pytest.mark.parametrize(("policy", "code", "manual", "count", "expected"), [
    (RestartPolicy("no"), 1, False, 0, False),
    (RestartPolicy("always"), 0, True, 9, True),
    (RestartPolicy("unless-stopped"), 0, False, 0, True),
    (RestartPolicy("unless-stopped"), 1, True, 0, False),
    (RestartPolicy("on-failure"), 0, False, 0, False),
    (RestartPolicy("on-failure"), 1, False, 100, True),
    (RestartPolicy("on-failure", 2), 1, False, 1, True),
    (RestartPolicy("on-failure", 2), 1, False, 2, False),
])
def test_should_restart(policy, code, manual, count, expected):
    assert should_restart(policy, code, manual, count) is expected


def test_policy_read_from_host_config():
    assert RestartPolicy.of({}) == RestartPolicy("no", 0)
    assert RestartPolicy.of({"RestartPolicy": {"Name": "on-failure",
                                               "MaximumRetryCount": 3}}) \
        == RestartPolicy("on-failure", 3)


def test_backoff_doubles_up_to_a_minute_and_resets_after_ten_seconds():
    backoff = Backoff()
    delays = [backoff.next_delay(0.01) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0
    assert backoff.next_delay(10.0) == 0.1


def test_schedule_fires_once_and_can_be_cancelled():
    clock = Clock()
    schedule = RestartSchedule(clock.callLater)
    fired: list[str] = []
    assert schedule.schedule("a", 0.0, fired.append) == 0.1
    assert schedule.is_pending("a")
    clock.advance(0.1)
    assert fired == ["a"] and not schedule.is_pending("a")
    assert schedule.schedule("a", 0.0, fired.append) == 0.2
    assert schedule.cancel("a") and not schedule.cancel("a")
    clock.advance(1)
    assert fired == ["a"]
    schedule.schedule("b", 0.0, fired.append)
    schedule.cancel_all()
    schedule.reset("a")
    assert schedule.schedule("a", 0.0, fired.append) == 0.1  # the backoff was forgotten
    clock.advance(1)
    assert fired == ["a", "a"]


def test_update_body_is_validated():
    update = configs.parse_update_body({"Memory": 64 << 20, "CpuShares": 0,
                                        "RestartPolicy": {"Name": "always"}})
    assert update.resources == {"Memory": 64 << 20}
    assert update.restart_policy == {"Name": "always", "MaximumRetryCount": 0}
    assert configs.parse_update_body(None).restart_policy is None
    for body, message in [
        ({"CpusetCpus": "0"}, "updating CpusetCpus is not supported"),
        ({"Memory": 1024}, "Minimum memory limit allowed is 6MB"),
        ({"Memory": "1g"}, "Memory must be an integer"),
        ({"RestartPolicy": {"Name": "never"}}, "invalid restart policy 'never'"),
        ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}},
         "maximum retry count cannot be used with restart policy 'always'"),
    ]:
        with pytest.raises(InvalidParameter, match=message):
            configs.parse_update_body(body)


def test_update_refuses_a_policy_for_auto_remove_containers():
    update = configs.parse_update_body({"RestartPolicy": {"Name": "always"}})
    with pytest.raises(InvalidParameter, match="AutoRemove is enabled"):
        configs.apply_update({"AutoRemove": True}, update)
    changed = configs.apply_update({"Memory": 0}, update)
    assert changed["RestartPolicy"]["Name"] == "always"


def test_update_refuses_negative_limits():
    for body, message in [({"Memory": -5}, "Minimum memory limit allowed is 6MB"),
                          ({"CpuShares": -1}, "invalid CpuShares")]:
        with pytest.raises(InvalidParameter, match=message):
            configs.parse_update_body(body)
