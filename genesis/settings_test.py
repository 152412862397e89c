"""Settings for the test suite: fast hashing, local mail, a throw-away media root."""

import os
import tempfile
from pathlib import Path

from genesis.settings import *  # noqa: F403
from genesis.settings import Q_CLUSTER

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="genesis-test-media-"))
# Tests move GENESIS_DBT_DIR into their own directories; the dbt templates stay, made once (tests/conftest.py).
GENESIS_DBT_TEMPLATE_DIR = Path(tempfile.mkdtemp(prefix="genesis-test-dbt-templates-"))
GENESIS_MAX_UPLOAD_BYTES = 64 * 1024
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
GENESIS_RETRY_BACKOFF_SECONDS = 0
GENESIS_NOTIFY_BACKOFF_SECONDS = 0
# Factories write rows without history entries, which the API's list cache keys on: off, except in its own tests.
GENESIS_API_LIST_CACHE_SECONDS = 0
# Likewise the cockpit's panel cache (keyed on the mission's history version): its own tests turn it on.
GENESIS_COCKPIT_CACHE_SECONDS = 0

# Several checkouts (or helpers) may share one PostgreSQL server: each can name its own test database.
if os.environ.get("GENESIS_TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["GENESIS_TEST_DB_NAME"]}  # noqa: F405

# The sign-in and API limits count in local memory (tests/conftest.py empties every cache around each test).
CACHES = {**CACHES, "limits": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",  # noqa: F405
                               "LOCATION": "genesis-limits"}}
