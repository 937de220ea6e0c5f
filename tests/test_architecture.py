"""`analysis` must run on a real scan: it never imports the simulator or validation."""

import pkgutil
import subprocess
import sys

import analysis


def test_analysis_imports_neither_synthcal_nor_validation():
    modules = [m.name for m in pkgutil.walk_packages(analysis.__path__, "analysis.")]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('synthcal', 'validation'))\n"
            "print('BAD=' + ','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(modules) >= 10
    assert result.stdout.strip().splitlines()[-1] == "BAD="


def test_ci_runs_the_readme_commands():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    blocks = readme.split("```")[1::2]
    run_quick, run_tests = blocks[0].strip(), blocks[1].strip()
    assert "synthcal run scenarios/quick.toml" in run_quick and "pytest" in run_tests
    assert run_tests in (root / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_importing_the_figures_leaves_matplotlib_backend_alone():
    # a module that switched the backend at import broke Jupyter's inline figures
    code = ("import matplotlib; matplotlib.use('svg'); import validation.figures, validation.report, "
            "analysis.pores\n"
            "import numpy as np, tempfile, os\n"
            "validation.figures.error_vs_cc([np.ones(3)], [np.ones(3)], ['a'], os.path.join(tempfile.mkdtemp(), 'f.png'))\n"
            "print(matplotlib.get_backend())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "svg"


def test_every_arch_parameter_defaults_to_the_cpu():
    """No kernel inherits whatever backend ran before in the process (`arch=None` once did)."""
    import importlib
    import inspect

    import synthcal
    import validation

    names = [m.name for package, prefix in ((analysis, "analysis."), (synthcal, "synthcal."), (validation, "validation."))
             for m in pkgutil.walk_packages(package.__path__, prefix)]
    checked = 0
    for name in names:
        module = importlib.import_module(name)
        for _, function in inspect.getmembers(module, inspect.isfunction):
            parameter = inspect.signature(function).parameters.get("arch")
            if parameter is not None and function.__module__ == name:
                assert parameter.default in ("cpu", inspect.Parameter.empty), f"{name}.{function.__name__}"
                checked += 1
    assert checked >= 15
