"""Configuration: the owner's environment variable names, bad values, profiles and secrets.toml."""
from __future__ import annotations

import warnings

import pytest

import config.settings as settings_module
from config.settings import load_settings, raw_values
from config.threading_config import POOL_NAMES, load_threading_config


@pytest.fixture(autouse=True)
def no_project_secrets(tmp_path, monkeypatch):
    """Never read a developer's real .streamlit/secrets.toml: point the project root at an empty folder."""
    monkeypatch.setattr(settings_module, "PROJECT_ROOT", tmp_path / "project")


def write_secrets(tmp_path, text: str):
    path = tmp_path / "secrets.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_quietly(env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean environment must not warn
        return load_threading_config(env)


# ---------------------------------------------------------------------------------- env names


def test_every_pool_exists_with_sane_defaults():
    config = load_quietly({})
    assert set(config.pools) == set(POOL_NAMES)
    assert config.pools["cpu"].backend == "process" and config.pools["untrusted"].backend == "process"
    assert all(config.pools[name].backend == "thread" for name in POOL_NAMES if name not in ("cpu", "untrusted"))
    assert config.pools["untrusted"].memory_limit_mb == config.max_memory_per_task_mb
    assert all(pool.workers >= 1 for pool in config.pools.values())
    assert config.batch_size == 100 and config.enable_task_monitoring is True
    assert config.cpu_count >= 1 and config.min_free_memory_mb >= 256


@pytest.mark.parametrize("variable, pool", [
    ("MAX_THREAD_WORKERS", "default"),
    ("UNTRUSTED_PROCESS_WORKERS", "untrusted"),
    ("FILE_UPLOAD_WORKERS", "upload"),
    ("DATABASE_WORKERS", "database"),
    ("ANALYTICS_WORKERS", "analytics"),
    ("CPU_PROCESS_WORKERS", "cpu"),
])
def test_pool_sizes_come_from_the_owners_variable_names(variable, pool):
    config = load_quietly({variable: "7"})
    assert config.pools[pool].workers == 7
    others = load_quietly({})
    assert all(config.pools[p].workers == others.pools[p].workers for p in POOL_NAMES if p != pool)


def test_timeouts_per_pool():
    config = load_quietly({"TASK_TIMEOUT": "30", "UPLOAD_TASK_TIMEOUT": "45", "DB_TASK_TIMEOUT": "12"})
    assert config.pools["default"].timeout == 30
    assert config.pools["analytics"].timeout == 30
    assert config.pools["cpu"].timeout == 30
    assert config.pools["untrusted"].timeout == 30
    assert config.pools["upload"].timeout == 45
    assert config.pools["database"].timeout == 12


def test_general_settings_from_env():
    config = load_quietly({
        "BATCH_SIZE": "250", "ENABLE_TASK_MONITORING": "false", "ENABLE_PERFORMANCE_LOGGING": "yes",
        "DEBUG_THREADING": "1", "MAX_MEMORY_PER_TASK_MB": "1024", "MIN_FREE_MEMORY_MB": "0",
        "MAX_WORKERS_PER_USER": "3", "MAX_TOTAL_WORKERS": "40",
    })
    assert config.batch_size == 250
    assert config.enable_task_monitoring is False
    assert config.enable_performance_logging is True
    assert config.debug_threading is True
    assert config.max_memory_per_task_mb == 1024
    assert config.min_free_memory_mb == 0
    assert config.max_workers_per_user == 3
    assert config.max_total_workers == 40


@pytest.mark.parametrize("text, expected", [("1", True), ("true", True), ("YES", True), (" on ", True),
                                            ("0", False), ("False", False), ("no", False), ("off", False)])
def test_boolean_spellings(text, expected):
    assert load_quietly({"ENABLE_TASK_MONITORING": text}).enable_task_monitoring is expected


def test_whitespace_around_numbers_is_accepted():
    assert load_quietly({"BATCH_SIZE": " 64 "}).batch_size == 64


# ---------------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("variable, value, read", [
    ("MAX_THREAD_WORKERS", "lots", lambda c: c.pools["default"].workers),
    ("MAX_THREAD_WORKERS", "0", lambda c: c.pools["default"].workers),
    ("MAX_THREAD_WORKERS", "100000", lambda c: c.pools["default"].workers),
    ("DATABASE_WORKERS", "2.5", lambda c: c.pools["database"].workers),
    ("TASK_TIMEOUT", "-5", lambda c: c.pools["default"].timeout),
    ("BATCH_SIZE", "", lambda c: c.batch_size),
    ("BATCH_SIZE", "ten", lambda c: c.batch_size),
    ("ENABLE_TASK_MONITORING", "maybe", lambda c: c.enable_task_monitoring),
    ("MAX_WORKERS_PER_USER", "none", lambda c: c.max_workers_per_user),
])
def test_bad_value_warns_with_its_name_and_keeps_the_default(variable, value, read):
    default = read(load_quietly({}))
    if value == "":
        # An empty variable counts as unset: no warning, the default holds.
        assert read(load_quietly({variable: value})) == default
        return
    with pytest.warns(UserWarning, match=variable):
        config = load_threading_config({variable: value})
    assert read(config) == default


def test_one_bad_value_does_not_spoil_the_others():
    with pytest.warns(UserWarning, match="DATABASE_WORKERS"):
        config = load_threading_config({"DATABASE_WORKERS": "x", "ANALYTICS_WORKERS": "5"})
    assert config.pools["analytics"].workers == 5


def test_bad_settings_value_warns_with_its_name(tmp_path):
    with pytest.warns(UserWarning, match="GEOCODE_QPS"):
        settings = load_settings({"GEOCODE_QPS": "fast"}, secrets_path=tmp_path / "none.toml")
    assert settings.geocode_qps == 10.0


# ---------------------------------------------------------------------------------- profiles, secrets


def test_default_profile_is_development(tmp_path):
    settings = load_settings({}, secrets_path=tmp_path / "none.toml")
    assert settings.profile == "development"
    assert load_quietly({}).enable_performance_logging is True  # the development profile's default


def test_cloud_profile_defaults():
    values = raw_values({"SPINDLE_PROFILE": "cloud"})
    assert values["SPINDLE_PROFILE"] == "cloud"
    settings = load_settings({"SPINDLE_PROFILE": "cloud"})
    assert (settings.profile, settings.max_upload_mb, settings.max_files_per_upload) == ("cloud", 50, 100)
    assert settings.max_workers_per_user == 2
    assert load_quietly({"SPINDLE_PROFILE": "cloud"}).max_workers_per_user == 2


def test_production_profile_defaults():
    config = load_quietly({"SPINDLE_PROFILE": "Production"})
    assert config.enable_performance_logging is False
    assert load_settings({"SPINDLE_PROFILE": "production"}).max_files_per_upload == 500


def test_unknown_profile_warns_and_uses_development_defaults():
    with pytest.warns(UserWarning, match="SPINDLE_PROFILE"):
        config = load_threading_config({"SPINDLE_PROFILE": "staging"})
    assert config.enable_performance_logging is True  # development's default


def test_profile_name_is_the_validated_one():
    with pytest.warns(UserWarning, match="SPINDLE_PROFILE"):
        assert load_settings({"SPINDLE_PROFILE": "staging"}).profile == "development"
    assert load_settings({"SPINDLE_PROFILE": "Production"}).profile == "production"


def test_env_beats_profile():
    config = load_quietly({"SPINDLE_PROFILE": "cloud", "MAX_WORKERS_PER_USER": "6"})
    assert config.max_workers_per_user == 6


def test_secrets_beat_profile_and_env_beats_secrets(tmp_path):
    secrets = write_secrets(tmp_path, 'MAX_UPLOAD_MB = 75\nMAX_FILES_PER_UPLOAD = 300\nGEOCODE_QPS = "4.5"\n')
    settings = load_settings({"SPINDLE_PROFILE": "cloud", "MAX_FILES_PER_UPLOAD": "20"}, secrets_path=secrets)
    assert settings.max_upload_mb == 75  # secrets over the cloud profile's 50
    assert settings.max_files_per_upload == 20  # env over secrets
    assert settings.geocode_qps == 4.5


def test_nested_secrets_tables_are_flattened(tmp_path):
    secrets = write_secrets(tmp_path, '[supabase]\nurl = "http://localhost:9999"\nkey = "k"\n\n'
                                      '[google_maps]\napi_key = "g"\n')
    settings = load_settings({}, secrets_path=secrets)
    assert (settings.supabase_url, settings.supabase_key, settings.google_maps_api_key) == (
        "http://localhost:9999", "k", "g")


def test_profile_can_come_from_secrets_and_env_wins(tmp_path):
    secrets = write_secrets(tmp_path, 'SPINDLE_PROFILE = "cloud"\n')
    assert load_settings({}, secrets_path=secrets).profile == "cloud"
    assert load_settings({"SPINDLE_PROFILE": "production"}, secrets_path=secrets).profile == "production"


def test_empty_env_value_does_not_hide_secrets(tmp_path):
    secrets = write_secrets(tmp_path, 'DATABASE_URL = "postgresql://db/spindle"\n')
    settings = load_settings({"DATABASE_URL": ""}, secrets_path=secrets)
    assert settings.database_url == "postgresql://db/spindle"


def test_broken_secrets_file_warns_and_is_ignored(tmp_path):
    secrets = write_secrets(tmp_path, "this is = = not toml [")
    with pytest.warns(UserWarning, match="secrets"):
        settings = load_settings({"MAX_UPLOAD_MB": "9"}, secrets_path=secrets)
    assert settings.max_upload_mb == 9


def test_threading_config_reads_project_secrets(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / ".streamlit").mkdir(parents=True)
    (root / ".streamlit" / "secrets.toml").write_text('MAX_THREAD_WORKERS = 9\nBATCH_SIZE = 20\n', encoding="utf-8")
    monkeypatch.setattr(settings_module, "PROJECT_ROOT", root)
    config = load_quietly({"BATCH_SIZE": "30"})
    assert config.pools["default"].workers == 9  # from secrets.toml
    assert config.batch_size == 30  # env over secrets


def test_environment_is_read_when_no_mapping_is_given(monkeypatch):
    monkeypatch.setenv("ANALYTICS_WORKERS", "11")
    monkeypatch.setenv("SPINDLE_PROFILE", "development")
    assert load_threading_config().pools["analytics"].workers == 11


def test_settings_defaults_work_offline(tmp_path):
    settings = load_settings({}, secrets_path=tmp_path / "none.toml")
    assert settings.database_url == "" and settings.sqlite_path.name == "spindle.sqlite3"
    assert settings.default_region == "US"
    assert load_settings({"DEFAULT_PHONE_REGION": "gb"}, secrets_path=tmp_path / "none.toml").default_region == "GB"
    assert load_settings({"SPINDLE_DATA_DIR": str(tmp_path)}).data_dir == tmp_path
