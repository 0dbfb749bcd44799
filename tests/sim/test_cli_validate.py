"""`psmsim validate`: valid files print a summary; every malformed file gives one line on
stderr and exit code 2, never a traceback."""

from __future__ import annotations

from click.testing import CliRunner

from sim.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_liu2021(liu2021_path):
    result = _run("validate", str(liu2021_path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("liu2021: valid (table mode; combination 35 (treated), "
                                    "sorafenib 65; 22 covariates; 15 adverse events;")


def test_validate_selection_example(selection_example_path):
    result = _run("validate", str(selection_example_path))
    assert result.exit_code == 0, result.output
    assert "selection_example: valid (selection mode; 100 patients" in result.output
    assert "hazard ratio 0.7" in result.output


def test_help_options():
    for flag in ("-h", "--help"):
        result = _run(flag)
        assert result.exit_code == 0 and "validate" in result.output
        result = _run("validate", flag)
        assert result.exit_code == 0 and "SCENARIO" in result.output


def test_missing_file(tmp_path):
    result = _run("validate", str(tmp_path / "absent.toml"))
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'absent.toml'}: no such scenario file\n"
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_directory_instead_of_file(tmp_path):
    result = _run("validate", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


def test_missing_argument_is_a_usage_error():
    result = _run("validate")
    assert result.exit_code == 2
    assert "Missing argument 'SCENARIO'" in result.output


def test_malformed_file_exits_2_with_one_line(malformed, tmp_path):
    path = tmp_path / f"{malformed.id}.toml"
    path.write_text(malformed.apply(), encoding="utf-8")
    result = _run("validate", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert malformed.expected in lines[0]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
