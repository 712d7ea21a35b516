import os, subprocess, sys
from pathlib import Path
import pytest

os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

ROOT = Path(__file__).resolve().parents[1]

def run_cli(*args, check=True, env=None, timeout=600, cwd=None):
    "Run `domain-tuner ARGS` in a subprocess, as a user would; return the CompletedProcess."
    e = {**os.environ, 'DOMAIN_TUNER_QUIET': '1', **(env or {})}
    r = subprocess.run([sys.executable, '-m', 'domain_tuner.cli', *map(str, args)], capture_output=True, text=True,
                       env=e, timeout=timeout, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"domain-tuner {' '.join(map(str, args))} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r

@pytest.fixture(scope='session')
def tiny_dir():
    from domain_tuner.tiny import tiny_model_dir
    return tiny_model_dir()
