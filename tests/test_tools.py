"The notebook tools: what `make outputs` keeps in a committed notebook, and what the docs renderer shows."
import json, sys, tempfile
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import run_notebooks, render_docs

def _nb(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
    return nb

def test_keep_drops_what_does_not_teach():
    assert run_notebooks.keep(dict(output_type='stream', name='stderr', text='progress 10%')) is None
    widget = dict(output_type='display_data', data={'application/vnd.jupyter.widget-view+json': {}}, metadata={})
    assert run_notebooks.keep(widget) is None
    bar = dict(output_type='display_data', metadata={}, data={'application/vnd.jupyter.widget-view+json': {},
                                                             'text/plain': 'Converting: 100%|##########| 12/12'})
    assert run_notebooks.keep(bar) is None  # a progress bar's text fallback is not kept either
    table = dict(output_type='execute_result', execution_count=7, metadata={'x': 1}, data={'text/plain': 'a | b'})
    kept = run_notebooks.keep(table)
    assert kept['data'] == {'text/plain': 'a | b'} and kept['execution_count'] is None and kept['metadata'] == {}

def test_long_text_is_cut_and_temp_folders_are_stable():
    text = ''.join(f"line {i}\n" for i in range(100))
    cut = run_notebooks._cut(text)
    assert cut.startswith('line 0\n') and cut.endswith('line 99\n') and '(65 lines not shown)' in cut
    tmp = tempfile.mkdtemp()
    assert run_notebooks._stable(f"saved to {tmp}/run/adapter") == 'saved to <tmp>/run/adapter'
    assert run_notebooks._stable('"time": "2026-12-01T18:47:30", Generated 2026-12-01 18:47 by') == \
        '"time": "<time>", Generated <time> by'

def test_run_keeps_outputs_honours_directives_and_restores_skipped_cells():
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)/'t.ipynb'
        nb = _nb("print('kept')", "#| output: false\nprint('a timing')",
                 "#| eval: false\nraise SystemExit('never run')",
                 "#| gpu\nraise SystemExit('needs CUDA')", "import sys; print('warning', file=sys.stderr); 6*7")
        nb.metadata['widgets'] = {'application/vnd.jupyter.widget-state+json': {'state': {'a1b2': {}}}}
        nbformat.write(nb, path)
        run_notebooks.run(path)
        done = nbformat.read(path, as_version=4)
        assert 'widgets' not in done.metadata                      # random model ids: they would churn every run
        cells = done.cells
        assert [o['text'] for o in cells[0].outputs] == ['kept\n']
        assert cells[1].outputs == []                               # it ran, its output is not kept
        assert cells[2].source.startswith('#| eval: false') and cells[2].outputs == []
        assert cells[3].source.startswith('#| gpu') and cells[3].outputs == []   # no CUDA here: not run
        assert [o['data']['text/plain'] for o in cells[4].outputs] == ['42']      # stderr dropped, the value kept

def test_docs_view_hides_what_nbdev_hides():
    nb = json.loads(nbformat.writes(_nb("#| hide\nfrom fastcore.test import *", "#| output: false\nprint(1)",
                                        "#| slow\nx = 1")))
    cells = render_docs.docs_view(nb)['cells']
    assert 'remove_cell' in cells[0]['metadata']['tags']
    assert 'remove_output' in cells[1]['metadata']['tags'] and cells[1]['source'] == 'print(1)'
    assert 'skip-execution' in cells[2]['metadata']['tags'] and cells[2]['source'] == 'x = 1'
