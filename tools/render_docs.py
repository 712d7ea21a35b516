#!/usr/bin/env python
"""Render the notebooks to HTML documentation in _docs/ with nbconvert (Quarto, nbdev's usual renderer, is not
installable here). Each notebook is executed first so the pages show real outputs; `--no-execute` renders as committed.
Cells that nbdev-test skips by default (`#| slow`, `#| gpu`, `#| eval: false`) are shown but not executed, as in
the test run: they are tagged `skip-execution`, which nbclient honours.

    python tools/render_docs.py [NOTEBOOK ...] [--no-execute]
"""
import sys, subprocess, os, json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SKIP = ('#| slow', '#| gpu', '#| eval: false', '#|eval: false')

def skip_flagged(nb:dict)->dict:
    "Tag the cells nbdev-test would not run, so nbconvert shows them without executing them."
    for c in nb['cells']:
        lines = ''.join(c['source']).splitlines()
        if c['cell_type'] == 'code' and any(l.strip().startswith(SKIP) for l in lines if l.startswith('#|')):
            c.setdefault('metadata', {}).setdefault('tags', []).append('skip-execution')
    return nb

def main(args):
    execute = '--no-execute' not in args
    nbs = [Path(a) for a in args if not a.startswith('--')] or sorted((ROOT/'nbs').glob('*.ipynb')) + sorted((ROOT/'nbs'/'tutorials').glob('*.ipynb'))
    out = ROOT/'_docs'; out.mkdir(exist_ok=True)
    env = {**os.environ, 'DOMAIN_TUNER_QUIET': '1'}
    for nb in map(Path.resolve, nbs):
        dest = out/nb.parent.relative_to(ROOT/'nbs'); dest.mkdir(parents=True, exist_ok=True)
        src = nb.with_name(f'.render-{nb.name}')  # beside the original: the kernel runs in the notebook's folder
        src.write_text(json.dumps(skip_flagged(json.loads(nb.read_text()))))
        cmd = [sys.executable, '-m', 'jupyter', 'nbconvert', '--to', 'html', '--output-dir', str(dest), '--output', nb.stem, str(src)]
        if execute: cmd[4:4] = ['--execute', '--ExecutePreprocessor.timeout=1200']
        print('rendering', nb.name, flush=True)
        try: subprocess.run(cmd, check=True, env=env, cwd=nb.parent)
        finally: src.unlink()
    print(f'wrote {len(nbs)} pages to {out}')

if __name__ == '__main__': main(sys.argv[1:])
