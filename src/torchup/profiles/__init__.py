"""Machine profiles: plan for a machine torchup is not running on (``--for FILE``, or
``--python-version``/``--platform``/``--gpu``/``--driver``)."""

from torchup.profiles.profile import (
    PROFILE_FORMAT,
    Profile,
    from_flags,
    load,
    node_script,
    parse_platform,
    record,
    replay_detect,
)

__all__ = [
    "PROFILE_FORMAT",
    "Profile",
    "from_flags",
    "load",
    "node_script",
    "parse_platform",
    "record",
    "replay_detect",
]
