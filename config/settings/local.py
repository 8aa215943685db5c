"""Development settings: `make run` on a laptop."""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import env_bool

DEBUG = env_bool("DEBUG", True)
if not os.environ.get("ALLOWED_HOSTS"):
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
