"""The plain-Keras recipe and its variants: every variant applies cleanly and says what it edits."""

import ast

import pytest
from support import ROOT

from reprodl import recipe
from reprodl.errors import UsageError


def test_the_repository_example_is_a_link_to_the_packaged_recipe():
    """One copy: ``examples/`` links to the file the package ships (a copy there would drift)."""
    example = ROOT / "examples" / recipe.SCRIPT
    packaged = ROOT / "src" / "reprodl" / "examples" / recipe.SCRIPT
    assert example.is_symlink(), f"{example} is a copy, not a link to {packaged}"
    assert example.resolve() == packaged.resolve()
    assert "from reprodl" not in recipe.source() and "import reprodl" not in recipe.source()


@pytest.mark.parametrize("name", sorted(recipe.VARIANTS))
def test_every_variant_applies_once_and_is_valid_python(name):
    text = recipe.source(name)
    ast.parse(text)
    assert text != recipe.source()
    changed = recipe.diff(name).splitlines()
    assert changed and all(line[0] in "+-" for line in changed)


def test_variants_combine_and_the_recorder_is_one_instance_per_run():
    text = recipe.source("reseed-each-epoch", "recorded")
    assert text.count("RecordRun()") == 1 and "callbacks=[RECORD]" in text
    assert "set_random_seed(SEED)  # 'to be safe'" in text


def test_a_variant_that_no_longer_matches_is_an_error():
    with pytest.raises(UsageError, match="not in the script once"):
        recipe.source("unseeded-dropout", "unseeded-dropout")
    with pytest.raises(UsageError, match="no recipe variant 'nope'"):
        recipe.source("nope")


def test_write_names_the_script_after_its_variants(tmp_path):
    assert recipe.write(tmp_path).name == recipe.SCRIPT
    path = recipe.write(tmp_path, "broken", "recorded")
    assert path.name == "broken+recorded.py"
    assert path.read_text() == recipe.source("broken", "recorded")
    assert recipe.command(path, tmp_path, "--epochs", "2")[1:] == [
        str(path), "--data", str(tmp_path), "--epochs", "2"
    ]  # fmt: skip
    assert recipe.names(["broken"]) == "recipe + broken"
