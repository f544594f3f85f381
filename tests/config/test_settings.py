"""The settings module boots with no environment, and refuses an unsafe production one.

Each case runs Django in a subprocess with a controlled environment, since settings are
read once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k" * 30 + "-production-secret-key-0123456789"
FERNET_KEY = "dGVzdC1vbmx5LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE="
PRODUCTION = {"PLATFORM_ENV": "production", "UPSTREAM_SECRET_KEYS": FERNET_KEY}


def run_manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PLATFORM_VAR_DIR": str(tmp_path / "var")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_embedded_mode_boots_with_no_environment(tmp_path):
    result = run_manage(
        tmp_path,
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.EMAIL_BACKEND, s.SNAPSHOT_DIR, s.DEBUG)",
    )
    assert result.returncode == 0, result.stderr
    engine, eager, email, snapshots, debug = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert eager == "True"
    assert email == "django.core.mail.backends.console.EmailBackend"
    assert snapshots == str(tmp_path / "var" / "snapshots")
    assert debug == "True"


def test_embedded_mode_migrates_sqlite_under_var(tmp_path):
    result = run_manage(tmp_path, "migrate", "--noinput", "-v0")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "platform.sqlite3").exists()


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = run_manage(tmp_path, "check", **PRODUCTION, ALLOWED_HOSTS="platform.example.com")
    assert result.returncode != 0
    assert "needs SECRET_KEY" in result.stderr


def test_production_refuses_a_short_secret_key(tmp_path):
    result = run_manage(tmp_path, "check", **PRODUCTION, ALLOWED_HOSTS="x.example", SECRET_KEY="short")
    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(tmp_path):
    result = run_manage(tmp_path, "check", **PRODUCTION, SECRET_KEY=STRONG_KEY)
    assert result.returncode != 0
    assert "needs ALLOWED_HOSTS" in result.stderr


def test_production_refuses_debug(tmp_path):
    result = run_manage(tmp_path, "check", **PRODUCTION, SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="x.example", DEBUG="1")
    assert result.returncode != 0
    assert "DEBUG must be off" in result.stderr


def test_production_reads_the_secret_key_from_a_file(tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text(STRONG_KEY + "\n")
    result = run_manage(tmp_path, "check", **PRODUCTION, SECRET_KEY_FILE=str(key_file), ALLOWED_HOSTS="x.example")
    assert result.returncode == 0, result.stderr


def test_production_passes_check_deploy_without_warnings(tmp_path):
    result = run_manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **PRODUCTION,
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="platform.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/platform",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_upstream_secret_keys(tmp_path):
    result = run_manage(
        tmp_path, "check", PLATFORM_ENV="production", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="platform.example.com"
    )
    assert result.returncode != 0
    assert "needs UPSTREAM_SECRET_KEYS" in result.stderr


def test_unknown_platform_env_is_refused(tmp_path):
    result = run_manage(tmp_path, "check", PLATFORM_ENV="prod")
    assert result.returncode != 0
    assert "PLATFORM_ENV='prod'" in result.stderr


def test_database_url_selects_postgresql_with_a_pool_only_in_web_processes(tmp_path):
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['ENGINE'], 'pool' in d.get('OPTIONS', {}), d['CONN_MAX_AGE'])"
    )
    url = "postgres://postgres@127.0.0.1:5432/platform"
    plain = run_manage(tmp_path, "shell", "--no-imports", "-c", code, DATABASE_URL=url)
    pooled = run_manage(tmp_path, "shell", "--no-imports", "-c", code, DATABASE_URL=url, DB_POOL="1")
    assert plain.stdout.split() == ["django.db.backends.postgresql", "False", "60"], plain.stderr
    assert pooled.stdout.split() == ["django.db.backends.postgresql", "True", "0"], pooled.stderr


def test_broker_url_turns_off_in_process_tasks(tmp_path):
    code = "from django.conf import settings as s; print(s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL)"
    result = run_manage(tmp_path, "shell", "--no-imports", "-c", code, REDIS_URL="redis://127.0.0.1:6379/14")
    assert result.stdout.split() == ["False", "redis://127.0.0.1:6379/14"], result.stderr


class TestEnvHelpers:
    def test_booleans_accept_the_usual_spellings(self, monkeypatch):
        for raw, expected in [("1", True), ("yes", True), ("On", True), ("0", False), ("false", False), ("", False)]:
            monkeypatch.setenv("X_FLAG", raw)
            assert env_bool("X_FLAG") is expected

    def test_a_misspelt_boolean_fails_loudly(self, monkeypatch):
        monkeypatch.setenv("X_FLAG", "flase")
        with pytest.raises(ImproperlyConfigured, match="X_FLAG='flase' is not a boolean"):
            env_bool("X_FLAG")

    def test_integers_and_lists(self, monkeypatch):
        monkeypatch.setenv("X_INT", "42")
        monkeypatch.setenv("X_LIST", " a, ,b ,c")
        assert env_int("X_INT", 1) == 42
        assert env_list("X_LIST") == ["a", "b", "c"]
        monkeypatch.setenv("X_INT", "4x")
        with pytest.raises(ImproperlyConfigured, match="not an integer"):
            env_int("X_INT", 1)

    def test_secret_from_file_and_unreadable_file(self, monkeypatch, tmp_path):
        (tmp_path / "s").write_text("from-file\n")
        monkeypatch.delenv("X_SECRET", raising=False)
        monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "s"))
        assert env_str("X_SECRET") == "from-file"
        monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
        with pytest.raises(ImproperlyConfigured, match="cannot be read"):
            env_str("X_SECRET")
