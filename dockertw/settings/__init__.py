"""The daemon's settings from daemon.json (``--config-file``), beside its flags."""

from dockertw.settings.daemonjson import (
    DEFAULT_CONFIG_FILE,
    ConfigFileError,
    file_settings,
    read_config_file,
)
from dockertw.settings.kinds import go_text, parse_ulimit
from dockertw.settings.table import BY_KEY, DOCKER_ONLY, SETTINGS, Setting

__all__ = ["DEFAULT_CONFIG_FILE", "ConfigFileError", "file_settings", "read_config_file",
           "go_text", "parse_ulimit", "BY_KEY", "DOCKER_ONLY", "SETTINGS", "Setting"]
