"""The report page loads in headless Chromium with every figure and no broken link."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from validation.report import write_index

CHECK_SCRIPT = """
<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const out = document.createElement('div');
  out.id = 'synthcal-check';
  out.textContent = `images=${imgs.length} broken=${broken}`;
  document.body.appendChild(out);
});
</script>
"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is needed to check the report page: apt-get install chromium")


def check_in_browser(index_html, tmp_path):
    """Load the page in headless Chromium; count its images and broken ones."""
    page = tmp_path / "check.html"
    text = Path(index_html).read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>")
    page.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    match = re.search(r'id="synthcal-check">images=(\d+) broken=(\d+)<', result.stdout)
    assert match, f"page did not load in Chromium: {result.stderr[-1000:]}"
    return int(match.group(1)), int(match.group(2))


def _links(index_html):
    return re.findall(r'(?:href|src)="(?!data:)([^"#]+)"', Path(index_html).read_text(encoding="utf-8"))


def test_minimal_report_loads(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "line.png")
    plt.close(fig)
    write_index(tmp_path, title="t", scenario_toml="name = 't'", scores={"steps": []},
                figures=[("line.png", "a line")])
    images, broken = check_in_browser(tmp_path / "index.html", tmp_path)
    assert images == 1 and broken == 0


def test_tiny_run_report(tiny_report, tmp_path):
    index = tiny_report / "index.html"
    images, broken = check_in_browser(index, tmp_path)
    pngs = list(tiny_report.glob("*.png"))
    assert images == len(pngs) >= 8 and broken == 0
    for link in _links(index):
        assert (tiny_report / link).is_file(), link
