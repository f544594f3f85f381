"""WorkerSettings.from_env(): defaults per mode, and loud errors for bad values."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_sync.worker.settings import DEVELOPMENT_SECRET_KEY, WorkerSettings, WorkerSettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_defaults_poll_the_var_folder_five_times_a_second():
    settings = WorkerSettings.from_env({})
    assert (settings.host, settings.port, settings.redis_url) == ("127.0.0.1", 8080, "")
    assert settings.embedded
    assert settings.snapshot_dir == Path("var/snapshots").absolute()
    assert settings.workers_dir == Path("var/workers").absolute()
    assert settings.poll_interval_s == 0.2
    assert settings.heartbeat_interval_s == 2.0
    assert settings.worker_id.endswith(f"-{os.getpid()}")


def test_with_redis_the_poll_is_a_two_second_safety_net():
    settings = WorkerSettings.from_env({"REDIS_URL": "redis://cache:6379/0"})
    assert not settings.embedded
    assert settings.poll_interval_s == 2.0


def test_every_variable_is_read(tmp_path):
    settings = WorkerSettings.from_env(
        {
            "GATEWAY_HOST": "10.0.0.7",
            "GATEWAY_PORT": "9000",
            "PLATFORM_VAR_DIR": str(tmp_path),
            "WORKER_ID": "gw-1.eu_west",
            "SNAPSHOT_POLL_INTERVAL_S": "0.5",
            "HEARTBEAT_INTERVAL_S": "1",
            "KEY_HASH_PEPPER": "pepper",
            "UPSTREAM_SECRET_KEYS": "new, old,",
        }
    )
    assert (settings.host, settings.port, settings.worker_id) == ("10.0.0.7", 9000, "gw-1.eu_west")
    assert settings.snapshot_dir == tmp_path / "snapshots"
    assert (settings.poll_interval_s, settings.heartbeat_interval_s) == (0.5, 1.0)
    assert settings.key_hash_pepper == "pepper"
    assert settings.upstream_secret_keys == ("new", "old")


def test_snapshot_dir_wins_over_the_var_dir(tmp_path):
    settings = WorkerSettings.from_env({"PLATFORM_VAR_DIR": "/elsewhere", "SNAPSHOT_DIR": str(tmp_path / "snaps")})
    assert settings.snapshot_dir == tmp_path / "snaps"
    assert settings.workers_dir == tmp_path / "workers"


def test_secrets_may_come_from_files_and_never_show_in_the_repr(tmp_path):
    (tmp_path / "pepper").write_text("from-a-file\n")
    settings = WorkerSettings.from_env({"KEY_HASH_PEPPER_FILE": str(tmp_path / "pepper"), "UPSTREAM_SECRET_KEYS": "k"})
    assert settings.key_hash_pepper == "from-a-file"
    assert "from-a-file" not in repr(settings)
    assert "'k'" not in repr(settings)


def test_the_pepper_is_derived_from_the_secret_key_as_the_portal_derives_it():
    assert WorkerSettings.from_env({"SECRET_KEY": "s3cret"}).key_hash_pepper == "pepper:s3cret"
    assert WorkerSettings.from_env({}).key_hash_pepper == f"pepper:{DEVELOPMENT_SECRET_KEY}"
    # The portal's development key, which the worker must mirror (it cannot import settings).
    assert f'"{DEVELOPMENT_SECRET_KEY}"' in (ROOT / "config" / "settings.py").read_text()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GATEWAY_PORT": "http"}, "GATEWAY_PORT='http' is not a TCP port"),
        ({"GATEWAY_PORT": "70000"}, "GATEWAY_PORT='70000' is not a TCP port"),
        ({"SNAPSHOT_POLL_INTERVAL_S": "fast"}, "SNAPSHOT_POLL_INTERVAL_S='fast' is not a number of seconds"),
        ({"SNAPSHOT_POLL_INTERVAL_S": "0"}, "between 0.01 and 3600"),
        ({"HEARTBEAT_INTERVAL_S": "nan"}, "HEARTBEAT_INTERVAL_S='nan'"),
        ({"HEARTBEAT_INTERVAL_S": "2000ms"}, "is not a number of seconds"),
        ({"WORKER_ID": "../etc"}, "WORKER_ID='../etc'"),
        ({"REDIS_URL": "localhost:6379"}, "is not a redis://"),
        ({"PLATFORM_ENV": "staging"}, "PLATFORM_ENV='staging'"),
        ({"PLATFORM_ENV": "production"}, "needs KEY_HASH_PEPPER"),
        ({"KEY_HASH_PEPPER_FILE": "/nonexistent/pepper"}, "KEY_HASH_PEPPER_FILE='/nonexistent/pepper' cannot be read"),
    ],
)
def test_a_bad_value_is_refused_with_the_variable_named(environ, message):
    with pytest.raises(WorkerSettingsError, match=re.escape(message)):
        WorkerSettings.from_env(environ)


def test_the_settings_are_frozen():
    settings = WorkerSettings.from_env({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_the_worker_refuses_to_start_on_a_bad_value_and_names_it():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {"GATEWAY_PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway_sync.worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "GATEWAY_PORT='eighty' is not a TCP port" in result.stderr
