"""The Colab-like install check (`make colab-check`), in the slow suite: Colab's preinstalled versions stay as they are
after the tutorials' install cell, `pip check` is clean, and the library and the tutorials' first cells run on them."""
import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.mark.slow
def test_colab_like_install(tmp_path):
    r = subprocess.run([sys.executable, ROOT/'tools'/'colab_check.py', '--venv', tmp_path/'colab'], capture_output=True,
                       text=True, timeout=1800)
    lines = [l for l in r.stdout.splitlines() if l.startswith('[colab-check]')]
    print('\n'.join(lines))
    assert r.returncode == 0, '\n'.join(lines) + r.stderr[-3000:]
    assert any("Colab's versions kept: ok" in l for l in lines) and any('pip check: ok' in l for l in lines)
