"""Settings: environment, TOML file, validation errors that name the field."""

from __future__ import annotations

import pytest

from loraledger.config import find_project_root, load_settings
from loraledger.errors import ConfigError


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("LORALEDGER_RPC_URL", "LORALEDGER_DATA_DIR", "LORALEDGER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.rpc_url == "http://127.0.0.1:8545"
    assert (settings.contributors_bps, settings.developer_bps, settings.operator_bps) == (7000, 2000, 1000)
    assert settings.epochs_dir.as_posix().endswith(".loraledger/epochs")
    assert settings.ledger_url.startswith("sqlite:///") and settings.ledger_url.endswith("ledger.sqlite")


def test_env_then_toml_then_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loraledger.toml").write_text('rpc_url = "http://10.1.2.3:8545"\nconfirmations = 3\n')
    monkeypatch.delenv("LORALEDGER_CONFIG", raising=False)
    monkeypatch.delenv("LORALEDGER_RPC_URL", raising=False)
    settings = load_settings()
    assert settings.rpc_url == "http://10.1.2.3:8545" and settings.confirmations == 3
    monkeypatch.setenv("LORALEDGER_RPC_URL", "http://127.0.0.1:9999")
    assert load_settings().rpc_url == "http://127.0.0.1:9999"
    assert load_settings(rpc_url="https://rpc.example").rpc_url == "https://rpc.example"


def test_config_file_from_env(monkeypatch, tmp_path):
    path = tmp_path / "node.toml"
    path.write_text("chain_id = 8453\n")
    monkeypatch.setenv("LORALEDGER_CONFIG", str(path))
    assert load_settings().chain_id == 8453


def test_secrets_are_not_in_repr(monkeypatch):
    monkeypatch.setenv("LORALEDGER_OPERATOR_KEY", "0x" + "ab" * 32)
    settings = load_settings()
    assert "ab" * 32 not in repr(settings) and "ab" * 32 not in str(settings.model_dump())
    assert settings.operator_key.get_secret_value() == "0x" + "ab" * 32


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"rpc_url": "localhost:8545"}, "rpc_url"),
        ({"contributors_bps": 9000}, "fee split must sum to 10000"),
        ({"confirmations": 0}, "confirmations"),
        ({"operator_bps": -1}, "operator_bps"),
    ],
)
def test_invalid_settings_name_the_field(overrides, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    assert needle in str(info.value)


def test_project_root_is_found_from_anywhere_in_the_checkout(project_root):
    assert find_project_root(project_root / "contracts" / "src") == project_root
    assert (project_root / "foundry.toml").is_file()


def test_a_config_file_with_a_misspelt_key_bad_toml_or_missing_is_refused_by_name(monkeypatch, tmp_path):
    path = tmp_path / "node.toml"
    monkeypatch.setenv("LORALEDGER_CONFIG", str(path))
    with pytest.raises(ConfigError, match="node.toml.* does not exist"):
        load_settings()
    path.write_text("max_lora = 4\nconfirmations = 2\n")
    with pytest.raises(ConfigError, match="unknown keys: 'max_lora' \\(did you mean 'max_loras'\\?\\)"):
        load_settings()
    path.write_text("confirmations = [\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings()


def test_the_documented_example_config_lists_every_key_with_its_default(project_root, monkeypatch, tmp_path):
    import tomllib

    from loraledger.config import Settings, defaults_toml

    text = defaults_toml()
    assert (project_root / "docs" / "loraledger.example.toml").read_text() == text  # regenerate: config defaults
    for name in Settings.model_fields:
        assert f"\n{name} =" in text or f"\n# {name} =" in text, name
    path = tmp_path / "all.toml"
    path.write_text(text)
    monkeypatch.setenv("LORALEDGER_CONFIG", str(path))
    for var in ("LORALEDGER_RPC_URL", "LORALEDGER_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert load_settings() == Settings.model_validate({})  # the file, read back, is the defaults
    assert tomllib.loads(text)["payer_deposits"] is True
