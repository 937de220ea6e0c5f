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
