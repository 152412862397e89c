"""Settings for Genesis, read from the environment (see README "Configuration")."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from genesis.env import env_bool, env_int, env_list, env_rate, env_seconds, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("GENESIS_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_secret(
    "SECRET_KEY", required=not DEBUG, dev_default="django-insecure-genesis-development-only-key"
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "genesis.apps.GenesisAdminConfig",  # django.contrib.admin with Genesis's site (sign-in limits)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "history",
    "missions",
    "agents",
    "tasks",
    "django_q",  # after tasks: tasks' ``qcluster`` command (a supervised cluster, tasks/cluster.py) wins
    "blueprints",
    "pipeline",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "genesis.middleware.RefuseNulQueryMiddleware",  # a NUL in a query parameter: 400 naming it, on every page
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "genesis.urls"
WSGI_APPLICATION = "genesis.wsgi.application"
ASGI_APPLICATION = "genesis.asgi.application"

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
        },
    },
]

# SQLite under var/ is the embedded default; DATABASE_URL switches to PostgreSQL.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'genesis.sqlite3'}")
# PostgreSQL connections are kept (checked before reuse): django-q2 closes "old" connections before every task, and
# with CONN_MAX_AGE 0 each task would open a new one (a few ms per hop of a chain). DB_CONN_MAX_AGE=0 turns it off.
_conn_max_age = env_int("DB_CONN_MAX_AGE", 0 if DATABASE_URL.startswith("sqlite") else 600)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=_conn_max_age,
                                              conn_health_checks=_conn_max_age > 0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and a worker cluster share the file; the timeout rides out short locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

# Uploads (artifacts, spec files): a hard size limit, checked before anything is stored.
GENESIS_MAX_UPLOAD_BYTES = env_int("GENESIS_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = min(GENESIS_MAX_UPLOAD_BYTES, 2_621_440)
# A mapping's dry run reads every row up to this many rows of the month-partitioned table, else its latest month.
GENESIS_DRY_RUN_FULL_ROWS = env_int("GENESIS_DRY_RUN_FULL_ROWS", 200_000)
# Source profiling: above this many rows a table's distinct counts and frequent values come from a sample of about
# GENESIS_PROFILE_SAMPLE_ROWS rows (row and null counts, min, max, keys and foreign keys stay exact).
GENESIS_PROFILE_SAMPLE_ABOVE_ROWS = env_int("GENESIS_PROFILE_SAMPLE_ABOVE_ROWS", 200_000, minimum=1)
GENESIS_PROFILE_SAMPLE_ROWS = env_int("GENESIS_PROFILE_SAMPLE_ROWS", 50_000, minimum=1)
# Profiling runs up to this many tables (then foreign-key containment queries) at once, each thread on its own
# connection to the source; DuckDB stays on one (one of its queries already uses every core).
GENESIS_PROFILE_THREADS = env_int("GENESIS_PROFILE_THREADS", 2, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# Ingest (pipeline/ingest/): a mission's ingest task reads files only under GENESIS_INGEST_ROOT (the ingest command
# reads any path it is given); every file and its columns are bounded before anything is loaded.
GENESIS_INGEST_ROOT = Path(env_str("GENESIS_INGEST_ROOT", str(VAR_DIR / "ingest")))
GENESIS_INGEST_MAX_FILE_BYTES = env_int("GENESIS_INGEST_MAX_FILE_BYTES", 1024**3)
GENESIS_INGEST_MAX_COLUMNS = env_int("GENESIS_INGEST_MAX_COLUMNS", 500)
GENESIS_INGEST_MAX_FILES = env_int("GENESIS_INGEST_MAX_FILES", 200)
for _name in ("GENESIS_INGEST_MAX_FILE_BYTES", "GENESIS_INGEST_MAX_COLUMNS", "GENESIS_INGEST_MAX_FILES"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, not {globals()[_name]}")
FILE_UPLOAD_PERMISSIONS = 0o640
# Every multipart body (admin, pages, API) is checked against GENESIS_MAX_UPLOAD_BYTES before a byte of it is read.
FILE_UPLOAD_HANDLERS = [
    "genesis.uploads.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Blueprint and spec files (genesis/documents.py): YAML past any of these limits is refused, naming the limit, before
# it can hold a worker. The shipped files have at most 10 KB, 571 nodes, 9 levels of nesting and no aliases; YAML is
# read at about 25,000 nodes a second, so the largest document within the limits takes about 2 s. The depths stay far
# below Python's recursion limit, which every recursive walk of the data (schemas, JSON encoding) shares.
GENESIS_YAML_MAX_BYTES = env_int("GENESIS_YAML_MAX_BYTES", 1024 * 1024, minimum=1)
GENESIS_YAML_MAX_ALIASES = env_int("GENESIS_YAML_MAX_ALIASES", 100, minimum=0)
GENESIS_YAML_MAX_DEPTH = env_int("GENESIS_YAML_MAX_DEPTH", 64, minimum=1, maximum=200)
GENESIS_YAML_MAX_NODES = env_int("GENESIS_YAML_MAX_NODES", 50_000, minimum=1)
# JSON in request bodies and JSON form fields: lists and objects nested deeper than this are refused (a 400).
GENESIS_JSON_MAX_DEPTH = env_int("GENESIS_JSON_MAX_DEPTH", 64, minimum=1, maximum=200)

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "genesis@localhost")

# Production hardening: on whenever DEBUG is off, each overridable.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("SECURE_PROXY_SSL", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGIN_URL = "/admin/login/"

# Caches. "api": rendered API list pages (genesis/api/caching.py); local memory per process is enough because the
# key carries the newest history id. GENESIS_API_LIST_CACHE_SECONDS bounds how long a page may be reused (0: off).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "genesis-default"},
    "api": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "genesis-api",
            "OPTIONS": {"MAX_ENTRIES": 2000}},
    # Rendered page panels (genesis/fragments.py), keyed by the version of what they show.
    "pages": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "genesis-pages",
              "OPTIONS": {"MAX_ENTRIES": 400}},
}
GENESIS_API_LIST_CACHE_SECONDS = env_int("GENESIS_API_LIST_CACHE_SECONDS", 5)
# The cockpit's panels are kept rendered under the mission's history version; this bounds what no history entry
# records (a renamed user, a row edited outside the services). 0 turns the cache off.
GENESIS_COCKPIT_CACHE_SECONDS = env_int("GENESIS_COCKPIT_CACHE_SECONDS", 30)

# REST API: token auth first so an anonymous request gets 401 with a WWW-Authenticate header.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "genesis.api.auth.LoggedTokenAuthentication",
        "genesis.api.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "genesis.api.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "DEFAULT_FILTER_BACKENDS": ["genesis.api.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "genesis.api.schema.GenesisAutoSchema",
    "EXCEPTION_HANDLER": "genesis.api.errors.exception_handler",
    # Form and multipart bodies are read like JSON: no "empty means absent", a repeated field is a list.
    "DEFAULT_PARSER_CLASSES": [
        "genesis.api.parsers.JSONParser",
        "genesis.api.parsers.FormParser",
        "genesis.api.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "auth": env_rate("API_AUTH_RATE", "10/min"),
        "auth_failures": env_rate("API_AUTH_FAILURE_RATE", "20/min"),
    },
    # How many proxies in front of the server add to X-Forwarded-For. 0: limits count the connecting address and
    # ignore the header, which a client could otherwise change at every attempt.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# Sign-in limits (genesis/login_limits.py): failed password checks per client address and per username, whether on
# the site, the admin or the token endpoint. A rate's count of failures comes free and failures are forgiven at that
# rate; past the free ones each attempt waits after the last failure LOGIN_DELAY_SECONDS, doubled for every further
# failure up to LOGIN_DELAY_MAX_SECONDS (429 without checking the password until then; the right password after).
GENESIS_LOGIN_FAILURE_RATES = {
    "address": env_rate("LOGIN_FAILURE_RATE_ADDRESS", "50/hour"),
    "username": env_rate("LOGIN_FAILURE_RATE_USERNAME", "10/hour"),
}
GENESIS_LOGIN_DELAY_SECONDS = env_int("LOGIN_DELAY_SECONDS", 2, minimum=1)
GENESIS_LOGIN_DELAY_MAX_SECONDS = env_int("LOGIN_DELAY_MAX_SECONDS", 900, minimum=1)
if GENESIS_LOGIN_DELAY_MAX_SECONDS < GENESIS_LOGIN_DELAY_SECONDS:
    raise ImproperlyConfigured(f"LOGIN_DELAY_MAX_SECONDS ({GENESIS_LOGIN_DELAY_MAX_SECONDS}) must be at least "
                               f"LOGIN_DELAY_SECONDS ({GENESIS_LOGIN_DELAY_SECONDS})")
# The "limits" cache keeps those counts and the API's throttles. Every web worker process must share it: gunicorn
# runs several, and local memory would give each worker its own counts (every limit multiplied by the number of
# workers). Redis when REDIS_URL is set (shared by every machine); otherwise files under var/cache/, shared by the
# workers of this machine (run several web machines with REDIS_URL). The tests use local memory.
CACHES["limits"] = (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str("REDIS_URL")}
    if env_str("REDIS_URL") else
    {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache" / "limits"),
     "OPTIONS": {"MAX_ENTRIES": 10_000}}
)

SPECTACULAR_SETTINGS = {
    "TITLE": "Genesis API",
    "DESCRIPTION": "Missions, tasks, runs, artifacts and the workflow verbs that move them. "
    "Authenticate with `Authorization: Bearer <key>` or `Authorization: Token <key>` (the key from "
    "POST /api/v1/auth/token/ or `manage.py issue_token`).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One tag per resource (genesis/api/schema.py tags each operation with the resource of its path), in this order.
    "TAGS": [
        {"name": "auth", "description": "Your API token."},
        {"name": "missions", "description": "Outcomes a data team wants, their members and workflow verbs."},
        {"name": "projects", "description": "Missions, for tools that call them projects."},
        {"name": "tasks", "description": "The steps of a mission, each owned by a person or an agent."},
        {"name": "todos", "description": "Tasks, for tools that call them todos (and their mission a project)."},
        {"name": "dependencies", "description": "Which task waits for which."},
        {"name": "runs", "description": "Attempts at tasks, with their logs."},
        {"name": "artifacts", "description": "Outputs of missions: files and links, versioned."},
        {"name": "history", "description": "What happened, who did it, and when."},
        {"name": "phases", "description": "The stages of a mission and their exit criteria."},
        {"name": "questions", "description": "Questions agents ask people, and their answers."},
        {"name": "check-results", "description": "Results of exit, acceptance and success checks, and waivers."},
        {"name": "blueprints", "description": "Reusable mission templates: import, export, launch."},
        {"name": "connections", "description": "The named databases agents read from and build into."},
        {"name": "agents", "description": "The data agents that can own tasks."},
        {"name": "mapping-specs", "description": "Proposed column mappings per target table, approved or rejected."},
        {"name": "environments", "description": "dev, test, stage and prod targets of a mission's dbt project."},
    ],
    "ENUM_NAME_OVERRIDES": {
        "MissionStatusEnum": "missions.choices.MissionStatus",
        "TaskStatusEnum": "tasks.choices.TaskStatus",
        "RunStatusEnum": "tasks.choices.RunStatus",
        "PhaseStatusEnum": "tasks.choices.PhaseStatus",
        "EnvironmentNameEnum": "pipeline.models.Environment.Name",
    },
}

# django-q2: the ORM broker by default (SQLite or PostgreSQL); Redis when REDIS_URL is set.
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER = {
    "name": "genesis",
    "workers": env_int("Q_WORKERS", 2),
    # Above a task's default timeout (3600 s) plus the cancel grace and the chaining window (``tasks``), so
    # the engine's own timeout acts first; retry above it, so django-q2 never re-delivers a message still running.
    "timeout": env_int("Q_TIMEOUT", 3660),
    "retry": env_int("Q_RETRY", 3760),
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    "label": "Task queue",
}
# The engine's brokers wake on events (PostgreSQL LISTEN/NOTIFY, a local socket for SQLite, Redis's blocking pop)
# and run the recovery sweep while idle (tasks/broker.py). GENESIS_BROKER=django uses django-q2's own broker.
Q_CLUSTER["queue_limit"] = env_int("Q_QUEUE_LIMIT", Q_CLUSTER["workers"])
_BROKER = env_str("GENESIS_BROKER", "genesis")
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    if _BROKER == "genesis":
        Q_CLUSTER["broker_class"] = "tasks.broker.RedisBroker"
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.2
    if _BROKER == "genesis":
        Q_CLUSTER["broker_class"] = (
            "tasks.broker.PostgresNotifyBroker" if "postgres" in DATABASES["default"]["ENGINE"]
            else "tasks.broker.SqliteWakeBroker"
        )

# The engine (``tasks``): leases, heartbeats, retry backoff and the idle sweep, in seconds.
GENESIS_LEASE_SECONDS = env_int("GENESIS_LEASE_SECONDS", 30)
GENESIS_HEARTBEAT_SECONDS = env_seconds("GENESIS_HEARTBEAT_SECONDS", 1)
# An agent still working this long after its run was cancelled or timed out has its cluster worker stopped (SIGKILL;
# the cluster spawns a new one) instead of holding the slot until Q_TIMEOUT.
GENESIS_CANCEL_GRACE_SECONDS = env_seconds("GENESIS_CANCEL_GRACE_SECONDS", 10)
GENESIS_CHAIN_SECONDS = env_seconds("GENESIS_CHAIN_SECONDS", 2)
GENESIS_BATCH_MAX = env_int("GENESIS_BATCH_MAX", 16)
GENESIS_HANDOFF_SECONDS = env_seconds("GENESIS_HANDOFF_SECONDS", 0.5)
GENESIS_RETRY_BACKOFF_SECONDS = env_seconds("GENESIS_RETRY_BACKOFF_SECONDS", 5)
GENESIS_RETRY_BACKOFF_MAX_SECONDS = env_seconds("GENESIS_RETRY_BACKOFF_MAX_SECONDS", 300)
GENESIS_SWEEP_SECONDS = env_seconds("GENESIS_SWEEP_SECONDS", 5)
# A cluster whose messages wait while every worker is idle this long is restarted (a dead process holds one of its
# queue locks: tasks/cluster.py); 0 turns the watchdog off.
GENESIS_STALL_SECONDS = env_seconds("GENESIS_STALL_SECONDS", 10)
# Modules a worker cluster imports once when it starts, before it forks its workers, so that no run pays for them
# (dbt and its adapters: 1.5-2 s in a fresh process). Empty: each worker imports them when a run first needs them.
GENESIS_WORKER_PRELOAD = env_list("GENESIS_WORKER_PRELOAD", [
    "dbt.cli.main", "dbt.adapters.sqlite", "dbt.adapters.postgres", "dbt.adapters.duckdb"])
# Called after the imports, before the cluster forks: each adapter's dbt template is parsed (or found current), so a
# new project's parse starts from it (pipeline/dbt/runner.py).
GENESIS_WORKER_WARMUP = env_list("GENESIS_WORKER_WARMUP", ["pipeline.dbt.runner.warm_up"])
# A run enqueued this long ago and never claimed is sent again once the broker holds no untaken message (its message
# is presumed held by a dead cluster; a live one may hold it too, behind busy workers: then another cluster takes it
# and the stale copy is refused at its claim).
GENESIS_REDISPATCH_SECONDS = env_seconds("GENESIS_REDISPATCH_SECONDS", 2 * GENESIS_LEASE_SECONDS)
GENESIS_NOTIFY_ATTEMPTS = env_int("GENESIS_NOTIFY_ATTEMPTS", 3)
GENESIS_NOTIFY_BACKOFF_SECONDS = env_seconds("GENESIS_NOTIFY_BACKOFF_SECONDS", 2)
GENESIS_WEBHOOK_TIMEOUT = env_seconds("GENESIS_WEBHOOK_TIMEOUT", 10)
# How long one query of an agent may run in a worker (profiles, checks and verification read whole tables); a page's
# or an API call's preview keeps the connectors' 30 s. The task's own timeout still bounds the whole run.
GENESIS_AGENT_QUERY_TIMEOUT_SECONDS = env_seconds("GENESIS_AGENT_QUERY_TIMEOUT_SECONDS", 900)
# Optional language-model assistance (agents/llm): off unless both the URL (an OpenAI-compatible API, e.g.
# https://api.example.com/v1 or a local vLLM/Ollama/llama.cpp server) and the model are set. The key is a secret.
GENESIS_LLM_BASE_URL = env_str("GENESIS_LLM_BASE_URL", "")
GENESIS_LLM_MODEL = env_str("GENESIS_LLM_MODEL", "")
GENESIS_LLM_API_KEY = env_str("GENESIS_LLM_API_KEY", "")
GENESIS_LLM_TIMEOUT_SECONDS = env_seconds("GENESIS_LLM_TIMEOUT_SECONDS", 20)
GENESIS_LLM_MAX_CALLS_PER_MISSION = env_int("GENESIS_LLM_MAX_CALLS_PER_MISSION", 200, minimum=0)
GENESIS_LLM_MAX_TOKENS_PER_MISSION = env_int("GENESIS_LLM_MAX_TOKENS_PER_MISSION", 400_000, minimum=0)
GENESIS_LLM_ATTEMPTS = env_int("GENESIS_LLM_ATTEMPTS", 3, minimum=1, maximum=10)
GENESIS_LLM_MAX_RETRY_WAIT_SECONDS = env_seconds("GENESIS_LLM_MAX_RETRY_WAIT_SECONDS", 10)
# Launch suggestions are asked before any mission exists: each person's own budget over the last 24 hours (0: none).
GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY = env_int("GENESIS_LLM_SUGGESTIONS_PER_USER_PER_DAY", 20, minimum=0)
GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY = env_int("GENESIS_LLM_SUGGESTION_TOKENS_PER_USER_PER_DAY", 60_000,
                                                         minimum=0)
# Where the dbt projects generated for missions (and their builds' artifacts) live.
GENESIS_DBT_DIR = Path(env_str("GENESIS_DBT_DIR", str(VAR_DIR / "dbt")))
# Each dbt adapter's template parse (pipeline/dbt/runner.py), written at a worker's start and read by every new
# project's parse: workers on one machine share it.
GENESIS_DBT_TEMPLATE_DIR = Path(env_str("GENESIS_DBT_TEMPLATE_DIR", str(GENESIS_DBT_DIR / "_templates")))
# How many models dbt builds at once on PostgreSQL (dbt's threads), which takes concurrent writers; a SQLite file
# takes one writer, so dbt keeps one thread there.
GENESIS_DBT_POSTGRES_THREADS = env_int("GENESIS_DBT_POSTGRES_THREADS", 2, minimum=1, maximum=32)
# The same on DuckDB: one writing process per file, but within it dbt's threads share one database instance and
# may write different tables at once. DuckDB already spreads each query over every core, so on a small machine one
# node at a time is as fast (2 cores, 1M claims: 12.6-15.8 s with one thread, 14.9-16.3 s with two or four).
# The memory each DuckDB database the platform opens may use (DuckDB's form: "4GB", "512MB", "50%"); beyond it
# DuckDB spills to disk. A worker's peak memory is then bounded by this, not by the size of the data.
GENESIS_DUCKDB_MEMORY_LIMIT = env_str("GENESIS_DUCKDB_MEMORY_LIMIT", "4GB").strip() or "4GB"
GENESIS_DBT_DUCKDB_THREADS = env_int("GENESIS_DBT_DUCKDB_THREADS", 1, minimum=1, maximum=32)

# One handler, on the root logger: Django's own "django" logger is given none (its default console handler
# would print every request warning a second time) and passes its records up. A routine 403/404 is one line
# without a traceback (genesis/logs.py); a 500 keeps its traceback.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"routine_client_errors": {"()": "genesis.logs.RoutineClientErrors"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"handlers": [], "filters": ["routine_client_errors"], "propagate": True},
        "django.db.backends": {"level": "WARNING"},
    },
}
