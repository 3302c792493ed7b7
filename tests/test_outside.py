"""Every chapter runs outside the checkout, with the package installed by its own first cell.

The chapters themselves are executed there by the strict nbval gate (``../conftest.py`` gives
every ``chapters/*.ipynb`` a kernel of the environment ``tests/outside.py`` builds), so that one
execution checks both the exact outputs and that nothing needs the checkout. These tests check
the environment itself: that it is the reader's, and that the install cell did install.
"""

from __future__ import annotations

import outside
import pytest


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest) -> outside.Outside:
    return outside.environment(request.config)  # the one the gate's kernels use


@pytest.mark.slow
def test_the_kernel_lacked_the_package_until_the_install_cell_ran(env):
    assert not env.installed_before
    assert outside.INSTALLED in env.install_output, env.install_output


@pytest.mark.slow
def test_the_package_comes_from_the_wheel_not_from_the_checkout(env):
    assert env.package_file.startswith(str(env.purelib)), env.package_file
    assert not env.package_file.startswith(str(outside.ROOT))
    assert "dist-info" in "".join(p.name for p in env.purelib.glob("reprodl-*"))


@pytest.mark.slow
def test_the_chapters_run_in_a_folder_without_the_checkout(env):
    for name in ("src", "benchmarks", "tools", "tests", "pyproject.toml"):
        assert not (env.book / name).exists(), name
    assert not str(env.book).startswith(str(outside.ROOT))
    for chapter in outside.CHAPTERS:  # the gate compares the checkout's file with this run
        assert (env.book / chapter.name).read_bytes() == chapter.read_bytes()


def test_every_chapter_starts_with_the_same_install_cell():
    import nbformat

    for chapter in outside.CHAPTERS:
        nb = nbformat.read(chapter, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert first.source == outside.install_cell(), chapter.name
