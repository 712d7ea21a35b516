#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb (nbdev's own README build needs Quarto, which is not installable here).

Markdown cells are copied; code cells become ```python blocks (unless `#| echo: false`), with their text outputs
below them and their markdown outputs as markdown; cells whose first lines carry `#| hide` are left out and `#|`
directive lines are dropped. `--check` exits 1 if README.md is stale. `--results` first refreshes the index's results
cell from the run records in nbs/results/ (`domain_tuner.report.results_markdown`): the README's figures are generated.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT/'nbs'/'index.ipynb'

def _directives(src):
    return [l for l in src.splitlines() if l.startswith('#|')]

def render(nb:dict)->str:
    out = ["<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->", ""]
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': out += [src.strip().replace('](images/', '](nbs/images/'), '']; continue  # README sits one folder up
        ds = _directives(src)
        if any('hide' in d for d in ds): continue
        code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
        if code and not any('echo: false' in d for d in ds): out += ['```python', code, '```', '']
        for o in c.get('outputs', []):
            md = ''.join(o.get('data', {}).get('text/markdown', ''))
            if md.strip(): out += [md.rstrip(), '']; continue  # generated markdown (the results tables) goes in as markdown
            txt = ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', ''))
            if txt.strip(): out += ['```', txt.rstrip(), '```', '']
    return '\n'.join(out).rstrip() + '\n'

def refresh_results(nb:dict)->dict:
    "Set the results cell's output to what `results_markdown` writes from nbs/results/demo_seed*.json."
    sys.path.insert(0, str(ROOT))
    from domain_tuner.report import results_markdown, read_results
    cell = next(c for c in nb['cells'] if c['cell_type'] == 'code' and 'results_markdown' in ''.join(c['source']))
    cell['outputs'] = [dict(output_type='execute_result', execution_count=None, metadata={},
                            data={'text/markdown': results_markdown(*read_results(ROOT/'nbs'/'results')), 'text/plain': '<IPython.core.display.Markdown object>'})]
    return nb

if __name__ == '__main__':
    nb = json.loads(NB.read_text())
    if '--results' in sys.argv:
        nb = refresh_results(nb); NB.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    text = render(nb)
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text() == text
        print('README.md is up to date' if ok else 'README.md is stale: run `python tools/readme.py`')
        sys.exit(0 if ok else 1)
    readme.write_text(text); print(f'wrote {readme}')
