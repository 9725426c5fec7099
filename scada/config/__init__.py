"""Site configuration: YAML file → validated, typed :class:`SiteConfig`.

``load_config(path)`` returns ``(config, warnings)`` or raises
:class:`ConfigError` listing every problem as ``FILE:LINE: message``;
``check_main(path)`` is ``scada check FILE``.
"""

from .budget import plan_reads
from .durations import parse_duration
from .loader import check_main, load_config
from .model import (
    ApiConfig,
    ChannelConfig,
    DeviceConfig,
    HistoryConfig,
    PointConfig,
    ProfileConfig,
    Rs485Config,
    SiteConfig,
    SiteInfo,
    TransportConfig,
)
from .problems import ConfigError, Problem

__all__ = [
    "ApiConfig",
    "ChannelConfig",
    "ConfigError",
    "DeviceConfig",
    "HistoryConfig",
    "PointConfig",
    "Problem",
    "ProfileConfig",
    "Rs485Config",
    "SiteConfig",
    "SiteInfo",
    "TransportConfig",
    "check_main",
    "load_config",
    "parse_duration",
    "plan_reads",
]
