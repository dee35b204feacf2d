"""The documentation site: it builds with `mkdocs build --strict`, its reference page matches the
code, the README links every page, and every command of the your-data page runs as shown, in a
fresh folder, through the real CLI and an MLflow store (the getting-started page's commands:
test_getting_started.py)."""
from __future__ import annotations

import csv
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from recsys_scaling.cli import main

from test_data_many import hive, terabyte
from test_faults import _free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def code_blocks(page: Path, language: str) -> list:
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def commands(page: Path) -> list:
    """Each command of the page's bash blocks as words (continuations joined, comments dropped)."""
    found = []
    for block in code_blocks(page, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append(words)
    return found


def test_the_site_builds_in_strict_mode(tmp_path):
    """Strict: a broken link, a missing image or a page left out of the navigation fails."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "your-data" / "index.html").is_file()


def test_the_reference_page_matches_the_code():
    """Every config key (with the comment beside it in config.py) and every command's options."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import reference
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert reference.main(["--check"]) == 0, "docs/reference.md is out of date: run python scripts/reference.py"
    rows = reference.config_keys()
    assert all(note for *_, note in rows), [key for key, *_, note in rows if not note]
    assert {"data.path", "train.memory_check", "report.margin", "model.tower_args"} <= {key for key, *_ in rows}


def test_the_readme_fits_a_first_screen_and_links_every_page():
    readme = (ROOT / "README.md").read_text()
    pages = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    for entry in pages:
        page = next(iter(entry.values()))
        assert page == "index.md" or f"(docs/{page})" in readme, f"README does not link docs/{page}"
    assert len(readme.splitlines()) <= 120
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert (ROOT / "docs" / "img" / "report.png").is_file()


def _ui_answers(words: list, folder: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "recsys_scaling.cli", *words[1:], "--port", str(port)],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        address = next(line for line in iter(proc.stdout.readline, "") if "MLflow UI:" in line)
        url = address.split("MLflow UI:", 1)[1].split()[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, f"{url} did not answer"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def run_command(words: list, folder: Path, narrow=()) -> None:
    """One command of a page, as shown; `narrow`: overrides added to the demo's budget and sweep."""
    if words[0] == "bash":
        script = (ROOT / words[1]).read_text()
        if words[1] == "scripts/demo.sh":
            assert "sweep demo" in script and "report demo" in script
        else:
            assert words[1] == "scripts/test.sh" and words[1] in (ROOT / ".ci" / "run").read_text()
        return
    assert words[0] == "recsys-scaling", f"a command this test does not know how to run: {shlex.join(words)}"
    if words[1] == "ui":
        return _ui_answers(words, folder)
    args = words[1:] + (list(narrow) if words[1:3] in (["sweep", "demo"], ["budget", "demo"]) else [])
    assert main(args) == 0, shlex.join(words)


def clicks_csv(path: Path, rows: int = 4000, seed: int = 0) -> Path:
    """The page's click log: users x items interact, iOS clicks more; a few rows of each column."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 300, rows), rng.integers(0, 200, rows)
    device = np.array(["ios", "android", "web"])[rng.integers(0, 3, rows)]
    category = np.array(["shoes", "books", "toys", "garden", "food"])[rng.integers(0, 5, rows)]
    taste_u, taste_i = rng.normal(size=300), rng.normal(size=200)
    logit = -1.2 + taste_u[users] * taste_i[items] + 0.5 * (device == "ios")
    clicked = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    price = np.round(rng.lognormal(3, 1, rows), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["clicked", "user_id", "item_id", "category", "device", "price"])
        writer.writerows(zip(clicked, [f"u{u}" for u in users], [f"i{i}" for i in items], category, device, price))
    return path


@pytest.mark.slow
@pytest.mark.integration
def test_every_your_data_command_runs(workdir, capsys):
    """The page's own CSV through its sweep file, and the Criteo and Avazu commands on sample files
    in the real formats (tests/samples.py) at the paths the page names."""
    import samples

    page = DOCS / "your-data.md"
    for block in code_blocks(page, "yaml"):
        first = block.splitlines()[0]
        if first.startswith("# ") and first.endswith(".yaml"):
            target = workdir / first[2:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block)
    assert (workdir / "sweeps" / "clicks.yaml").is_file()
    clicks_csv(workdir / "data" / "clicks.csv")
    (workdir / "criteo").mkdir()
    samples.criteo_csv_variant(workdir / "criteo" / "train.txt", rows=600)
    (workdir / "avazu").mkdir()
    samples.avazu_csv(workdir / "avazu" / "train")
    terabyte(workdir / "criteo_tb", days=3, rows=400, gz=True)
    hive(workdir / "events")
    for words in commands(page):
        run_command(words, workdir)
    out = capsys.readouterr().out
    assert "report of clicks (15 runs)" in out and "report of events (9 runs)" in out
    assert "report of paper_criteo (3 runs)" in out
    assert "split: time: train days 1..2 (2)" in out  # data prepare events said which days went where
    assert "field_dims: price=" in out  # data prepare clicks described the file
