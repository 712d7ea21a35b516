#!/usr/bin/env python
"""Convert between a plain-text notebook draft and .ipynb (authoring aid; the .ipynb is the source of truth).

Draft format: cells start with a line `# %%` (code) or `# %% [md]` (markdown). Markdown lines are written raw.
  python tools/nbconv.py draft.py nbs/00_core.ipynb      # draft -> notebook
  python tools/nbconv.py nbs/00_core.ipynb draft.py      # notebook -> draft
"""
import json, sys
from pathlib import Path

def py2nb(src:str)->dict:
    cells, kind, buf = [], None, []
    def flush():
        if kind is None: return
        text = '\n'.join(buf).strip('\n')
        if not text: return
        c = dict(cell_type=kind, metadata={}, source=text.splitlines(True))
        if kind == 'code': c.update(execution_count=None, outputs=[])
        cells.append(c)
    for line in src.splitlines():
        if line.startswith('# %%'):
            flush(); buf = []
            kind = 'markdown' if '[md]' in line else 'code'
        else: buf.append(line)
    flush()
    return dict(cells=cells, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
                nbformat=4, nbformat_minor=5)

def nb2py(nb:dict)->str:
    out = []
    for c in nb['cells']:
        out.append('# %% [md]' if c['cell_type'] == 'markdown' else '# %%')
        out.append(''.join(c['source']))
        out.append('')
    return '\n'.join(out)

if __name__ == '__main__':
    a, b = map(Path, sys.argv[1:3])
    if a.suffix == '.ipynb': b.write_text(nb2py(json.loads(a.read_text())))
    else: b.write_text(json.dumps(py2nb(a.read_text()), indent=1, ensure_ascii=False) + '\n')
