#!/usr/bin/env python
"""Run notebooks top to bottom (slow cells included) and keep the outputs that teach, so a notebook read on GitHub, in
the docs or in Colab shows its results without being run.

    python tools/run_notebooks.py [NOTEBOOK ...] [--skip-slow] [--timeout 1800]

What is kept: printed text, tables, plots and values. What is dropped: stderr (warnings and progress bars), widget
views with their text fallbacks (they show nothing outside a live kernel), and execution counts; a text output longer than 40 lines is cut to
its first 30 and last 5, temporary folders show as `<tmp>/` and times as `<time>`. Progress bars are off in the
kernel (DOMAIN_TUNER_QUIET=1). Cells flagged `#| eval: false` are not run (an install cell, a hub model), nor cells
flagged `gpu` on a machine without CUDA. A cell whose output would change from machine to machine (a timing, a probe
of this CPU) carries `#| output: false`: it runs, its output is not kept. Afterwards `nbdev-clean` leaves the outputs
as they are (it only drops metadata), and `make sync-check` still checks that notebooks and library agree.
"""
import os, re, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from render_docs import directives, has
MAX_LINES, HEAD, TAIL = 40, 30, 5

def keep(output:dict)->dict|None:
    "The output as committed, or None to drop it."
    if output.get('output_type') == 'stream':
        if output.get('name') == 'stderr': return None
        return dict(output, text=_cut(''.join(output['text'])))
    if output.get('output_type') in ('display_data', 'execute_result'):
        data = dict(output.get('data', {}))
        # a widget view (a progress bar, the dashboard) shows nothing outside a live kernel, and its text fallback
        # is a repr or a frozen bar: neither teaches
        if not data or any('widget' in k for k in data): return None
        if 'text/plain' in data: data['text/plain'] = _cut(''.join(data['text/plain']))
        out = dict(output, data=data, metadata={})
        out.pop('execution_count', None)
        if output['output_type'] == 'execute_result': out['execution_count'] = None
        return out
    return output  # errors stay: a committed error is a bug to see

_TMP = re.compile(re.escape(tempfile.gettempdir()) + r"/tmp[\w]+/")
_TIME = re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?")

def _stable(text:str)->str:
    "What changes on every run would churn the committed output: temporary folders show as `<tmp>/`, times as `<time>`."
    return _TIME.sub('<time>', _TMP.sub('<tmp>/', text))

def _cut(text:str)->str:
    text = _stable(text)
    lines = text.splitlines(True)
    if len(lines) <= MAX_LINES: return text
    return ''.join(lines[:HEAD]) + f"... ({len(lines) - HEAD - TAIL} lines not shown)\n" + ''.join(lines[-TAIL:])

def _has_cuda()->bool:
    "Cells flagged `gpu` run only where CUDA is (as nbdev-test skips them by the `gpu` flag)."
    import torch
    return torch.cuda.is_available()

def run(path:Path, skip_slow:bool=False, timeout:int=1800)->float:
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    skipped, cuda = [], _has_cuda()
    for c in nb.cells:
        if c.cell_type != 'code': continue
        ds = directives(c.source)  # the same reading of `#|` lines as the docs renderer
        if has(ds, 'eval: false') or (skip_slow and 'slow' in ds) or ('gpu' in ds and not cuda):
            skipped.append((c, c.source)); c.source = ''
    t = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name='python3',
                            resources={'metadata': {'path': str(path.parent)}})
    client.execute(env={**os.environ, 'DOMAIN_TUNER_QUIET': '1'})   # the kernel's environment, not this process's
    for c, src in skipped: c.source, c.outputs = src, []
    for c in nb.cells:
        if c.cell_type == 'code':
            kept = [] if has(directives(c.source), 'output: false') else (keep(dict(o)) for o in c.outputs)
            c.outputs = [nbformat.from_dict(o) for o in kept if o is not None]
            c.execution_count = None
    nb.metadata.pop('widgets', None)   # widget state: random ids that change on every run, and no view shows it
    nbformat.write(nb, path)
    return time.perf_counter() - t

def main(args):
    skip_slow = '--skip-slow' in args
    timeout = int(args[args.index('--timeout') + 1]) if '--timeout' in args else 1800
    every = sorted((ROOT/'nbs').glob('*.ipynb')) + sorted((ROOT/'nbs'/'tutorials').glob('*.ipynb'))
    paths = [Path(a) for a in args if a.endswith('.ipynb')] or every
    total = 0.0
    for p in paths:
        s = run(p.resolve(), skip_slow, timeout); total += s
        print(f"{p}: {s:.0f} s", flush=True)
    print(f"ran {len(paths)} notebooks in {total / 60:.1f} min")

if __name__ == '__main__': main(sys.argv[1:])
