import pytest
import yaml
from pydantic import BaseModel

from fraudgraph.config import ConfigError, Settings, env_overrides, load_settings


def test_defaults_load():
    s = load_settings(environ={})
    assert s.graph.uri.startswith("sqlite:///")
    assert s.gremlin_server.port == 8182
    assert s.graph.neighbourhood_fanout_cap > 0


def test_environment_overrides_nested_keys():
    s = load_settings(environ={"FRAUDGRAPH_GRAPH__GREMLIN__POOL_SIZE": "7",
                               "FRAUDGRAPH_GRAPH__URI": "ws://127.0.0.1:9999/gremlin",
                               "FRAUDGRAPH_PII_KEY": "not-an-override"})
    assert s.graph.gremlin.pool_size == 7
    assert s.graph.uri == "ws://127.0.0.1:9999/gremlin"


def test_env_values_parse_as_yaml():
    assert env_overrides({"FRAUDGRAPH_API__TOKENS": '{"t1": ["read"]}'}) == {"api": {"tokens": {"t1": ["read"]}}}


def test_unknown_key_fails_naming_the_path(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("graph:\n  batch_sise: 10\n")
    with pytest.raises(ConfigError, match=r"graph\.batch_sise: unknown key"):
        load_settings(cfg, environ={})
    with pytest.raises(ConfigError, match=r"nope: unknown key"):
        load_settings(environ={"FRAUDGRAPH_NOPE__X": "1"})


def test_wrong_type_fails_naming_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"graph\.batch_size: .*integer"):
        load_settings(environ={"FRAUDGRAPH_GRAPH__BATCH_SIZE": "lots"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("gremlin_server:\n  port: 70000\n")
    with pytest.raises(ConfigError, match=r"gremlin_server\.port"):
        load_settings(cfg, environ={})


def test_config_file_merges_over_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("graph:\n  gremlin:\n    batch_size: 42\n")
    s = load_settings(cfg, environ={})
    assert s.graph.gremlin.batch_size == 42
    assert s.graph.gremlin.pool_size == load_settings(environ={}).graph.gremlin.pool_size


def _sections(model, path="settings"):
    yield path, model
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _sections(kind, f"{path}.{name}")


def test_every_default_lives_in_the_yaml_only():
    """config.py states types and bounds; a default written there too would be a second home."""
    with_default = [f"{path}.{name}" for path, model in _sections(Settings)
                    for name, field in model.model_fields.items() if not field.is_required()]
    assert with_default == []


def test_a_key_missing_from_the_defaults_file_fails_naming_it(tmp_path, monkeypatch):
    import fraudgraph.config as config

    data = yaml.safe_load(config.DEFAULT_CONFIG.read_text())
    del data["training"]["target_precision"]
    trimmed = tmp_path / "default.yaml"
    trimmed.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(config, "DEFAULT_CONFIG", trimmed)
    with pytest.raises(ConfigError, match=r"training\.target_precision: .*required"):
        load_settings(environ={})


def test_no_defaults_file_is_one_clear_error(tmp_path, monkeypatch):
    import fraudgraph.config as config

    monkeypatch.setattr(config, "DEFAULT_CONFIG", tmp_path / "default.yaml")
    with pytest.raises(ConfigError, match=r"default\.yaml: no such file .*FRAUDGRAPH_CONF_DIR"):
        load_settings(environ={})
