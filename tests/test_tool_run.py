"""The calculator inside a run (issue 25): `[run] builtin_arithmetic = calculator` writes ratio and growth answers as
calculator calls, `[eval] tool_loop` scores a method a second time through the tool loop, and the run record's
`tools.<method>` block (exact match per task without and with the tools, paired) is what the README reads."""
import json
import pytest
from domain_tuner.run import run
from domain_tuner.plan import plan_run
from domain_tuner.settings import parse_settings
from domain_tuner.core import DomainTunerError

SETTINGS = """
[run]
name = calculator
out = {out}
methods = lora
builtin_examples = 160
builtin_arithmetic = calculator
export = lora
[model]
base = builtin:finance-base
[data.tasks]
files = builtin:finance-reports/train
eval_fraction = 0.05
[train]
batch_size = 4
max_length = 768
lr = 1e-3
logging_steps = 1
[stage.tasks]
data = tasks
max_steps = 2
[eval]
bench = builtin:finance-reports/bench/ratio, builtin:finance-reports/bench/growth, builtin:finance-reports/bench/extract
metrics = exact_match, invented_figure, over_abstention
limit = 4
after_each_stage = false
max_new_tokens = 24
batch_size = 16
tool_loop = lora
"""

@pytest.fixture(scope='module')
def tool_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('tools')/'run'
    res = run(plan_run(parse_settings(SETTINGS.format(out=out), 'tools.ini')), plot=None)
    return res, json.loads((out/'run.json').read_text())

def test_the_training_data_calls_the_calculator(tool_run):
    res, _ = tool_run
    recs = res.prepared['tasks'].train + res.prepared['tasks'].eval
    calls = [r for r in recs if r.get('meta', {}).get('task') in ('ratio', 'growth')]
    assert calls and all(r['tools'][0]['function']['name'] == 'calculate' for r in calls)
    for r in calls:  # the call, the result read back, then the answer that states it
        call, result, answer = r['messages'][-3:]
        assert call['tool_calls'][0]['function']['name'] == 'calculate' and result['role'] == 'tool'
        assert result['content'].lstrip('-') in answer['content']
    assert any(r.get('tools') for r in recs if r.get('meta', {}).get('task') not in ('ratio', 'growth'))

def test_the_record_pairs_each_task_without_and_with_the_tools(tool_run):
    res, rec = tool_run
    t = rec['tools']['lora']
    assert set(t['by_task']) == {'ratio', 'growth', 'extract'}
    for x in t['by_task'].values():
        d, lo, hi = x['paired_difference']
        assert x['n'] == 4 and lo <= d <= hi and abs(d - (x['with_tools'] - x['without'])) < 1e-9
    assert {'calls', 'unreadable_calls', 'errors', 'answers_after_a_call', 'results_used'} <= set(t['counts'])
    assert t['n'] == 12 and res.tool_evals['lora'].meta['tools'] == t['counts']

def test_report_readme_and_modelfile_show_the_calculator(tool_run):
    from domain_tuner.report import results_markdown
    res, rec = tool_run
    assert 'With the calculator: the same items through the tool loop' in (res.out/'report.md').read_text()
    assert '**lora** with the calculator offered' in results_markdown([rec])
    mf = (res.out/'export'/'Modelfile').read_text()  # the exported model's Modelfile offers the tool it was trained on
    assert '{{ if .ToolCalls }}' in mf and '"name": "calculate"' in mf

def test_an_unknown_arithmetic_names_its_line(tmp_path):
    s = SETTINGS.format(out=tmp_path/'r').replace('builtin_arithmetic = calculator', 'builtin_arithmetic = abacus')
    with pytest.raises(DomainTunerError) as e: run(plan_run(parse_settings(s, 'tools.ini')), plot=None)
    assert 'tools.ini:7' in str(e.value) and "unknown arithmetic 'abacus'" in str(e.value)
