"""What the CLI tests share: invoking `psmsim` in-process and checking a one-line error."""

from click.testing import CliRunner

from sim.cli import main


def invoke(*args):
    """Run `psmsim ARGS...` in this process (arguments str()-ed); exceptions propagate."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, fragment):
    """The command failed with exit code 2 and printed exactly one line `error: …` naming
    ``fragment``, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0], lines[0]
