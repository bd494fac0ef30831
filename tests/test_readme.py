"""The README is the front door: short, its test command is what CI runs, its links resolve."""

from __future__ import annotations

import re

from support import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
DOCS = [README, *(page.read_text() for page in (PROJECT_ROOT / "docs").glob("*.md"))]


def test_ci_runs_exactly_the_readmes_test_command():
    command = (PROJECT_ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert command.endswith("pytest")
    assert f"```bash\n{command}\n```" in README


def test_the_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 200
    for page, text in [(PROJECT_ROOT / "README.md", README), *((p, p.read_text()) for p in (PROJECT_ROOT / "docs").glob("*.md"))]:
        prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))  # links, not code
        for target in re.findall(r"\]\(([^)#:]+)\)", prose):
            assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"


def test_commands_use_kedro_17s_spelling():
    # `--pipeline` (singular) appears only where the README says that both spellings work.
    singular = [line for text in DOCS for line in text.splitlines() if re.search(r"--pipeline\b(?!s)", line)]
    assert singular == ["Kedro 1.7 spells the option `--pipelines`; the older `kedro run --pipeline cnn` works too (Kedro"]
