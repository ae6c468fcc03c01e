"""The README's test command is what CI runs, and the README's commands exist."""

import re
from pathlib import Path

from typer.testing import CliRunner

from regtracks.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- test-command", 1)[1]
    command = re.search(r"```bash\n(.+?)\n", block).group(1).strip()
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    used = set(re.findall(r"`regtracks ([a-z]+)", readme))
    assert {"demo", "train", "evaluate", "benchmark", "predict", "serve", "simulate"} <= used
    for name in sorted(used):
        r = CliRunner().invoke(app, [name, "--help"])
        assert r.exit_code == 0, f"regtracks {name}: {r.output}"
