"""Settings, read from the environment.

With nothing set, the project runs on the embedded default: SQLite, the in-memory channel layer
and the local-memory cache. `DATABASE_URL` switches to PostgreSQL and `REDIS_URL` to
channels-redis and django-redis (the production shape). No secret lives in this file.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if os.environ.get("DATABASE_URL"):
        # DEBUG=1 does not change this: a fixed public key would sign the sessions, CSRF
        # tokens and password-reset links of a real database.
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set.")
    # The embedded default only (SQLite on one machine): a fixed, obviously-local key.
    SECRET_KEY = "embedded-default-not-secret"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "events",
    "events.webhooks",
    "contractors",
    "scheduling",
    "realtime",
    "smartscheduler",
]

MIDDLEWARE = [
    # First: a body over REQUEST_MAX_BODY_BYTES is a JSON 413 before anything reads it.
    "smartscheduler.middleware.BodySizeLimit",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Serves collected static files (admin, API docs) from daphne in the production shape.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # API answers (tokens, personal data) are never stored by browsers or proxies.
    "smartscheduler.middleware.NoStoreApiResponses",
    # Last, as django-axes asks: turns a locked-out sign-in into the 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "smartscheduler.urls"
ASGI_APPLICATION = "smartscheduler.asgi.application"
WSGI_APPLICATION = "smartscheduler.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Stores -------------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# Threads per server process for the websockets' database reads (handshakes, replays, access
# re-checks), so that a reconnect storm never queues on the thread of the sync views
# (realtime/dbthreads.py); each holds at most one connection at a time.
WEBSOCKET_DB_THREADS = int(os.environ.get("WEBSOCKET_DB_THREADS", "4"))
if DATABASE_URL:
    # Connections are checked before use (health checks; for the pool, psycopg_pool's
    # check_connection): after PostgreSQL restarts or terminates a session, the next request
    # reconnects instead of failing (500).
    DATABASES = {
        # No persistent connections by default: under ASGI each request may run on another
        # thread, so kept connections pile up (Django's docs say to disable them there; the
        # chaos soak saw the count grow). Management commands such as the relay keep theirs.
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
            conn_health_checks=True,
        )
    }
    # Instead, a pool per process (Django's answer for ASGI): a request borrows a connection
    # and gives it back as it ends, rather than starting a PostgreSQL session (a server process)
    # per request (docs/profiles/booking.md). A few connections for the requests in flight,
    # plus one for each of the websockets' own database threads (WEBSOCKET_DB_THREADS above;
    # realtime.W001 warns when the pool is smaller than those and one). DB_POOL_MAX_SIZE=0
    # turns it off.
    _POOL_MAX_SIZE = int(os.environ.get("DB_POOL_MAX_SIZE", str(4 + WEBSOCKET_DB_THREADS)))
    if _POOL_MAX_SIZE and not DATABASES["default"]["CONN_MAX_AGE"]:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": _POOL_MAX_SIZE,
            # Waiting longer for a free connection than this answers 503 (OperationalError).
            "timeout": float(os.environ.get("DB_POOL_TIMEOUT", "10")),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # The embedded relay and the server share the file; wait rather than fail on a lock.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "smartscheduler",
            # Bumped by a deploy that changes what cached values mean (wholesale invalidation).
            "VERSION": int(os.environ.get("CACHE_VERSION", "1")),
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # channels-redis's layer plus the broadcast's group look-up (realtime/layers.py).
            "BACKEND": "realtime.layers.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 defaults socket_timeout to 5 s, which breaks an idle consumer's
                # blocking receive (channels_redis issue 422): no socket timeout here.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                # group_send silently drops past capacity; size it for bursts, and rely on
                # resume from the EventLog for completeness.
                "capacity": int(os.environ.get("CHANNEL_CAPACITY", "1000")),
                "expiry": 60,
                # A member that has not re-joined for this long leaves its groups (channels-redis
                # defaults to a day): consumers re-join every third of it, so only a dead
                # consumer's channel (a killed process) drops out, within this many seconds.
                "group_expiry": int(os.environ.get("CHANNEL_GROUP_EXPIRY", "300")),
                "prefix": "smartscheduler",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000},
        }
    }

# --- Auth, API --------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
# django-axes first: it refuses a locked-out client before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# API tokens (django-rest-knox, docs/security.md): stored as SHA-512 digests, several per user,
# each expiring API_TOKEN_TTL_DAYS after it was issued (no sliding renewal).
API_TOKEN_TTL_DAYS = float(os.environ.get("API_TOKEN_TTL_DAYS", "30"))
# Issuing one more than this revokes the user's oldest token (bounds the table per user).
API_TOKENS_PER_USER = int(os.environ.get("API_TOKENS_PER_USER", "20"))
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

# Failed sign-ins (django-axes), one policy for the token endpoint, /login/ and /admin/login/:
# LOGIN_FAILURE_LIMIT failures from one client address lock that address out for
# LOGIN_LOCKOUT_MINUTES (each failure while locked out starts the wait again); a locked-out
# attempt answers 429 even with the right password. `python manage.py axes_reset_ip ADDRESS`
# lifts a lockout (docs/security.md). LOGIN_LOCKOUT_PARAMETERS: "ip_address" (default),
# "ip_address,username" (each counted on its own), or "username+ip_address" (the pair).
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [
    part.split("+") if "+" in part else part
    for part in env_list("LOGIN_LOCKOUT_PARAMETERS", "ip_address")
]
AXES_RESET_ON_SUCCESS = False  # else one's own good password would clear an address's failures
AXES_LOCKOUT_CALLABLE = "smartscheduler.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "smartscheduler.clients.client_address"
AXES_VERBOSE = False
AXES_ENABLE_ADMIN = True

# /metrics: with METRICS_TOKEN set, scrapers send `Authorization: Bearer <METRICS_TOKEN>`;
# without it, only clients from METRICS_ALLOWED_NETWORKS (default: this machine) are answered.
# The same credentials see /healthz's per-check details; anyone else gets only up or down.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous request gets 401 with `WWW-Authenticate: Token`.
        "smartscheduler.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "smartscheduler.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "smartscheduler.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "smartscheduler.api.errors.exception_handler",
    "DEFAULT_METADATA_CLASS": "smartscheduler.api.metadata.Metadata",
    # Accept: text/html gets JSON when no HTML renderer is on (smartscheduler/api/renderers.py).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "smartscheduler.api.renderers.ContentNegotiation",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["smartscheduler.api.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",
    # Client addresses (login lockouts, /metrics): with NUM_PROXIES unset a client could send
    # any X-Forwarded-For and pick a new "address" per attempt; the address is REMOTE_ADDR
    # unless trusted proxies in front say otherwise (smartscheduler.clients).
    "NUM_PROXIES": int(os.environ.get("NUM_PROXIES", "0")),
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "smartscheduler.api.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "SmartScheduler API",
    "DESCRIPTION": (
        "Match flooring jobs to contractors; every change is a domain event. The events "
        "(websocket streams, message bus, webhooks) are described by the AsyncAPI 3.0 "
        "document at [/api/asyncapi](/api/asyncapi)."
    ),
    "EXTERNAL_DOCS": {"description": "Events: AsyncAPI 3.0 document", "url": "/api/asyncapi"},
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ContractorStatusEnum": "contractors.models.ContractorStatus",
        "ContractorTypeEnum": "contractors.models.ContractorType",
        "JobStatusEnum": "scheduling.models.JobStatus",
        "JobTypeEnum": "scheduling.models.JobType",
        "AssignmentStatusEnum": "scheduling.models.AssignmentStatus",
        "EventTypeEnum": "events.catalog.EVENT_TYPE_CHOICES",
    },
    # `<id:...>` path segments (events.api.converters.IdConverter): digits that fit a bigint.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Events -----------------------------------------------------------------------------------
# The embedded default runs the relay inside the server process; the production shape runs
# `manage.py relay` processes and leaves this off.
EVENTS_EMBEDDED_RELAY = env_bool("EMBEDDED_RELAY", not DATABASE_URL)
# Delivered events older than this may be removed by `manage.py events_prune` (docs/events.md).
EVENTS_RETENTION_DAYS = int(os.environ.get("EVENTS_RETENTION_DAYS", "90"))
# The external message bus (docs/bus.md): when set (amqp://... or sqs://...), the relay also
# publishes every event there through the `events.bus` handler; unset, the handler is off.
EVENT_BUS_URL = os.environ.get("EVENT_BUS_URL", "")
EVENT_BUS_EXCHANGE = os.environ.get("EVENT_BUS_EXCHANGE", "smartscheduler.events")
# CloudEvents `source` of every event this deployment publishes (bus and webhooks), and where
# its `dataschema` points: the AsyncAPI document's address as other services reach it (set the
# absolute public URL in production, e.g. https://scheduler.example.com/api/asyncapi).
EVENT_SOURCE = os.environ.get("EVENT_SOURCE", "/smartscheduler")
EVENT_SCHEMA_BASE_URL = os.environ.get("EVENT_SCHEMA_BASE_URL", "/api/asyncapi")
# Outgoing webhooks (docs/webhooks.md): endpoints on loopback, link-local or private addresses
# are refused unless this is true (a test or an internal network that means it).
WEBHOOKS_ALLOW_PRIVATE = env_bool("WEBHOOKS_ALLOW_PRIVATE", False)
# Seconds to connect to and hear back from a webhook endpoint (one attempt).
WEBHOOKS_TIMEOUT_SECONDS = env_float("WEBHOOKS_TIMEOUT_SECONDS", 5.0)
# How long the previous secret keeps signing after a rotation.
WEBHOOKS_ROTATION_GRACE_HOURS = env_float("WEBHOOKS_ROTATION_GRACE_HOURS", 24.0)

# --- Domain -----------------------------------------------------------------------------------
# Where events look up which logical groups a user may see (events imports no app).
EVENTS_VISIBILITY_POLICY = "contractors.access.visible_groups"
# Who holds the admin role, for the webhook endpoints (events/webhooks/api.py).
WEBHOOKS_ADMIN_POLICY = "contractors.access.is_admin"
# Which groups a websocket stream joins for a user (realtime imports no app either); it raises
# PermissionError for a stream the user may not watch.
REALTIME_STREAM_POLICY = "contractors.access.stream_groups"
# How a websocket `?token=` is checked (the HTTP API's check), and what an open socket's access
# depends on; every open socket is re-checked every WEBSOCKET_RECHECK_SECONDS and closed (4401 or
# 4403) once its sign-in or permission is gone (realtime.revocation).
REALTIME_TOKEN_POLICY = "contractors.tokens.authenticate_key"
REALTIME_ACCESS_POLICY = "contractors.access.access_states"
WEBSOCKET_RECHECK_SECONDS = env_float("WEBSOCKET_RECHECK_SECONDS", 2.0)
# Open websockets one user may hold on one server process; one more is closed with 4429
# (docs/realtime.md).
WEBSOCKET_MAX_CONNECTIONS_PER_USER = int(os.environ.get("WEBSOCKET_MAX_CONNECTIONS_PER_USER", "20"))
# How long a socket's unsent output may stay over the server's write buffer (a client that does
# not read) before the socket is closed with 4408, so its backlog is freed (docs/realtime.md).
WEBSOCKET_SEND_TIMEOUT_SECONDS = env_float("WEBSOCKET_SEND_TIMEOUT_SECONDS", 10.0)
SCHEDULING = {
    "BUFFER_MINUTES": int(os.environ.get("SCHEDULING_BUFFER_MINUTES", "30")),
    "AVERAGE_SPEED_MPH": env_float("SCHEDULING_AVERAGE_SPEED_MPH", 30.0),
    "SLOT_GRID_MINUTES": 15,
    "HORIZON_DAYS": 14,
    "WEIGHTS": {"availability": 0.40, "rating": 0.35, "distance": 0.25},
    "RECOMMENDATIONS_TTL_MINUTES": 30,
}

# --- i18n, static -----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
# Without collectstatic (tests, a quick daphne run) serve static files from the apps.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", DEBUG)

# --- Hardening (docs/security.md) -----------------------------------------------------------
# Request bodies over this many bytes are refused with a JSON 413 before they are read.
REQUEST_MAX_BODY_BYTES = int(os.environ.get("REQUEST_MAX_BODY_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BODY_BYTES
# HTTPS=true (served over TLS, directly or behind a proxy that sets X-Forwarded-Proto): HSTS,
# redirect to https, cookies only over TLS. `manage.py check --deploy` is then clean.
HTTPS = env_bool("HTTPS", False)
if HTTPS:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env_bool("TRUST_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# Content-Security-Policy (django-csp): scripts, styles, images and fonts from this origin only,
# no inline script; the websocket streams and the API on this origin. The API docs page
# (Swagger UI) loads its script as a file for the same reason.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        # 'self' covers the same-origin ws:// and wss:// streams (CSP level 3).
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if DEBUG:
    # DRF's browsable API (DEBUG only) sets itself up with an inline script; without DEBUG the
    # API answers JSON and everything under /api/ (the docs page too) is covered.
    CONTENT_SECURITY_POLICY["EXCLUDE_URL_PREFIXES"] = ["/api/"]

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own default config gives "django" a console handler as well (DEBUG only):
        # with the root's, every django.* line (daphne's request lines too) printed twice.
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        # Failed sign-ins and lockouts are warnings; every successful sign-in is not news.
        "axes": {"level": "WARNING"},
    },
}
