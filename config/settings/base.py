"""Settings shared by every environment. Every value comes from the environment."""

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def logging_config(*, json_lines: bool, level: str) -> dict[str, Any]:
    """LOGGING for every process (web, worker, beat): one JSON object a line, or plain lines, each carrying the
    request id (config/core/request_context.py adds it; docs/operations.md)."""
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            # These record attributes, then every `extra` field a call passes (route, status, ...).
            "fmt": ["asctime", "levelname", "name", "message", "request_id", "task_id", "task_name"],
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        }
        if json_lines
        else {
            "()": "logging.Formatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
            "defaults": {"request_id": "-"},
        }
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_context": {"()": "config.core.request_context.RequestContextFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["request_context"]}
        },
        "root": {"handlers": ["console"], "level": level},
    }


SECRET_KEY = os.environ.get("SECRET_KEY", "insecure-development-key-change-me")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "accounts",
    "markets",
    "forecast",
]

MIDDLEWARE = [
    # First: /healthz, /readyz and /metrics answer before host checks, redirects and sessions (config/core/health.py).
    "config.core.health.OperationsEndpointsMiddleware",
    "config.core.request_context.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "config.core.middleware.RejectNulCharactersMiddleware",
    "config.core.middleware.RejectOversizedBodyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After authentication: public reads of the named views may go to a replica, unless the user just wrote.
    "config.core.db_router.ReplicaReadsMiddleware",
    # Last: turns a login refused by a lockout into the "too many attempts" answer (accounts/lockout.py).
    "axes.middleware.AxesMiddleware",
]

# API requests without a cookie (a key, or an anonymous read) skip these: they serve the website's sessions,
# logins, messages, CSRF, htmx and static files (config/core/wsgi.py). API_FULL_STACK_PATHS always take the
# full stack: the token endpoint checks a password under django-axes' lockout.
API_SKIPPED_MIDDLEWARE = {
    "config.core.health.OperationsEndpointsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
}
API_MIDDLEWARE = [name for name in MIDDLEWARE if name not in API_SKIPPED_MIDDLEWARE]
API_FULL_STACK_PATHS = ("/api/v1/auth/",)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The site-wide number filters live in the bottom layer, which is not an app.
            "libraries": {"forecastle": "config.core.templatetags.forecastle"},
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/forecastle"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# Server-side parameter binding lets psycopg prepare a statement once a connection has run it this many
# times: a trade runs ~14 statements under its market lock and each gets cheaper (docs/benchmarks.md).
# Set DATABASE_PREPARE_THRESHOLD to "" for client-side binding (e.g. behind PgBouncer older than 1.21
# in transaction pooling, which cannot keep prepared statements).
if os.environ.get("DATABASE_PREPARE_THRESHOLD", "2"):
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "server_side_binding": True,
        "prepare_threshold": int(os.environ.get("DATABASE_PREPARE_THRESHOLD", "2")),
    }
# Read replicas for the public reads that tolerate a little staleness (config/core/db_router.py and
# docs/operations.md): each URL of DATABASE_REPLICA_URLS becomes the alias replica_0, replica_1, ...
DATABASE_REPLICAS = [f"replica_{index}" for index, _ in enumerate(env_list("DATABASE_REPLICA_URLS", ""))]
DATABASES.update(
    {
        alias: {
            **dj_database_url.parse(url, conn_max_age=DATABASES["default"]["CONN_MAX_AGE"], conn_health_checks=True),
            "OPTIONS": DATABASES["default"].get("OPTIONS", {}),
        }
        for alias, url in zip(DATABASE_REPLICAS, env_list("DATABASE_REPLICA_URLS", ""), strict=True)
    }
)
DATABASE_ROUTERS = ["config.core.db_router.ReplicaRouter"]
# Only these apps' models are read from a replica (users, wallets, sessions and keys never are), and only in
# GET/HEAD requests of these views.
DATABASE_REPLICA_APPS = ["markets", "forecast"]
DATABASE_REPLICA_VIEWS = [
    "markets:list",
    "markets:detail",
    "markets:live",
    "forecast:leaderboard",
    "forecast:user-profile",
    "api-markets",
    "api-market-detail",
    "api-market-history",
    "api-leaderboard",
    "api-user-detail",
    "api-market-scores",
]
# After a user's write, their reads stay on the primary this long (read-your-writes); above the replicas' lag.
DATABASE_REPLICA_PIN_SECONDS = int(os.environ.get("DATABASE_REPLICA_PIN_SECONDS", "10"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "config.core.redis_cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "forecastle"),
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# AxesStandaloneBackend first: it refuses a locked-out account or address before a password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Login limits (django-axes) on the website login, the admin login and POST /api/v1/auth/token/: after
# LOGIN_FAILURE_LIMIT failed attempts for one username, or from one client address, further attempts are
# refused for LOGIN_COOLOFF_MINUTES (each refused attempt starts the wait again). A password reset by
# e-mail clears the account's failures. Counters live in PostgreSQL, so they survive a Redis outage.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.core.client_address.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# One row per login attempt is not needed: failures are counted, successes are not logged.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
# Behind a reverse proxy, the number of proxies in front of the app whose X-Forwarded-For entries are
# trusted. 0 (the default): the client address is the socket's and X-Forwarded-For is ignored. Every
# per-address limit (login, token, sign-up, password reset, API throttles) uses this one rule.
API_NUM_PROXIES = int(os.environ.get("API_NUM_PROXIES", "0") or 0)
# Sign-ups per client address (each one receives the sign-up grant) and password-reset requests per
# client address, as "<count>/<second|minute|hour|day>".
FORECASTLE_SIGNUP_RATE = os.environ.get("SIGNUP_RATE", "5/hour")
FORECASTLE_PASSWORD_RESET_RATE = os.environ.get("PASSWORD_RESET_RATE", "5/hour")
# Request bodies: larger than this is a 413 (Django's default, 2.5 MB, made explicit); JSON nested deeper
# than API_MAX_JSON_DEPTH is a 400. No request of the API needs more than a few levels.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", str(2_621_440)))
API_MAX_JSON_DEPTH = int(os.environ.get("API_MAX_JSON_DEPTH", "32"))
# Active (unrevoked) API keys one account may hold.
FORECASTLE_API_KEYS_PER_ACCOUNT = int(os.environ.get("API_KEYS_PER_ACCOUNT", "10"))
# Where beat writes the daily dataset of resolved markets (markets/services/datasets.py), and how many are kept.
# With more than one web host, point every web host and the worker at one shared directory.
FORECASTLE_DATASETS_DIR = os.environ.get("DATASETS_DIR", str(BASE_DIR / "var" / "datasets"))
FORECASTLE_DATASETS_KEEP = int(os.environ.get("DATASETS_KEEP", "7"))

# Password reset by e-mail (Django's views). Development prints the message on the console; production
# sends it over SMTP (config/settings/production.py).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Forecastle <noreply@localhost>")
PASSWORD_RESET_TIMEOUT = int(os.environ.get("PASSWORD_RESET_TIMEOUT", str(3 * 3600)))
# With EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend, one file per message lands here.
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
# The site's public address, for the links in notification e-mails (they are read outside the site).
FORECASTLE_SITE_URL = os.environ.get("FORECASTLE_SITE_URL", "http://127.0.0.1:8000")
# Comments: how long after posting the author may still edit one.
FORECASTLE_COMMENT_EDIT_MINUTES = int(os.environ.get("COMMENT_EDIT_MINUTES", "15"))

# Content-Security-Policy: scripts and styles only from this site's own static files, so no markup a user
# or staff member typed can run script or restyle a page even if it escaped encoding; no plugins, no
# framing, forms post only here. Permissions-Policy turns off the browser features the site never uses.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "publickey-credentials-get",
        "screen-wake-lock",
        "usb",
        "xr-spatial-tracking",
    )
}

# Money: credits are Decimals with this many places (see accounts/money.py).
FORECASTLE_SIGNUP_GRANT = Decimal(os.environ.get("FORECASTLE_SIGNUP_GRANT", "1000"))
# A trader enters the mean-Brier leaderboard after this many scored markets.
FORECASTLE_BRIER_MIN_MARKETS = int(os.environ.get("FORECASTLE_BRIER_MIN_MARKETS", "3"))

# Resolution as a process (docs/settlement.md): a proposal stays open to challenge this long, a challenge
# posts this bond (credits, held in the ledger until a resolver decides), and the beat task that finalizes
# proposals whose window ended runs this often.
FORECASTLE_CHALLENGE_WINDOW = timedelta(seconds=float(os.environ.get("CHALLENGE_WINDOW_SECONDS", "86400")))
FORECASTLE_CHALLENGE_BOND = Decimal(os.environ.get("CHALLENGE_BOND", "10"))
FORECASTLE_PROPOSALS_FINALIZE_SECONDS = float(os.environ.get("PROPOSALS_FINALIZE_SECONDS", "30"))

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "config.core.api_schema.ForecastleAutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every API class keeps HasKeyScope among its permissions (accounts/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasKeyScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.core.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "config.core.api.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["config.core.api.AnonReadThrottle", "config.core.api.UserReadThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon_read": os.environ.get("API_RATE_ANON_READ", "120/min"),
        "user_read": os.environ.get("API_RATE_USER_READ", "600/min"),
        "trade": os.environ.get("API_RATE_TRADE", "60/min"),
        # Limit orders placed, per account: each rests on the book and is looked at by every crossing trade.
        "order": os.environ.get("API_RATE_ORDER", "30/min"),
        # Standing forecasts stated, per account: each arms a pair of orders that re-arm after every fill.
        "standing_forecast": os.environ.get("API_RATE_STANDING_FORECAST", "10/min"),
        "auth_token": os.environ.get("API_RATE_AUTH_TOKEN", "10/min"),
        # Comments and replies posted, per account (website and API together).
        "comment": os.environ.get("API_RATE_COMMENT", "6/min"),
        # Bulk exports (a market's trades, datasets, "download my data"): each one reads a whole table.
        "export": os.environ.get("API_RATE_EXPORT", "30/hour"),
        "challenge": os.environ.get("API_RATE_CHALLENGE", "10/hour"),
    },
    # The throttles take the client address from config.core.client_address (API_NUM_PROXIES); this keeps DRF's
    # own get_ident on the same rule should anything call it.
    "NUM_PROXIES": API_NUM_PROXIES,
}
# Cached price reads are refreshed on every trade; this bounds staleness from other changes (closing, resolving).
FORECASTLE_PRICE_CACHE_SECONDS = int(os.environ.get("FORECASTLE_PRICE_CACHE_SECONDS", "30"))
# A rendered price history is checked against the market's version on every read, so keeping it longer never serves
# it stale: it spares rendering it again when the market's snapshot expired but nothing changed.
FORECASTLE_RENDERED_CACHE_SECONDS = int(os.environ.get("FORECASTLE_RENDERED_CACHE_SECONDS", "300"))
# Point-in-time reads (as_of): an answer about a moment this far in the past cannot change any more (every
# transaction dated before it has committed), so it is cached for AS_OF_CACHE_SECONDS; a more recent one is
# cached only until the next market change, like the market list.
FORECASTLE_AS_OF_SETTLED_SECONDS = int(os.environ.get("FORECASTLE_AS_OF_SETTLED_SECONDS", "60"))
FORECASTLE_AS_OF_CACHE_SECONDS = int(os.environ.get("FORECASTLE_AS_OF_CACHE_SECONDS", "86400"))

# The live stream (docs/api.md, markets/stream/): events in one Redis stream under this key (the cache's
# prefix by default), kept for STREAM_RETENTION_SECONDS and at most STREAM_MAX_EVENTS of them, for clients
# that reconnect with Last-Event-ID.
FORECASTLE_STREAM_KEY = os.environ.get("STREAM_REDIS_KEY") or f"{CACHES['default']['KEY_PREFIX']}:stream"
FORECASTLE_STREAM_MAX_EVENTS = int(os.environ.get("STREAM_MAX_EVENTS", "10000"))
FORECASTLE_STREAM_RETENTION_SECONDS = int(os.environ.get("STREAM_RETENTION_SECONDS", "3600"))
# A comment line this often keeps proxies from closing an idle stream (and renews the connection's slot).
FORECASTLE_STREAM_HEARTBEAT_SECONDS = float(os.environ.get("STREAM_HEARTBEAT_SECONDS", "15"))
# Open streams per client address, counted across every stream process (config.core.client_address).
FORECASTLE_STREAM_CONNECTIONS_PER_ADDRESS = int(os.environ.get("STREAM_CONNECTIONS_PER_ADDRESS", "20"))
# Markets one stream may name in `markets`.
FORECASTLE_STREAM_MAX_MARKETS = int(os.environ.get("STREAM_MAX_MARKETS", "50"))
SPECTACULAR_SETTINGS = {
    "TITLE": "Forecastle API",
    "DESCRIPTION": "Prices, price history, quotes and trading on the Forecastle forecasting exchange.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No deep links: with them Swagger UI puts a link inside each operation's toggle button, a control nested
    # in a control that screen readers and the keyboard cannot use (axe: nested-interactive).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "MarketStatusEnum": "markets.models.Market.Status",
        "MarketKindEnum": "markets.models.Market.Kind",
        "TradeSideEnum": "markets.models.Trade.Side",
        "ResolutionKindEnum": "markets.models.Resolution.Kind",
        "ResolutionStateEnum": "markets.models.Resolution.State",
        "ProposalStateEnum": "markets.models.Proposal.State",
    },
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
# A worker (or beat) that loses the broker keeps trying to reconnect for as long as it takes, at start-up
# too, instead of exiting after 100 tries: state lives in PostgreSQL and the sweepers catch up afterwards.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TIMEZONE = "UTC"
# Every periodic schedule of the project, in one place.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "close-due-markets": {"task": "markets.tasks.markets_close_due", "schedule": 60.0},
    # Limit orders past their expiry end and release their reserves; idempotent, and a worker killed mid-run
    # rolls its market back (the next run finishes it).
    "expire-due-orders": {"task": "markets.tasks.orders_expire_due", "schedule": 60.0},
    # Standing forecasts past their expiry end with their orders; idempotent, one market per transaction.
    "expire-due-standing-forecasts": {"task": "markets.tasks.standing_forecasts_expire_due", "schedule": 60.0},
    # Re-enqueues settlements whose message was lost (killed worker, Redis restart); settling is idempotent.
    "sweep-stuck-settlements": {"task": "markets.tasks.settlements_sweep", "schedule": 60.0},
    "reconcile-ledger": {"task": "markets.tasks.ledger_reconcile", "schedule": crontab(minute=7)},
    # Re-enqueues scoring lost between a committed settlement and its message; scoring is idempotent.
    "sweep-stale-scores": {"task": "forecast.tasks.scores_sweep", "schedule": 300.0},
    # Scoring rebuilds the leaderboards; this hourly pass lets markets age out of the 30-day boards.
    "rebuild-leaderboards": {"task": "forecast.tasks.leaderboards_rebuild", "schedule": crontab(minute=17)},
    # Precomputes the price candles completed in the last minute, so history reads skip their points.
    "roll-up-price-candles": {"task": "markets.tasks.candles_roll_up", "schedule": 60.0},
    # Notifications: markets closing within a day and markets that moved 10 points (set-based, exactly once).
    "notify-market-events": {"task": "markets.tasks.market_events_notify", "schedule": crontab(minute=23)},
    # Re-enqueues resolution notices whose message was lost; the fan-out is exactly once.
    "sweep-resolution-notifications": {"task": "markets.tasks.resolution_notifications_sweep", "schedule": 300.0},
    # Mails what waits to go at once (normally enqueued right after each event), and the daily digest.
    "send-notification-mail": {"task": "accounts.tasks.notifications_email_send", "schedule": 60.0},
    "send-notification-digest": {
        "task": "accounts.tasks.notifications_digest_send",
        "schedule": crontab(hour=int(os.environ.get("NOTIFICATION_DIGEST_HOUR", "7")), minute=0),
    },
    # The public dataset of resolved markets (GET /api/v1/datasets/), once a day.
    "build-dataset": {"task": "markets.tasks.dataset_build", "schedule": crontab(hour=3, minute=41)},
    # Proposals nobody challenged in time become the market's resolution (and settle); idempotent, and a
    # window that ended while no worker ran is finalized on the first run after.
    "finalize-due-proposals": {
        "task": "markets.tasks.proposals_finalize_due",
        "schedule": FORECASTLE_PROPOSALS_FINALIZE_SECONDS,
    },
}

# Operations (docs/operations.md). /readyz gives each dependency this long to answer.
READINESS_TIMEOUT_SECONDS = float(os.environ.get("READINESS_TIMEOUT_SECONDS", "2"))
# /metrics is off unless one of these is set: addresses or networks that may scrape it, or a bearer token.
METRICS_ALLOWED_ADDRESSES = env_list("METRICS_ALLOWED_ADDRESSES", "")
METRICS_BEARER_TOKEN = os.environ.get("METRICS_BEARER_TOKEN", "")
# A Celery worker on a machine of its own can serve its metrics on a port (unguarded: keep it private).
WORKER_METRICS_PORT = int(os.environ["WORKER_METRICS_PORT"]) if os.environ.get("WORKER_METRICS_PORT") else None
WORKER_METRICS_ADDRESS = os.environ.get("WORKER_METRICS_ADDRESS", "127.0.0.1")

# One JSON object a line ("json", the production default) or plain lines ("plain"); the worker and beat
# keep this configuration too (config/celery.py stops Celery from replacing it).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
LOGGING = logging_config(json_lines=LOG_FORMAT == "json", level=os.environ.get("LOG_LEVEL", "INFO"))
# django-axes logs every login attempt at INFO; its warnings (a lockout) are what matter.
LOGGING["loggers"] = {**LOGGING.get("loggers", {}), "axes": {"level": os.environ.get("AXES_LOG_LEVEL", "WARNING")}}

# Errors go to Sentry when SENTRY_DSN is set (its Django and Celery integrations switch on by themselves; the
# request id is added as a tag by config/core/request_context.py); without it the SDK is not even imported.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    import sentry_sdk

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
        traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0")),
        send_default_pii=False,
    )
