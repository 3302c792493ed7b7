"""Fresh-process snippets: environment control, agreement checks and warning extraction."""

import pytest

from reprodl import seeding

SET_ORDER = "print(list({'alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf'}))"


def test_fixed_hash_seed_gives_the_same_set_order_in_every_process():
    runs = seeding.run_many(SET_ORDER, 2, env={"PYTHONHASHSEED": "0"})
    assert seeding.outputs_agree(runs)


def test_unset_hash_seed_gives_different_hashes():
    runs = seeding.run_many("print(hash('reprodl'))", 3, unset=["PYTHONHASHSEED"])
    assert not seeding.outputs_agree(runs)  # equal 64-bit hashes by chance: ~2**-64


def test_hash_seed_set_inside_the_process_has_no_effect():
    code = "import os; os.environ['PYTHONHASHSEED'] = '0'; print(hash('reprodl'))"
    runs = seeding.run_many(code, 3, unset=["PYTHONHASHSEED"])
    assert not seeding.outputs_agree(runs)


def test_env_and_unset_reach_the_child(monkeypatch):
    monkeypatch.setenv("REPRODL_TEST_VAR", "ambient")
    code = "import os; print(os.environ.get('REPRODL_TEST_VAR'), os.environ.get('REPRODL_OTHER'))"
    assert seeding.run_snippet(code).lines == ["ambient None"]
    assert seeding.run_snippet(code, env={"REPRODL_OTHER": "x"}).lines == ["ambient x"]
    assert seeding.run_snippet(code, unset=["REPRODL_TEST_VAR"]).lines == ["None None"]


def test_failing_snippet_raises_unless_unchecked():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        seeding.run_snippet("1 / 0")
    result = seeding.run_snippet("1 / 0", check=False)
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr


def test_code_is_dedented():
    assert seeding.run_snippet("\n    x = 2\n    print(x * 3)\n").lines == ["6"]


def test_warning_lines_drop_the_location():
    stderr = (
        "/tmp/abc/x.py:12: ReproducibilityWarning: too late\n"
        "  warnings.warn(...)\n"
        "reprodl.runtime:0: UserWarning: other\n"
    )
    assert seeding.warning_lines(stderr) == ["ReproducibilityWarning: too late"]


def test_numpy_imported_before_reprodl_keeps_the_wrong_blas_kernel():
    code = """
    import numpy
    import reprodl
    from threadpoolctl import threadpool_info
    print(sorted({p.get('architecture') for p in threadpool_info() if p.get('architecture')}))
    """
    lines = seeding.run_snippet(code, env={"OPENBLAS_CORETYPE": "Sandybridge"}).lines
    assert lines == ["['Sandybridge']"]  # reprodl's pin came after OpenBLAS chose its kernel


def test_validation():
    with pytest.raises(ValueError):
        seeding.run_many("print(1)", 0)
    with pytest.raises(ValueError):
        seeding.outputs_agree([])
