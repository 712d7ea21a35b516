#!/usr/bin/env python
"""Render the notebooks to HTML documentation in _docs/ with nbconvert (Quarto, nbdev's usual renderer, is not
installable here). Each notebook is executed first so the pages show real outputs; `--no-execute` renders the outputs
as committed. What a reader sees follows nbdev's conventions:
- `#| hide` cells are left out, and `#| output: false` cells show their source without their output;
- an `#| export` cell shows, instead of its source, each public name it defines with its signature, its docstring and
  a parameter table (type, default and the docment written beside each parameter); `#| exports` keeps its source too;
- cells that nbdev-test skips by default (`#| slow`, `#| gpu`, `#| eval: false`) are shown but not executed, as in the
  test run (tagged `skip-execution`, which nbclient honours).

    python tools/render_docs.py [NOTEBOOK ...] [--no-execute]
"""
import ast, importlib, inspect, json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def directives(src:str)->list[str]:
    "The `#| ...` directive lines at the top of a cell, without the prefix."
    out = []
    for line in src.splitlines():
        if not line.startswith('#|'): break
        out.append(line[2:].strip())
    return out

def has(ds:list[str], directive:str)->bool:
    "Whether the directive lines `ds` hold `directive` (`'eval: false'`), however it is spaced."
    return directive.replace(' ', '') in (d.replace(' ', '') for d in ds)

def public_names(src:str)->list[str]:
    "Top-level functions and classes a cell defines that do not start with an underscore."
    try: tree = ast.parse(src)
    except SyntaxError: return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and not n.name.startswith('_')]

def _cell_text(s:str)->str: return str(s).replace('|', '\\|').replace('\n', ' ')

def api_markdown(obj, name:str)->str:
    "A name's signature, docstring and a parameter table from its docments, as markdown."
    from fastcore.docments import docments
    target = obj.__init__ if inspect.isclass(obj) else obj
    try: sig = str(inspect.signature(target)).replace('(self, ', '(').replace('(self)', '()')
    except (TypeError, ValueError): sig = '(...)'
    kind = 'class' if inspect.isclass(obj) else 'def'
    lines = [f"### `{name}`", "", f"```python\n{kind} {name}{sig}\n```", ""]
    if doc := inspect.getdoc(obj): lines += [f"*{doc.strip()}*", ""]
    try: params = {k: v for k, v in docments(target, full=True).items() if k not in ('self', 'return')}
    except Exception: params = {}
    if params:
        lines += ["| parameter | type | default | what it is |", "|---|---|---|---|"]
        for k, v in params.items():
            anno = '' if v['anno'] is inspect._empty else getattr(v['anno'], '__name__', v['anno'])
            default = '' if v['default'] is inspect._empty else repr(v['default'])
            star = '**' if v.get('kind') == inspect.Parameter.VAR_KEYWORD else '*' if v.get('kind') == inspect.Parameter.VAR_POSITIONAL else ''
            lines.append(f"| `{star}{k}` | {_cell_text(anno)} | {_cell_text(default)} | {_cell_text(v['docment'] or '')} |")
        lines.append("")
    return '\n'.join(lines)

def _module(nb:dict)->str|None:
    for c in nb['cells']:
        for d in directives(''.join(c['source'])) if c['cell_type'] == 'code' else []:
            if d.startswith('default_exp'): return d.split(None, 1)[1].strip()
    return None

def docs_view(nb:dict)->dict:
    """The notebook as a reader should see it: hidden and exported cells tagged `remove_cell` (they still run, so later
    cells can use what they define), each public export followed by its API, flagged cells tagged `skip-execution`."""
    mod = _module(nb)
    lib = importlib.import_module(f"domain_tuner.{mod}") if mod else None
    cells = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        ds = directives(src) if c['cell_type'] == 'code' else []
        tags = c.setdefault('metadata', {}).setdefault('tags', [])
        if 'slow' in ds or 'gpu' in ds or has(ds, 'eval: false'): tags.append('skip-execution')  # as nbdev-test
        if has(ds, 'output: false'): tags.append('remove_output')  # Quarto's directive
        cells.append(c)
        if 'hide' in ds or any(d.startswith('exporti') for d in ds): tags.append('remove_cell')
        elif any(d.split()[:1] == ['export'] for d in ds):
            tags.append('remove_cell')
            cells += [dict(cell_type='markdown', metadata={}, source=api_markdown(getattr(lib, n), n))
                      for n in public_names(src) if lib is not None and hasattr(lib, n)]
        elif ds: c['source'] = '\n'.join(src.splitlines()[len(ds):]).lstrip('\n')  # directives are for nbdev, not the reader
    return dict(nb, cells=cells)

def main(args):
    execute = '--no-execute' not in args
    nbs = [Path(a) for a in args if not a.startswith('--')] or sorted((ROOT/'nbs').glob('*.ipynb')) + sorted((ROOT/'nbs'/'tutorials').glob('*.ipynb'))
    out = ROOT/'_docs'; out.mkdir(exist_ok=True)
    env = {**os.environ, 'DOMAIN_TUNER_QUIET': '1'}
    for nb in map(Path.resolve, nbs):
        dest = out/nb.parent.relative_to(ROOT/'nbs'); dest.mkdir(parents=True, exist_ok=True)
        src = nb.with_name(f'.render-{nb.name}')  # beside the original: the kernel runs in the notebook's folder
        src.write_text(json.dumps(docs_view(json.loads(nb.read_text()))))
        conv = [sys.executable, '-m', 'jupyter', 'nbconvert']
        # run first, then hide: nbconvert removes tagged cells before it executes, and hidden cells define what later use
        run = conv + ['--to', 'notebook', '--execute', '--inplace', '--ExecutePreprocessor.timeout=1200', str(src)]
        html = conv + ['--to', 'html', '--output-dir', str(dest), '--output', nb.stem, '--TagRemovePreprocessor.enabled=True',
                       '--TagRemovePreprocessor.remove_cell_tags=remove_cell',
                       '--TagRemovePreprocessor.remove_all_outputs_tags=remove_output', str(src)]
        print('rendering', nb.name, flush=True)
        try:
            if execute: subprocess.run(run, check=True, env=env, cwd=nb.parent)
            subprocess.run(html, check=True, env=env, cwd=nb.parent)
        finally: src.unlink()
    print(f'wrote {len(nbs)} pages to {out}')

if __name__ == '__main__': main(sys.argv[1:])
