import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args, env_extra):
    # Only what production would have: no test-process leftovers (e.g. DJANGO_ALLOW_ASYNC_UNSAFE, which the
    # browser tests set for their live server, and which check --deploy rightly refuses).
    dropped = {"DJANGO_SETTINGS_MODULE", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = _manage("check", "--deploy", "--fail-level", "DEBUG", env_extra={
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "genesis.example.com",
        "GENESIS_VAR_DIR": str(tmp_path),
    })
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _manage("check", env_extra={"DEBUG": "0", "SECRET_KEY": "", "GENESIS_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_malformed_boolean_is_named(tmp_path):
    result = _manage("check", env_extra={"DEBUG": "maybe", "GENESIS_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def _limits_cache(tmp_path, **env):
    result = _manage("shell", "-c", "from django.conf import settings; c = settings.CACHES['limits']; "
                     "print(c['BACKEND'], c['LOCATION'])", env_extra={
                         "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "genesis.example.com",
                         "GENESIS_VAR_DIR": str(tmp_path), **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split()


def test_the_sign_in_limits_are_counted_in_a_cache_every_web_worker_shares(tmp_path):
    # Not local memory, which each gunicorn worker would hold on its own: files under var/, or Redis when it is set.
    assert _limits_cache(tmp_path, REDIS_URL="") == [
        "django.core.cache.backends.filebased.FileBasedCache", str(tmp_path / "cache" / "limits")]
    assert _limits_cache(tmp_path, REDIS_URL="redis://127.0.0.1:6379/0") == [
        "django.core.cache.backends.redis.RedisCache", "redis://127.0.0.1:6379/0"]


def test_a_malformed_rate_is_named(tmp_path):
    result = _manage("check", env_extra={"LOGIN_FAILURE_RATE_USERNAME": "10 per hour",
                                         "GENESIS_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "LOGIN_FAILURE_RATE_USERNAME must be a rate such as 10/min or 50/hour, not '10 per hour'" in result.stderr


def test_a_malformed_or_negative_duration_is_named(tmp_path):
    for raw in ("half a second", "-1", "nan"):
        result = _manage("check", env_extra={"GENESIS_HANDOFF_SECONDS": raw, "GENESIS_VAR_DIR": str(tmp_path)})
        assert result.returncode != 0
        assert f"GENESIS_HANDOFF_SECONDS must be a number of seconds, 0 or more, not {raw!r}" in result.stderr
    result = _manage("shell", "-c", "from django.conf import settings; print(settings.GENESIS_HANDOFF_SECONDS)",
                     env_extra={"GENESIS_HANDOFF_SECONDS": "0.25", "GENESIS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0.25"


def test_a_document_limit_that_would_defeat_itself_is_named(tmp_path):
    # Nesting deeper than 200 levels would meet Python's recursion limit again; none of the limits can be negative.
    for name, raw, wanted in [("GENESIS_YAML_MAX_DEPTH", "5000", "from 1 to 200"),
                              ("GENESIS_JSON_MAX_DEPTH", "0", "from 1 to 200"),
                              ("GENESIS_YAML_MAX_ALIASES", "-1", "from 0 up"),
                              ("GENESIS_YAML_MAX_NODES", "lots", "from 1 up")]:
        result = _manage("check", env_extra={name: raw, "GENESIS_VAR_DIR": str(tmp_path)})
        assert result.returncode != 0
        assert f"{name} must be a whole number {wanted}, not {raw!r}" in result.stderr
    result = _manage("shell", "-c", "from django.conf import settings; print(settings.GENESIS_YAML_MAX_DEPTH)",
                     env_extra={"GENESIS_YAML_MAX_DEPTH": "200", "GENESIS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "200"



def test_a_sign_in_delay_cap_below_the_first_delay_is_named(tmp_path):
    result = _manage("check", env_extra={"LOGIN_DELAY_SECONDS": "10", "LOGIN_DELAY_MAX_SECONDS": "5",
                                         "GENESIS_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "LOGIN_DELAY_MAX_SECONDS (5) must be at least LOGIN_DELAY_SECONDS (10)" in result.stderr
