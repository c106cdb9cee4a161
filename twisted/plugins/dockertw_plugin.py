"""twistd plugin: ``twistd dockertw --listen DESC``."""

from twisted.application.service import ServiceMaker

dockertw = ServiceMaker(
    "dockertw",
    "dockertw.tap",
    "A Docker Engine API daemon that runs containers with runc.",
    "dockertw",
)
