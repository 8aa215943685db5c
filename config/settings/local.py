"""Development settings: `make run` on a laptop."""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import env_bool, env_list

DEBUG = env_bool("DEBUG", True)
if not os.environ.get("ALLOWED_HOSTS"):
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
# On a laptop, the machine itself may read /metrics.
METRICS_ALLOWED_ADDRESSES = env_list("METRICS_ALLOWED_ADDRESSES", "127.0.0.1,::1")
