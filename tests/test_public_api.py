"""The practitioner's names at the top of the package, imported on first use."""

from __future__ import annotations

import json

from support import run_python

import reprodl


def test_the_toolkit_names_need_no_pinning():
    code = (
        "import json, os, sys\n"
        "before = dict(os.environ)\n"
        "import reprodl\n"
        "names = [reprodl.RecordRun, reprodl.load_record, reprodl.compare, reprodl.check]\n"
        "print(json.dumps({'changed': dict(os.environ) != before,\n"
        "                  'pinned': 'reprodl.runtime' in sys.modules,\n"
        "                  'tensorflow': 'tensorflow' in sys.modules,\n"
        "                  'names': [getattr(n, '__name__', '') for n in names]}))\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {
        "changed": False,
        "pinned": False,
        "tensorflow": False,
        "names": ["RecordRun", "load", "compare", "reprodl.check"],
    }


def test_the_names_are_the_modules_own():
    from reprodl import check, records
    from reprodl.keras import RecordRun
    from reprodl.record.compare import compare

    assert reprodl.RecordRun is RecordRun
    assert reprodl.load_record is records.load
    assert reprodl.compare is compare
    assert reprodl.check is check and check.run  # the module, callable as check.run
    assert sorted(reprodl.__all__) == sorted(set(reprodl.__all__))
    for name in reprodl.__all__:
        assert getattr(reprodl, name) is not None, name


def test_check_called_as_a_function_runs_the_check(monkeypatch):
    seen = {}

    def fake_run(command, **options):
        seen.update(command=list(command), **options)
        return "result"

    monkeypatch.setattr(reprodl.check, "run", fake_run)
    assert reprodl.check(["python", "train.py"], runs=3) == "result"
    assert seen == {"command": ["python", "train.py"], "runs": 3}


def test_an_unknown_name_is_an_attribute_error():
    try:
        reprodl.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("no AttributeError")
