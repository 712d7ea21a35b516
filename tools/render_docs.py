#!/usr/bin/env python
"""Render the notebooks to HTML documentation in _docs/ with nbconvert (Quarto, nbdev's usual renderer, is not
installable here). Each notebook is executed first so the pages show real outputs; `--no-execute` renders as committed.

    python tools/render_docs.py [NOTEBOOK ...] [--no-execute]
"""
import sys, subprocess, os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def main(args):
    execute = '--no-execute' not in args
    nbs = [Path(a) for a in args if not a.startswith('--')] or sorted((ROOT/'nbs').glob('*.ipynb'))
    out = ROOT/'_docs'; out.mkdir(exist_ok=True)
    env = {**os.environ, 'DOMAIN_TUNER_QUIET': '1'}
    for nb in nbs:
        cmd = [sys.executable, '-m', 'jupyter', 'nbconvert', '--to', 'html', '--output-dir', str(out), str(nb)]
        if execute: cmd[4:4] = ['--execute', '--ExecutePreprocessor.timeout=1200', f'--ExecutePreprocessor.cwd={ROOT/"nbs"}']
        print('rendering', nb.name, flush=True)
        subprocess.run(cmd, check=True, env=env, cwd=ROOT/'nbs')
    print(f'wrote {len(nbs)} pages to {out}')

if __name__ == '__main__': main(sys.argv[1:])
