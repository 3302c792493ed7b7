"""Tests mirror the modules: every module of the package has the test files that check it, here,
in one table (a new module without tests fails this test)."""

from __future__ import annotations

import re

from support import ROOT, is_old_path

PACKAGE = ROOT / "src" / "reprodl"

#: Each module (path under src/reprodl) and the test files that check it.
MIRROR: dict[str, tuple[str, ...]] = {
    "__init__.py": ("test_public_api.py",),
    "__main__.py": ("test_cli.py",),
    "_formats.py": ("test_formats.py",),
    "_io.py": ("test_io.py",),
    "_proc.py": ("test_proc.py",),
    "_tf.py": ("test_runtime.py",),
    "errors.py": ("test_spec.py",),
    # the toolkit
    "env/__init__.py": ("test_env.py",),
    "env/contract.py": ("test_env.py",),
    "env/cpu.py": ("test_env.py", "test_crosscheck.py"),
    "env/report.py": ("test_env.py",),
    "record/__init__.py": ("test_toolkit_boundary.py",),
    "record/fingerprint.py": ("test_fingerprint.py",),
    "record/state.py": ("test_records.py", "test_keras_recorder.py"),
    "record/runrecord.py": ("test_records.py",),
    "record/compare.py": ("test_divergence.py",),
    "record/digest_map.py": ("test_divergence.py",),
    "keras/__init__.py": ("test_keras_recorder.py",),
    "keras/_interrupts.py": ("test_keras_recorder.py",),
    "keras/_loss_hook.py": ("test_keras_recorder.py",),
    "keras/_recording.py": ("test_keras_recorder.py",),
    "keras/_state.py": ("test_keras_recorder.py",),
    "check/__init__.py": ("test_check.py",),
    "check/plan.py": ("test_check.py",),
    "check/run.py": ("test_check.py",),
    "check/verdict.py": ("test_check.py",),
    "schemas/__init__.py": ("test_records.py", "test_decomposition.py"),
    # the book's engine
    "runtime.py": ("test_runtime.py",),
    "seeds.py": ("test_seeds.py",),
    "data.py": ("test_data.py",),
    "batches.py": ("test_batches.py",),
    "models.py": ("test_models_training.py",),
    "initializers.py": ("test_initializers.py",),
    "stats.py": ("test_stats.py",),
    "experiments.py": ("test_experiments.py", "test_variance.py"),
    "decomposition.py": ("test_decomposition.py", "test_full_run.py"),
    "distributed/__init__.py": ("test_distributed.py",),
    "distributed/__main__.py": ("test_distributed.py",),
    "distributed/replicated.py": ("test_distributed.py", "test_cli_replicas.py"),
    "distributed/workers.py": ("test_distributed.py",),
    "distributed/worker.py": ("test_distributed.py",),
    "results/__init__.py": ("test_results.py", "test_prose_numbers.py"),
    "training/__init__.py": ("test_models_training.py",),
    "training/checkpoints.py": ("test_checkpoints.py",),
    "training/defaults.py": ("test_cli.py",),
    "training/lanes.py": ("test_lanes.py",),
    "training/loop.py": ("test_models_training.py",),
    "training/replay.py": ("test_divergence.py",),
    "training/results.py": ("test_models_training.py",),
    "training/runner.py": ("test_variance.py", "test_decomposition.py"),
    "training/spec.py": ("test_spec.py",),
    # chapter aids
    "book/__init__.py": ("test_toolkit_boundary.py",),
    "book/backend_compare.py": ("test_backend_compare.py",),
    "book/crosscheck.py": ("test_crosscheck.py", "test_crosscheck_emulated.py"),
    "book/fit_multiworker.py": ("test_distributed.py",),
    "book/fresh_process.py": ("test_fresh_process.py",),
    "book/gpu.py": ("test_gpu.py",),
    "book/jax_battery.py": ("test_jax_battery.py",),
    "book/batch_invariance.py": ("test_serving.py",),
    "book/numpy_net.py": ("test_numpy_net.py",),
    "book/plots.py": ("test_plots.py",),
    "book/recipe.py": ("test_recipe.py",),
    "book/simulate.py": ("test_simulate.py",),
    "examples/first_runs.py": ("test_examples.py",),
    "examples/train_keras.py": ("test_examples.py",),
    # the command line
    "cli/__init__.py": ("test_cli.py", "test_cli_boundary.py"),
    "cli/_args.py": ("test_cli.py",),
    "cli/_parallel.py": ("test_cli_replicas.py",),
    "cli/check.py": ("test_check.py", "test_cli_boundary.py"),
    "cli/invariance.py": ("test_serving.py", "test_cli.py"),
    "serving/__init__.py": ("test_serving.py",),
    "serving/fixed_batch.py": ("test_serving.py",),
    "serving/invariance.py": ("test_serving.py",),
    "serving/report.py": ("test_serving.py",),
    "cli/crosscheck.py": ("test_crosscheck.py",),
    "cli/decompose.py": ("test_decomposition.py",),
    "cli/env.py": ("test_cli.py",),
    "cli/records.py": ("test_cli.py", "test_divergence.py"),
    "cli/replay.py": ("test_cli_boundary.py", "test_divergence.py"),
    "cli/train.py": ("test_cli.py", "test_contexts.py"),
}


def _modules() -> set[str]:
    return {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if not is_old_path(p) and "egg-info" not in str(p)
    }


def test_every_module_has_its_test_files():
    modules = _modules()
    assert not modules - set(MIRROR), f"modules without tests: {sorted(modules - set(MIRROR))}"
    assert not set(MIRROR) - modules, f"no such modules: {sorted(set(MIRROR) - modules)}"
    for module, tests in MIRROR.items():
        assert tests, module
        for name in tests:
            assert (ROOT / "tests" / name).is_file(), f"{module}: no tests/{name}"


def test_each_test_file_names_the_module_it_checks():
    """A test file listed for a module mentions it: its dotted path, its package, its old path
    (``reprodl.records`` for ``record/runrecord.py``) or, for the CLI, its command."""
    old_paths = {
        "record/runrecord.py": "records",
        "record/state.py": "training.state",
        "record/compare.py": "divergence",
        "record/digest_map.py": "divergence",
        "training/replay.py": "divergence",
        "env/cpu.py": "cpu",
        "book/fit_multiworker.py": 'trainer="fit"',  # run through the workers
    }
    silent: list[str] = []
    for module, tests in MIRROR.items():
        path = module.removesuffix(".py").removesuffix("__init__").rstrip("/").replace("/", ".")
        dotted = f"reprodl.{path}" if path else "reprodl"
        parts = dotted.split(".")
        names = {parts[-1], ".".join(parts[:2])}
        if module in old_paths:
            names.add(old_paths[module])
        if module.startswith("cli/") or module == "__main__.py":
            names |= {"main", "python -m reprodl", "reprodl.cli"}
        pattern = "|".join(re.escape(n) for n in sorted(names))
        for name in tests:
            text = (ROOT / "tests" / name).read_text(encoding="utf-8")
            if not re.search(pattern, text):
                silent.append(f"tests/{name} does not mention {dotted}")
    assert not silent, "\n".join(silent)
