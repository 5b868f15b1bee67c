"""The README's predict examples run as written from a checkout; the sample photo ships and
is what its script makes; no file in the repository cites a document, work item or path
outside it."""
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from b2v_rnn import evaluate, predict
from b2v_rnn.training import options as train_options
from b2v_rnn.samples import BLURRY, make_sample

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def sample_commands() -> list[str]:
    lines = re.findall(r"^python -m b2v_rnn\.predict .*$", README, flags=re.MULTILINE)
    return sorted({line.split("#")[0].strip() for line in lines if "b2v_rnn/samples/" in line})


def test_the_sample_photo_ships_small_and_is_what_its_script_makes():
    assert BLURRY.is_file() and BLURRY.stat().st_size < 200 * 1024
    shipped = np.asarray(Image.open(BLURRY))
    made = make_sample.average_frames(make_sample.sharp_instants())
    assert shipped.shape == (make_sample.SIZE[1], make_sample.SIZE[0], 3)
    np.testing.assert_array_equal(shipped, made)


@pytest.mark.parametrize("command", sample_commands())
def test_readme_predict_examples_run_as_written(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b2v_rnn").symlink_to(ROOT / "b2v_rnn")  # the checkout's layout, outputs kept apart
    argv = shlex.split(command)[3:]
    folders = predict.main([*argv, "--threads", "1"])
    out = Path(argv[argv.index("--out") + 1])
    assert folders == [out / "blurry"]
    assert len(list((out / "blurry").glob("frame_*.png"))) == 7 and (out / "blurry.gif").is_file()


CITATIONS = {
    "the outside design file": re.compile(r"\bDESIGN(\.md\b| ?§| \d)"),
    "the outside design file by another name": re.compile(r"\bdesign[ _]doc(ument)?s?\b|design_(section)",
                                                          re.IGNORECASE),
    "a numbered work item": re.compile(r"\b(issues?|items?) #?\d+", re.IGNORECASE),
    "an unnamed work item": re.compile(r"\b(the|this|that) issue\b", re.IGNORECASE),
    "a folder outside the repository": re.compile(r"(\.\./|/work/)shared\b"),
    "a past period of work": re.compile(r"(?<!scope=[\"'])\bsessions?\b", re.IGNORECASE),
}
"""What a reader of this repository cannot follow: a citation of a document, a work item or a
period of work that lives outside it. The design is docs/design.md, measurements are in
bench/RESULTS.md and bench/ABLATION.md; pytest's fixture scopes are allowed."""

PATH_PREFIXES = ("b2v_rnn/", "bench/", "csrc/", "data_tools/", "docs/", "tests/", ".ci/")
BACKTICKED = re.compile(r"`+([^`\s]+)`+")
DESIGN_CITATION = re.compile(r"docs/design\.md §(\d+(?:\.\d+)?)")


def repository_text_files() -> list[Path]:
    """Every tracked file and every untracked one git does not ignore, if it is text."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no file list")
    files = []
    for name in sorted(set(listed.decode().split("\0")) - {""}):
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def design_headings() -> set[str]:
    """Section numbers of docs/design.md ("2", "2.4", ...), from its headings."""
    text = (ROOT / "docs" / "design.md").read_text()
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, flags=re.MULTILINE))


def outside_citations(path: Path, sections: set[str]) -> list[str]:
    """'file:line: what' for each citation in `path` that a reader of the repository cannot
    follow: a document, work item or period of work outside it (`CITATIONS`), a backticked
    repository path that does not exist, or a docs/design.md section that it does not have."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}"
        for what, pattern in CITATIONS.items():
            match = pattern.search(line)
            if match:
                found.append(f"{where}: {what} ({match.group(0)!r})")
        for token in BACKTICKED.findall(line):
            token = token.rstrip(".,;:)")
            if token.startswith(PATH_PREFIXES) and not re.search(r"[*<>{}|$]", token) and not (ROOT / token).exists():
                found.append(f"{where}: a repository path that does not exist ({token!r})")
        for section in DESIGN_CITATION.findall(line):
            if section not in sections:
                found.append(f"{where}: docs/design.md has no section {section}")
    return found


def test_no_file_cites_a_document_or_work_item_outside_the_repository():
    sections = design_headings()
    assert {"1", "2", "3", "4", "5", "6", "7"} <= sections
    found = [line for path in repository_text_files() for line in outside_citations(path, sections)]
    helps = (predict.build_parser(), evaluate.build_parser(), train_options.build_parser())
    for text in (parser.format_help() for parser in helps):
        assert not [what for what, pattern in CITATIONS.items() if pattern.search(text)], text
    assert not found, "\n".join(found)


def test_the_citation_guard_finds_what_it_forbids(tmp_path):
    """The guard's own function on a planted file: each forbidden kind is found on its line, a
    fixture scope and an existing section are not (the strings are split so this file passes)."""
    planted = tmp_path / "planted.py"
    lines = ["see DESIGN" + " §7", "as the design" + " doc says", "measured in issue" + " 13",
             "read ../" + "shared/DES" + "IGN.md", "in this sess" + "ion", "`bench/NO_" + "SUCH.md`",
             "docs/design.md §" + "99", 'pytest.fixture(scope="session")', "docs/design.md §2.4"]
    planted.write_text("\n".join(lines) + "\n")
    found = outside_citations(planted, design_headings())
    assert [int(line.split(":")[1]) for line in found] == [1, 2, 3, 4, 4, 5, 6, 7], found


def test_the_readme_has_a_predict_example_on_the_shipped_sample():
    assert sample_commands(), "the README has no predict example on the shipped sample"
