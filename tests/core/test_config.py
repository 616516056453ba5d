import pytest

from app import create_app
from core import config


def test_environment_variables_are_read_with_the_prefix() -> None:
    settings = config.load({"NONGDAI_PORT": "8080", "NONGDAI_SEED_DEMO": "no",
                            "NONGDAI_DATABASE_URL": "postgresql+psycopg://db/nongdai"})
    assert settings["NONGDAI_PORT"] == 8080
    assert settings["NONGDAI_SEED_DEMO"] is False
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db/nongdai"


def test_a_malformed_integer_is_a_configuration_error() -> None:
    with pytest.raises(config.ConfigError, match="NONGDAI_PORT"):
        config.load({"NONGDAI_PORT": "eighty"})


def test_embedded_default_is_sqlite_under_instance() -> None:
    settings = config.load({})
    assert settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert settings["SQLALCHEMY_DATABASE_URI"].endswith("instance/nongdai.sqlite3")


@pytest.mark.parametrize("overrides", [
    {},
    {"SECRET_KEY": "x" * 40},
    {"NONGDAI_DATA_KEY": "c2VjcmV0LWRhdGEta2V5LW9mLXRoaXJ0eS10d28tYnl0ZXM="},
])
def test_production_refuses_the_demo_keys(overrides: dict[str, str]) -> None:
    with pytest.raises(config.ConfigError, match="demo key"):
        create_app({"NONGDAI_ENV": "production", **overrides})


def test_production_refuses_the_demo_sms_sender() -> None:
    with pytest.raises(config.ConfigError, match="SMS_SENDER"):
        create_app({"NONGDAI_ENV": "production", "SECRET_KEY": "k" * 40,
                    "NONGDAI_DATA_KEY": "c2VjcmV0LWRhdGEta2V5LW9mLXRoaXJ0eS10d28tYnl0ZXM="})


def test_production_starts_with_real_keys(tmp_path) -> None:
    app = create_app({
        "NONGDAI_ENV": "production",
        "SECRET_KEY": "a-real-secret-key-of-enough-length-0123456789",
        "NONGDAI_DATA_KEY": "c2VjcmV0LWRhdGEta2V5LW9mLXRoaXJ0eS10d28tYnl0ZXM=",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        "NONGDAI_SMS_SENDER": "tests.core.test_outbox:Gateway",
        "NONGDAI_LAND_REGISTRY_URL": "https://land.registry.example/api",
        "NONGDAI_INSURANCE_REGISTRY_URL": "https://insurance.registry.example/api",
        "NONGDAI_PAYMENT_CHANNEL_SECRETS": '{"abc-pay": "a-real-channel-secret"}',
    })
    assert app.config["NONGDAI_ENV"] == "production"


def test_production_refuses_the_demo_payment_channel_secret(tmp_path) -> None:
    with pytest.raises(config.ConfigError, match="NONGDAI_PAYMENT_CHANNEL_SECRETS"):
        create_app({
            "NONGDAI_ENV": "production",
            "SECRET_KEY": "a-real-secret-key-of-enough-length-0123456789",
            "NONGDAI_DATA_KEY": "c2VjcmV0LWRhdGEta2V5LW9mLXRoaXJ0eS10d28tYnl0ZXM=",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
            "NONGDAI_SMS_SENDER": "tests.core.test_outbox:Gateway",
            "NONGDAI_LAND_REGISTRY_URL": "https://land.registry.example/api",
            "NONGDAI_INSURANCE_REGISTRY_URL": "https://insurance.registry.example/api",
        })


def test_production_refuses_to_run_without_the_registries(tmp_path) -> None:
    with pytest.raises(config.ConfigError, match="NONGDAI_LAND_REGISTRY_URL"):
        create_app({
            "NONGDAI_ENV": "production",
            "SECRET_KEY": "a-real-secret-key-of-enough-length-0123456789",
            "NONGDAI_DATA_KEY": "c2VjcmV0LWRhdGEta2V5LW9mLXRoaXJ0eS10d28tYnl0ZXM=",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
            "NONGDAI_SMS_SENDER": "tests.core.test_outbox:Gateway",
            "NONGDAI_INSURANCE_REGISTRY_URL": "https://insurance.registry.example/api",
        })


@pytest.mark.parametrize("environment", ["prod", "Production", "staging", "dev"])
def test_an_unknown_environment_refuses_to_start(environment: str) -> None:
    with pytest.raises(config.ConfigError, match="NONGDAI_ENV"):
        config.load({"NONGDAI_ENV": environment})
    with pytest.raises(config.ConfigError, match="NONGDAI_ENV"):
        create_app({"NONGDAI_ENV": environment})


@pytest.mark.parametrize("environment", ["development", "test"])
def test_known_environments_start(environment: str) -> None:
    assert config.load({"NONGDAI_ENV": environment})["NONGDAI_ENV"] == environment
    assert config.load({"NONGDAI_ENV": ""})["NONGDAI_ENV"] == "development"


def test_business_timezone_defaults_to_shanghai_and_is_checked() -> None:
    assert config.load({})["NONGDAI_BUSINESS_TIMEZONE"] == "Asia/Shanghai"
    assert config.load({"NONGDAI_BUSINESS_TIMEZONE": "UTC"})["NONGDAI_BUSINESS_TIMEZONE"] == "UTC"
    for unknown in ("Asia/Beijing", "CST+8", "../etc/passwd"):
        with pytest.raises(config.ConfigError, match="NONGDAI_BUSINESS_TIMEZONE"):
            config.load({"NONGDAI_BUSINESS_TIMEZONE": unknown})


def test_refresh_grace_is_read_from_the_environment() -> None:
    assert config.load({})["NONGDAI_REFRESH_GRACE_SECONDS"] == 30
    assert config.load({"NONGDAI_REFRESH_GRACE_SECONDS": "5"})["NONGDAI_REFRESH_GRACE_SECONDS"] == 5
