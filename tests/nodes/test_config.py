"""config/edit on real YAML, JSON, INI and .env files; env/set is covered in test_shell.py."""

from __future__ import annotations

import configparser
import json

import yaml
from nodetest import NodeRunner


async def test_yaml_set_get_delete(run_node: NodeRunner) -> None:
    (run_node.workspace / "app.yml").write_text("server:\n  port: 80\n  hosts: [a, b]\nold: 1\n")
    step = await run_node("config/edit@v1", {
        "file": "app.yml", "set": {"server.port": 8080, "server.hosts.1": "c", "db.url": "postgres://x"},
        "delete": ["old"], "get": ["server.port", "server.hosts"],
    })
    assert step.result.succeeded, step.result.error
    assert yaml.safe_load((run_node.workspace / "app.yml").read_text()) == {
        "server": {"port": 8080, "hosts": ["a", "c"]}, "db": {"url": "postgres://x"}}
    out = step.result.outputs
    assert out["server.port"] == "8080" and json.loads(out["server.hosts"]) == ["a", "c"] and out["changed"] == "true"


async def test_json_unchanged_file_is_not_rewritten(run_node: NodeRunner) -> None:
    path = run_node.workspace / "package.json"
    path.write_text('{"name": "x", "version": "1.0.0"}')
    step = await run_node("config/edit", {"file": "package.json", "set": {"version": "1.0.0"}, "get": ["version"]})
    assert step.result.outputs["changed"] == "false" and step.result.outputs["version"] == "1.0.0"
    assert path.read_text() == '{"name": "x", "version": "1.0.0"}'
    step = await run_node("config/edit", {"file": "package.json", "set": {"version": "1.1.0"}})
    assert json.loads(path.read_text())["version"] == "1.1.0"


async def test_ini_sections(run_node: NodeRunner) -> None:
    (run_node.workspace / "my.ini").write_text("[mysqld]\nmax_connections = 100\n")
    step = await run_node("config/edit", {"file": "my.ini", "set": {"mysqld.max_connections": 500, "client.Port": "3306"},
                                          "get": ["mysqld.max_connections"]})
    assert step.result.succeeded, step.result.error
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(run_node.workspace / "my.ini")
    assert parser["mysqld"]["max_connections"] == "500" and parser["client"]["Port"] == "3306"
    bad = await run_node("config/edit", {"file": "my.ini", "get": ["nosection"]})
    assert not bad.result.retryable and "section.key" in (bad.result.error or "")


async def test_dotenv_keeps_comments_and_order(run_node: NodeRunner) -> None:
    path = run_node.workspace / ".env"
    path.write_text("# database\nDB_HOST=localhost\nexport DB_PORT=5432\nNAME='quoted value'\n")
    step = await run_node("config/edit", {"file": ".env", "set": {"DB_HOST": "db.internal", "GREETING": "hello world"},
                                          "delete": ["DB_PORT"], "get": ["NAME", "DB_HOST"]})
    assert step.result.succeeded, step.result.error
    assert path.read_text() == '# database\nDB_HOST=db.internal\nNAME=\'quoted value\'\nGREETING="hello world"\n'
    assert step.result.outputs["NAME"] == "quoted value" and step.result.outputs["DB_HOST"] == "db.internal"


async def test_create_missing_key_and_unknown_format(run_node: NodeRunner) -> None:
    missing = await run_node("config/edit", {"file": "new.yml", "set": {"a": 1}})
    assert not missing.result.retryable and "create: true" in (missing.result.error or "")
    created = await run_node("config/edit", {"file": "new.yml", "set": {"a.b": 1}, "create": True})
    assert created.result.succeeded and yaml.safe_load((run_node.workspace / "new.yml").read_text()) == {"a": {"b": 1}}
    key = await run_node("config/edit", {"file": "new.yml", "get": ["a.c"]})
    assert not key.result.retryable and "key 'a.c' not found" in (key.result.error or "")
    (run_node.workspace / "conf.txt").write_text("x")
    unknown = await run_node("config/edit", {"file": "conf.txt", "get": ["x"]})
    assert "cannot tell the format" in (unknown.result.error or "")
    broken = run_node.workspace / "broken.json"
    broken.write_text("{not json")
    bad = await run_node("config/edit", {"file": "broken.json", "get": ["x"]})
    assert not bad.result.retryable and "not valid JSON" in (bad.result.error or "")
