"""The worked examples in examples/ run as scripts and report what their properties found."""

import os
import subprocess
import sys

from conftest import ROOT


def test_third_party_property_example_runs_and_reports_worst_cases():
    # this checkout's packages first, whatever is installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "property_test_third_party.py")],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = [line for line in result.stdout.splitlines() if not line.startswith("[Taichi]")]
    for texture in ("speckle", "granular"):
        for normalization in ("'phase'", "None"):
            assert any(line.startswith(f"phase_cross_correlation, normalization={normalization}, {texture}: "
                                       "largest error") for line in report), report
    assert sum(line.startswith("porespy.local_thickness mean radius / truth") for line in report) == 2, report
