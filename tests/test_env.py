"""``reprodl.env``: the CPU and the versions and settings a run depends on, read in one place
and never set."""

from __future__ import annotations

import os
import platform

from support import run_python

import reprodl
from reprodl.env import cpu, report


def test_importing_env_changes_nothing_and_loads_neither_numpy_nor_tensorflow():
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import reprodl.env, reprodl.env.report, reprodl.cpu\n"
        "assert dict(os.environ) == before\n"
        "print(sorted(m for m in ('numpy', 'tensorflow', 'reprodl.runtime') if m in sys.modules))\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_the_old_cpu_path_is_the_same_module():
    from reprodl import cpu as old

    assert old is cpu
    assert reprodl.cpu is cpu


def test_the_report_names_the_cpu_cpuid_describes():
    info = cpu.describe()
    assert report.cpu_model() == info.model_name
    flags = report.cpu_flags()
    assert list(flags) == [f for f in report.REPORTED_FLAGS if f in flags]
    assert set(flags) <= set(info.flags)


def test_installed_versions_come_from_the_metadata_without_importing():
    found = report.installed_versions()
    assert list(found) == ["python", "numpy", "tensorflow", "keras"]
    assert found["python"] == platform.python_version()
    assert found["numpy"] == __import__("numpy").__version__


def test_the_settings_of_a_run_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "7")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    before = dict(os.environ)
    settings = report.settings_of_a_run()
    assert dict(os.environ) == before
    assert settings["TF_NUM_INTRAOP_THREADS"] == "7"
    assert settings["KERAS_BACKEND"] == "tensorflow"
    assert settings["PYTHONHASHSEED"] is None
    assert "UNRELATED_VARIABLE" not in settings
    names = [k for k in settings if not k.startswith(("tf_", "op_"))]
    assert names == sorted(names)


def test_variables_lists_unset_names_as_none(monkeypatch):
    monkeypatch.delenv("REPRODL_SURELY_UNSET", raising=False)
    monkeypatch.setenv("REPRODL_SET", "1")
    assert report.variables(["REPRODL_SURELY_UNSET", "REPRODL_SET"]) == {
        "REPRODL_SET": "1",
        "REPRODL_SURELY_UNSET": None,
    }


def test_the_contract_is_readable_without_pinning_and_is_what_runtime_pins():
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "from reprodl.env import contract\n"
        "assert dict(os.environ) == before and 'reprodl.runtime' not in sys.modules\n"
        "print(contract.PINNED_ENV['TF_NUM_INTRAOP_THREADS'], contract.INTRA_OP_THREADS)\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 1\n"
    from reprodl import runtime
    from reprodl.env import contract

    assert runtime.PINNED_ENV is contract.PINNED_ENV
    assert runtime.REPRODUCIBLE_ENV == {**contract.PINNED_ENV, "PYTHONHASHSEED": "0"}
    assert runtime.environment_line is report.environment_line
    assert runtime.pinned_settings is report.pinned_settings
