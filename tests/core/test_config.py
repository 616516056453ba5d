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
    })
    assert app.config["NONGDAI_ENV"] == "production"
