"""Everyday CLI mistakes: each is one line on stderr and its documented exit code, never a traceback."""

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import OPEN311_TEST_KEY, REPO
from social311.cli import EXIT_BUSY, EXIT_UNAVAILABLE, EXIT_USAGE, main

SOCIAL311 = str(Path(sys.executable).with_name("social311"))


def demo_city(tmp_path: Path, **changes) -> Path:
    """The demo city YAML with absolute paths, and the given top-level or ticketing changes."""
    data = yaml.safe_load((REPO / "demo" / "city.yaml").read_text())
    for key in ("wards_path", "places_path"):
        data["gis"]["config"][key] = str(REPO / "demo" / data["gis"]["config"][key])
    data["sources"][0]["config"]["drop_dir"] = str(tmp_path / "drop")
    (tmp_path / "drop").mkdir(exist_ok=True)
    data["duckdb_path"] = str(tmp_path / "city.duckdb")
    data["ticketing"]["config"].update(changes.pop("ticketing", {}))
    data.update(changes)
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


# (name, argv builder, expected exit code, words the one line must contain)
MISTAKES = [
    ("port out of range", lambda t: ["sandbox", "--port", "99999"], EXIT_USAGE, "99999 is not a port"),
    ("port not a number", lambda t: ["sandbox", "--port", "eighty"], EXIT_USAGE, "not a port number"),
    ("unknown quirk", lambda t: ["sandbox", "--quirks", "bad"], EXIT_USAGE, "unknown quirk mode 'bad'"),
    ("unknown command", lambda t: ["frobnicate"], EXIT_USAGE, "invalid choice"),
    ("run without --config", lambda t: ["run"], EXIT_USAGE, "--config"),
    ("missing config: run", lambda t: ["run", "--config", str(t / "nope.yaml")], EXIT_USAGE, "no city config at"),
    ("missing config: tickets", lambda t: ["tickets", "--config", str(t / "nope.yaml"), "--stuck"], EXIT_USAGE, "no city config at"),
    ("missing config: review", lambda t: ["review", "--config", str(t / "nope.yaml")], EXIT_USAGE, "no city config at"),
    ("missing config: validate", lambda t: ["validate", "--config", str(t / "nope.yaml")], EXIT_USAGE, "no city config at"),
    ("config is a folder", lambda t: ["run", "--config", str(t)], EXIT_USAGE, "it is a folder"),
    ("eval data missing", lambda t: ["eval", "--data", "nope.csv", "--task", "relevance", "--text-column", "t",
                                     "--label-column", "l"], EXIT_USAGE, "--data nope.csv: no such file"),
    ("eval data without columns", lambda t: ["eval", "--data", "x.csv"], EXIT_USAGE, "--data needs --task"),
    ("non-UTF-8 YAML", lambda t: ["run", "--config", write(t, "latin1.yaml", "city: Münster\n".encode("latin-1"))],
     EXIT_USAGE, "not UTF-8"),
    ("YAML syntax", lambda t: ["run", "--config", write(t, "broken.yaml", b"city: [unclosed\n")], EXIT_USAGE, "broken.yaml"),
    ("sources as a mapping", lambda t: ["run", "--config", write(
        t, "map.yaml", b"city: x\nsources:\n  feed: {plugin: file_drop}\ngis: {plugin: geojson}\nticketing: {plugin: open311}\n")],
     EXIT_USAGE, "map.yaml"),
    ("unknown key", lambda t: ["run", "--config", write(
        t, "extra.yaml", b"city: x\ncolour: red\nsources: [{plugin: file_drop}]\ngis: {plugin: geojson}\nticketing: {plugin: open311}\n")],
     EXIT_USAGE, "colour"),
    ("unset api_key variable", lambda t: ["run", "--config", str(demo_city(
        t, ticketing={"api_key_env": "SOCIAL311_TEST_UNSET_KEY"}))], EXIT_USAGE, "$SOCIAL311_TEST_UNSET_KEY is not set"),
    ("tickets before any run", lambda t: ["tickets", "--config", str(demo_city(t)), "--stuck"], EXIT_USAGE, "no warehouse at"),
    ("review before any run", lambda t: ["review", "--config", str(demo_city(t))], EXIT_USAGE, "no warehouse at"),
]


@pytest.mark.parametrize("name,argv,code,words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_is_one_line_and_its_exit_code(name, argv, code, words, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SOCIAL311_TEST_UNSET_KEY", raising=False)
    assert main(argv(tmp_path)) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("social311: error: "), err
    assert words in lines[0], err
    assert "Traceback" not in err


def test_mistakes_in_a_real_process_one_line_no_traceback(tmp_path):
    """The installed console script: exit codes reach the shell; --log-format json errors are JSON."""
    done = subprocess.run([SOCIAL311, "tickets", "--config", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert (done.returncode, done.stderr.count("\n")) == (EXIT_USAGE, 1), done.stderr
    done = subprocess.run([SOCIAL311, "--log-format", "json", "run", "--config", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True)
    import json

    assert done.returncode == EXIT_USAGE
    assert json.loads(done.stderr) == {"level": "error", "message": f"no city config at {tmp_path / 'nope.yaml'}"}


def test_port_in_use_is_one_line_and_exit_4(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert main(["sandbox", "--port", str(busy), "--db", ":memory:"]) == EXIT_UNAVAILABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"social311: error: port {busy} on 127.0.0.1 is in use: choose another with --port (0: any free port)"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("social311 ") and out.split()[1][0].isdigit()


def test_validate_a_good_city_against_a_real_sandbox(tmp_path, sandbox, capsys, monkeypatch):
    monkeypatch.setenv("SOCIAL311_TEST_KEY", OPEN311_TEST_KEY)
    config = demo_city(tmp_path, ticketing={"endpoint": sandbox.url, "api_key_env": "SOCIAL311_TEST_KEY"})
    assert main(["validate", "--config", str(config)]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "OK    open311 catalog:" in out
    assert "OK    service_attributes POTHOLE: SIZE valid for POTHOLE" in out
    assert "OK    wards geojson: 8 wards" in out
    assert "0 failed" in out
    assert not (tmp_path / "city.duckdb").exists(), "validate must not write a warehouse"


@pytest.mark.parametrize("attributes,words", [
    ({"POTHOEL": {"SIZE": "M"}}, "POTHOEL is not a service code of the catalog (did you mean POTHOLE?)"),
    ({"POTHOLE": {"SIZ": "M"}}, "SIZ"),
    ({"POTHOLE": {"SIZE": "HUGE"}}, "HUGE"),
], ids=["misspelt service code", "misspelt attribute code", "value not in the list"])
def test_validate_names_a_bad_service_attribute(attributes, words, tmp_path, sandbox, capsys, monkeypatch):
    monkeypatch.setenv("SOCIAL311_TEST_KEY", OPEN311_TEST_KEY)
    config = demo_city(tmp_path, service_attributes=attributes,
                       ticketing={"endpoint": sandbox.url, "api_key_env": "SOCIAL311_TEST_KEY"})
    assert main(["validate", "--config", str(config)]) == EXIT_USAGE
    captured = capsys.readouterr()
    fails = [line for line in captured.out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and words in fails[0], captured.out
    assert len(captured.err.strip().splitlines()) == 1


def test_validate_names_missing_files_unset_key_and_unreachable_catalog(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SOCIAL311_TEST_UNSET_KEY", raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    config = demo_city(tmp_path, ticketing={"endpoint": f"http://127.0.0.1:{dead}/open311/v2",
                                            "api_key_env": "SOCIAL311_TEST_UNSET_KEY"})
    data = yaml.safe_load(config.read_text())
    data["gis"]["config"]["wards_path"] = str(tmp_path / "no-wards.geojson")
    config.write_text(yaml.safe_dump(data))
    assert main(["validate", "--config", str(config)]) == EXIT_USAGE
    out = capsys.readouterr().out
    fails = "\n".join(line for line in out.splitlines() if line.startswith("FAIL"))
    assert "no-wards.geojson does not exist" in fails
    assert "$SOCIAL311_TEST_UNSET_KEY is not set and filing_enabled is true" in fails
    assert "open311 catalog" in fails


def test_a_busy_warehouse_is_exit_3_for_a_read_only_command(tmp_path, capsys):
    """`tickets --stuck` while another process writes the warehouse: one line, exit 3, nothing waits."""
    config = demo_city(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from social311.warehouse import connect\n"
                               f"with connect({str(tmp_path / 'city.duckdb')!r}) as con:\n"
                               "    print('open', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert main(["tickets", "--config", str(config), "--stuck"]) == EXIT_BUSY
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is in use by another process" in err[0], err


def test_json_log_format_is_accepted_after_the_command(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.yaml"), "--log-format", "json"]) == EXIT_USAGE


def test_dbt_runs_through_the_bound_launcher():
    from social311.orchestration.transforms import dbt_executable

    assert Path(dbt_executable()).name == "social311-dbt"
    assert shutil.which(dbt_executable())


def test_demo_on_a_port_in_use_is_one_line_and_exit_4(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert main(["demo", "--workdir", str(tmp_path / "demo"), "--port", str(busy)]) == EXIT_UNAVAILABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("social311: error: address in use"), err
