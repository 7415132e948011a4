"""The docs explain the project from inside it (no services needed).

- The tables `./smart-shelf docs` generates (topics and tables with their writers and readers,
  the settings) are what the code produces now: adding a topic, a table or a setting without
  regenerating fails here.
- No tracked file points at documents outside the repository.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from smart_shelf_platform import doc_tables
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES, POSTGRES_TABLES, TOPICS
from smart_shelf_platform.settings import REPO_ROOT, Settings

# Built from pieces so that this file does not match itself.
OUTSIDE_POINTERS = re.compile("|".join((
    r"\.\./" + "shared",
    "REFERENCE" + r"\.md",
    "ARCHITECTURE" + r"\.md",
    "REFERENCE" + r"\s*§?\s*[0-9]",  # a section or item number after the word
)))
# Files of the issue tooling, which may name those documents; none is tracked today.
ISSUE_TOOLING = (".issues/",)


def test_the_committed_docs_tables_are_up_to_date():
    assert doc_tables.stale() == [], "run ./smart-shelf docs and commit docs/"


def test_every_topic_table_and_setting_is_in_the_docs():
    architecture = (REPO_ROOT / "docs/architecture.md").read_text()
    for name in ([f"`{t.name}`" for t in TOPICS] + [f"`{t.path}`" for t in DELTA_TABLES]
                 + [f"`{t.qualified_name}`" for t in POSTGRES_TABLES]):
        assert f"| {name} |" in architecture, name
    operations = (REPO_ROOT / "docs/operations.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`{field.alias or 'SMART_SHELF_' + name.upper()}`" in operations, name


def test_a_stale_table_is_found(tmp_path):
    for file in doc_tables.GENERATED:
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / file, tmp_path / file)
    assert doc_tables.stale(tmp_path) == []
    operations = tmp_path / "docs/operations.md"
    # A setting added to the code but not to the file: its line is missing.
    operations.write_text(operations.read_text().replace(
        "| `SMART_SHELF_SEED` |", "| `SMART_SHELF_SEED_GONE` |"))
    assert doc_tables.stale(tmp_path) == [operations]
    assert doc_tables.write(tmp_path) == [operations]
    assert doc_tables.stale(tmp_path) == []


def test_a_file_without_markers_is_one_clear_error(tmp_path):
    with pytest.raises(doc_tables.DocsError, match="no markers for the generated settings"):
        doc_tables.fill("# nothing here\n", "settings", "| a |", "docs/operations.md")


def test_every_setting_has_a_description():
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not missing


def _pointers(files: dict[str, str]) -> list[str]:
    return [f"{path}:{number}: {line.strip()}"
            for path, text in files.items() if not path.startswith(ISSUE_TOOLING)
            for number, line in enumerate(text.splitlines(), 1)
            if OUTSIDE_POINTERS.search(line)]


def test_the_pointer_search_finds_what_it_looks_for():
    found = _pointers({
        "a.py": "# see " + "../" + "shared/" + "REFERENCE" + ".md\nok = 1\n",
        "b.py": "# " + "REFERENCE" + " 6.8's rule\n# " + "REFERENCE" + " §3.1\n",
        "c.sql": "FOREIGN KEY (a) REFERENCES t (a)\nREFERENCE_TTL = 300\n",
    })
    assert [hit.split(":")[0] for hit in found] == ["a.py", "b.py", "b.py"]


def test_no_tracked_file_points_outside_the_repository():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    files = {}
    for path in filter(None, listed):
        try:
            files[path] = (REPO_ROOT / path).read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # images, and files deleted in the working tree
    assert len(files) > 100 and "README.md" in files
    assert _pointers(files) == []


def test_every_command_the_readme_names_exists_and_has_help():
    """The tour's commands as the README writes them (`./smart-shelf up`, `… verify`): each one
    is a command of the CLI whose `--help` works, without a stack."""
    from typer.testing import CliRunner

    from smart_shelf_platform.cli import app

    readme = (REPO_ROOT / "README.md").read_text()
    commands = sorted(set(re.findall(r"\./smart-shelf ([a-z][a-z-]*)", readme)))
    assert {"up", "simulate", "verify", "report", "status", "test"} <= set(commands)
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.output, command


def test_docs_check_names_the_stale_file_in_one_line(monkeypatch):
    from typer.testing import CliRunner

    from smart_shelf_platform.cli import app
    from smart_shelf_platform.stack.process import StackError

    runner = CliRunner()
    result = runner.invoke(app, ["docs", "--check"])
    assert result.exit_code == 0 and result.output == "docs: up to date\n"
    monkeypatch.setattr(doc_tables, "stale", lambda: [REPO_ROOT / "docs/operations.md"])
    result = runner.invoke(app, ["docs", "--check"])
    # main() prints a StackError as `smart-shelf: error: <message>` and exits 1.
    assert isinstance(result.exception, StackError)
    assert str(result.exception) == "docs/operations.md is stale: run ./smart-shelf docs"
