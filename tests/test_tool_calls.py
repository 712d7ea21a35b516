"""Tool-call conversations (issue 25): LLaMA-Factory's `glaive_toolcall_en_demo.json` is read by `domain-tuner prepare`
with every row accounted for, through a template that renders tools (Hermes' `tool_use`, also as a tokenizer's named
template) and through one that does not (the Hermes-style fallback); the loss covers the calls and the answers, never
the tools' results."""
import json, shutil
from pathlib import Path
import pytest
from domain_tuner.models import load_tokenizer
from domain_tuner.template import encode
from conftest import run_cli

SHARED = Path(__file__).resolve().parents[2]/'shared'/'data'
GLAIVE = SHARED/'llama-factory'/'glaive_toolcall_en_demo.json'
HERMES = SHARED/'chat-templates'/'NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja'
need = pytest.mark.skipif(not (GLAIVE.exists() and HERMES.exists()),
                          reason="LLaMA-Factory's glaive file or Hermes' template is not in ../shared/data")

def _tokenizer(tmp_path, tiny_dir, kind):
    "The tiny tokenizer with: its own ChatML (no tools), Hermes' tool_use template, or both as named templates."
    tok = load_tokenizer(tiny_dir)
    if kind == 'hermes': tok.chat_template = HERMES.read_text()
    if kind == 'named': tok.chat_template = {'default': tok.chat_template, 'tool_use': HERMES.read_text()}
    d = tmp_path/f'tok-{kind}'; tok.save_pretrained(d)
    shutil.copy(Path(tiny_dir)/'config.json', d)  # `--tokenizer` takes a model folder
    return d

@need
@pytest.mark.parametrize('kind', ['fallback', 'hermes', 'named'])
def test_glaive_file_is_prepared_with_every_row_accounted(tmp_path, tiny_dir, kind):
    out = tmp_path/'prep'
    run_cli('prepare', GLAIVE, '--tokenizer', _tokenizer(tmp_path, tiny_dir, kind), '--out', out, '--lenient')
    rep = json.loads((out/'report.json').read_text()); c = rep['counts']
    assert c['read'] == 300 and c['read'] == c['accepted'] + c['rejected'] + c['duplicates'] + c['blank'], c
    assert c['rejected'] <= 20, c  # measured: 11, each overlapping the eval split (contamination), with its reason
    assert all(r.startswith('contaminated') for r in rep['rejected_reasons']), rep['rejected_reasons']
    assert sum(d['kind'] == 'exact' for d in rep['duplicates']) == 35  # the file's exact duplicates, counted apart
    rows = [json.loads(l) for l in (out/'train.jsonl').read_text().splitlines()]
    tool_rows = [r for r in rows if any(m.get('tool_calls') for m in r['messages'])]
    assert len(tool_rows) >= 100 and all(r.get('tools') for r in tool_rows)

@need
@pytest.mark.parametrize('kind', ['fallback', 'hermes'])
def test_masks_train_calls_and_answers_never_results(tmp_path, tiny_dir, kind):
    "Token by token on the file's first rows with a call: every trained token lies in an assistant turn's text."
    from domain_tuner.formats import normalize
    tok = load_tokenizer(_tokenizer(tmp_path, tiny_dir, kind))
    recs = [normalize(r)[0] for r in json.loads(GLAIVE.read_text())]
    recs = [r for r in recs if any(m.get('tool_calls') for m in r['messages'])][:10]
    for r in recs:
        ex = encode(r, tok, template=None)
        trained = tok.decode([t for t in ex['labels'] if t != -100])
        for m in r['messages']:
            if m['role'] == 'tool': assert m['content'][:40] not in trained  # results are context
            if m.get('tool_calls'):
                for c in m['tool_calls']: assert f'"name": "{c["function"]["name"]}"' in trained  # calls are trained
            if m['role'] == 'assistant' and m['content']: assert m['content'][:40] in trained
        assert trained.count('<|im_end|>') == sum(m['role'] == 'assistant' for m in r['messages'])  # each turn stops

def test_prepare_keeps_the_order_inside_tool_schemas_and_calls(tmp_path, tiny_dir):
    # The prompt shows a tool's schema and a call's arguments in their own key order. A prepared file that sorted
    # them trained the model on one order and served it another: the demo's model then wrote the schema's
    # {"type": "object", "properties": ...} as the call's arguments on every call.
    from domain_tuner.prepare import prepare
    from domain_tuner.tools import CALCULATE
    call = dict(type='function', function=dict(name='calculate', arguments=dict(expression='1 / 4 * 100', decimals=1)))
    rec = dict(tools=[CALCULATE], messages=[dict(role='user', content='What share is 1 of 4?'),
                                            dict(role='assistant', content='', tool_calls=[call]),
                                            dict(role='tool', content='25.0'), dict(role='assistant', content='25.0%')])
    (tmp_path/'d.jsonl').write_text(json.dumps(rec) + '\n')
    prepare([tmp_path/'d.jsonl'], out=tmp_path/'p', tokenizer=tiny_dir, eval_fraction=0)
    row = json.loads((tmp_path/'p'/'train.jsonl').read_text().splitlines()[0])
    assert json.dumps(row['tools']) == json.dumps([CALCULATE])
    assert list(row['messages'][1]['tool_calls'][0]['function']['arguments']) == ['expression', 'decimals']
