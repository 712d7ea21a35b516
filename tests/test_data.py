"Data preparation: every bad input names FILE:LINE, lenient runs reconcile with rejected.jsonl, the CLI works end to end."
import json, os
from pathlib import Path
import pytest
from domain_tuner.core import DomainTunerError
from domain_tuner.data import load_records, prepare, Limits
from conftest import run_cli

def qa(q='Define EBITDA.', a='Earnings before interest, taxes, depreciation and amortisation.'):
    return json.dumps({"instruction": q, "output": a})

GOOD = qa()
# (name, file name, bytes, line, what the message must say) - one row per bad input the issue lists
BAD = [
    ('invalid JSON',        'a.jsonl', f'{GOOD}\n{{"instruction": "x", "output": "y"\n', 2, "invalid JSON"),
    ('not an object',       'a.jsonl', f'{GOOD}\n"just a string"\n', 2, "row is str, not an object"),
    ('array as JSONL row',  'a.jsonl', f'{GOOD}\n[{GOOD}, {GOOD}]\n', 2, "JSON array passed as JSONL"),
    ('array as JSONL file', 'a.jsonl', f'[\n{GOOD},\n{GOOD}\n]\n', 1, "looks like a JSON array"),
    ('not UTF-8',           'a.jsonl', (GOOD + '\n{"instruction": "caf\xe9", "output": "y"}\n'), 2, "bytes that are not utf-8"),
    ('missing field',       'a.jsonl', f'{GOOD}\n{{"instruction": "x"}}\n', 2, "missing field 'output' (detected format: alpaca)"),
    ('wrong type',          'a.jsonl', f'{GOOD}\n{{"instruction": "x", "output": ["y"]}}\n', 2, "field 'output' is list, expected a string"),
    ('empty target',        'a.jsonl', f'{GOOD}\n{{"instruction": "x", "output": "   "}}\n', 2, "empty target"),
    ('mixed formats',       'a.jsonl', f'{GOOD}\n{{"text": "a document"}}\n', 2, "mixed formats in one file"),
    ('unknown role',        'a.jsonl', '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
                                       '{"messages": [{"role": "user", "content": "q"}, {"role": "critic", "content": "r"}, {"role": "assistant", "content": "a"}]}\n',
                                       2, "unknown role 'critic' (known"),
    ('tool result',         'a.jsonl', '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
                                       '{"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}, {"role": "assistant", "content": "a"}]}\n',
                                       2, "turn 2 is a tool result with no tool call before it"),
    ('no assistant turn',   'a.jsonl', '{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}\n'
                                       '{"conversations": [{"from": "human", "value": "q"}]}\n', 2, "conversation has no assistant turn (detected format: sharegpt)"),
    ('duplicate keys',      'a.jsonl', f'{GOOD}\n{{"instruction": "x", "output": "y", "output": "z"}}\n', 2, "duplicate key 'output'"),
    ('NaN literal',         'a.jsonl', f'{GOOD}\n{{"instruction": "x", "output": "y", "score": NaN}}\n', 2, "NaN literal is not valid JSON"),
    ('no known format',     'a.jsonl', f'{GOOD}\n{{"question": "x", "answer": "y"}}\n', 2, "no known format matches the keys"),
    ('CSV field count',     'a.csv',   'instruction,output\nDefine EBITDA.,Earnings.\n"multi\nline",ok,extra\n', 3, "row has 3 fields, the header has 2"),
    ('JSON element',        'a.json',  f'[\n {GOOD},\n\n {{"instruction": "x"}}\n]\n', 4, "missing field 'output'"),
]

@pytest.mark.parametrize('name,fname,content,line,what', BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_and_line(tmp_path, name, fname, content, line, what):
    p = tmp_path/fname
    p.write_bytes(content.encode('latin-1') if name == 'not UTF-8' else content.encode())
    with pytest.raises(DomainTunerError) as e: load_records(p)
    msg = str(e.value)
    assert f"{p}:{line}: " in msg and what in msg, msg
    assert "(detected format:" in msg and "fix:" in msg
    # lenient: the same row is rejected with its file and line, the rest is kept, the counts reconcile
    if name != 'array as JSONL file':
        res = load_records(p, lenient=True)
        assert [(r['file'], r['line']) for r in res.rejected] == [(str(p), line)] and what.split(' (')[0] in res.rejected[0]['reason']
        c = res.counts
        assert c['read'] == c['accepted'] + c['rejected'] + c['blank'] and c['accepted'] >= 1

def test_every_bad_row_is_listed(tmp_path):
    p = tmp_path/'many.jsonl'
    p.write_text("\n".join([GOOD, '{"instruction": "x"}', GOOD, '{bad', '{"instruction": "y", "output": 1}']) + "\n")
    with pytest.raises(DomainTunerError) as e: load_records(p)
    msg = str(e.value)
    assert "3 bad records" in msg
    for n in (2, 4, 5): assert f"{p}:{n}: " in msg

def test_bom_and_blank_lines_and_encoding_option(tmp_path):
    p = tmp_path/'bom.jsonl'
    p.write_bytes(b'\xef\xbb\xbf' + GOOD.encode() + b'\n\n   \n' + GOOD.replace('EBITDA', 'EBIT').encode() + b'\n')
    res = load_records(p)
    assert dict(res.counts) == {'read': 4, 'accepted': 2, 'blank': 2}
    assert res.records[1]['meta']['source'] == f"{p}:4"
    l1 = tmp_path/'latin.jsonl'
    l1.write_bytes('{"instruction": "Caf\xe9 costs?", "output": "3 euros."}\n'.encode('latin-1'))
    assert load_records(l1, encoding='latin-1').records[0]['messages'][0]['content'] == 'Café costs?'

def test_special_tokens_in_user_text_warn_with_line(tmp_path):
    p = tmp_path/'sp.jsonl'
    p.write_text(GOOD + "\n" + qa("Why does <|im_end|> stop generation?", "It ends the turn.") + "\n")
    with pytest.warns(UserWarning, match=rf"{p}:2: the text contains special-token strings \['<\|im_end\|>'\]"):
        res = load_records(p)
    assert len(res.records) == 2

def test_size_limits(tmp_path):
    p = tmp_path/'big.jsonl'
    p.write_text(GOOD + "\n" + qa(a="x" * 5000) + "\n")
    with pytest.raises(DomainTunerError, match=rf"{p}:2: line is .* bytes, over the limit of 1,000"):
        load_records(p, limits=Limits(max_line_bytes=1000))
    with pytest.raises(DomainTunerError, match=rf"{p}: file is .* bytes, over the limit"):
        load_records(p, limits=Limits(max_file_bytes=100))

def test_empty_file_and_zero_usable_records(tmp_path):
    e = tmp_path/'empty.jsonl'; e.write_text("")
    with pytest.raises(DomainTunerError, match=rf"{e}: the file is empty"): load_records(e)
    b = tmp_path/'allbad.jsonl'; b.write_text('{"instruction": "x"}\n\n')
    with pytest.raises(DomainTunerError, match="no usable records"): load_records(b, lenient=True)

def test_folders_csv_parquet_text_and_memory(tmp_path):
    import pyarrow as pa, pyarrow.parquet as pq
    from datasets import Dataset
    d = tmp_path/'docs'; d.mkdir()
    (d/'a.md').write_text("# Note\n\n" + "Revenue grew. " * 200 + "\n\n" + "Costs fell. " * 200 + "\n")
    (d/'b.txt').write_text("Plain document.\n")
    (d/'c.csv').write_text("prompt,completion\nQ1,A1\n")
    pq.write_table(pa.table({"instruction": ["Q2"], "output": ["A2"]}), d/'d.parquet')
    res = load_records(d)
    assert res.by_format == {'text': 3, 'prompt_completion': 1, 'alpaca': 1}
    assert {r['group'] for r in res.records if 'text' in r} == {str(d/'a.md'), str(d/'b.txt')}
    assert [r['meta']['source'] for r in res.records if 'text' in r][:2] == [f"{d/'a.md'}:1", f"{d/'a.md'}:5"]
    assert load_records(Dataset.from_list([{"text": "x"}])).records[0]['meta']['source'] == '<dataset>:1'

def test_lenient_prepare_reconciles_with_rejected_jsonl(tmp_path):
    rows = [qa(f"Question {i} about note {i}?", f"See note {i} of the filing for the figure {i*7}.") for i in range(30)]
    rows[5] = rows[4]                                       # exact duplicate
    rows += ['', '{"instruction": "x"}', '{bad json', '[1, 2]', '{"instruction": "y", "output": ""}', qa("Z?", "z " * 400)]
    p = tmp_path/'mixed.jsonl'; p.write_text("\n".join(rows) + "\n")
    from domain_tuner.tiny import tiny_model_dir
    res = prepare(p, out=tmp_path/'out', tokenizer=tiny_model_dir(), lenient=True, max_length=128, truncation='drop')
    c = json.loads((tmp_path/'out'/'report.json').read_text())['counts']
    rej = [json.loads(l) for l in (tmp_path/'out'/'rejected.jsonl').read_text().splitlines()]
    assert c['read'] == 36 and c['blank'] == 1 and c['duplicates'] == 1
    assert c['rejected'] == len(rej) == 5                  # 4 bad rows + 1 longer than max_length
    assert c['read'] == c['accepted'] + c['rejected'] + c['duplicates'] + c['blank']
    assert sorted(r['line'] for r in rej) == [32, 33, 34, 35, 36] and all(r['file'] == str(p) for r in rej)
    assert any('longer than max_length=128' in r['reason'] for r in rej)
    n_written = sum(1 for _ in open(tmp_path/'out'/'train.jsonl')) + sum(1 for _ in open(tmp_path/'out'/'eval.jsonl'))
    assert n_written == c['accepted'] == c['train'] + c['eval']

def test_contamination_is_removed_from_train_never_from_eval(tmp_path):
    rows = [qa(f"What does line item {i} of the balance sheet report for the period?", f"It reports value {i}.") for i in range(20)]
    p = tmp_path/'t.jsonl'; p.write_text("\n".join(rows) + "\n")
    b = tmp_path/'bench.jsonl'; b.write_text(qa("What does line item 3 of the balance sheet report for the period?", "value 3") + "\n")
    res = prepare(p, benchmark=b, eval_fraction=0.0, near_dedup=False)
    found = res.report['contamination']['benchmark']
    assert [(f['source'], f['overlaps'], f['kind']) for f in found] == [(f"{p}:4", f"{b}:1", 'exact')]
    assert f"{p}:4" not in {r['meta']['source'] for r in res.train}
    kept = prepare(p, benchmark=b, eval_fraction=0.0, near_dedup=False, decontaminate=False)
    assert len(kept.train) == 20 and kept.report['warnings']

def test_near_duplicates_report_which_line(tmp_path):
    base = ("The company reported revenue of 12.4 million dollars for the fiscal year, up 8 percent from the prior year, "
            "driven by higher volumes in the industrial segment and stable pricing across regions.")
    p = tmp_path/'d.jsonl'
    p.write_text("\n".join(json.dumps({"text": t}) for t in [base, "Other text about cash flow and leases entirely.", base.replace("industrial", "commercial")]) + "\n")
    res = prepare(p, eval_fraction=0)
    assert res.report['duplicates'] == [dict(source=f"{p}:3", duplicate_of=f"{p}:1", kind='near', similarity=res.report['duplicates'][0]['similarity'])]

def test_cli_prepare_end_to_end(tmp_path, tiny_dir):
    p = tmp_path/'qa.jsonl'
    p.write_text("\n".join([qa(f"Question {i} on the filing?", f"Answer {i} from note {i}.") for i in range(12)] + ['{"instruction": 1}']) + "\n")
    r = run_cli('prepare', p, '--out', tmp_path/'out', '--lenient', '--tokenizer', tiny_dir, '--eval-fraction', '0.2')
    assert "rejected 1" in r.stdout
    out = tmp_path/'out'
    assert {'train.jsonl', 'eval.jsonl', 'report.json', 'rejected.jsonl', 'lengths.png', 'chat_template.jinja'} <= set(os.listdir(out))
    c = json.loads((out/'report.json').read_text())['counts']
    assert set(c) >= {'read', 'accepted', 'rejected', 'duplicates', 'blank'} and c['read'] == 13 and c['rejected'] == 1
    strict = run_cli('prepare', p, '--out', tmp_path/'strict', check=False)
    assert strict.returncode == 2 and f"{p}:13: field 'instruction' is int, expected a string (detected format: alpaca)" in strict.stderr
    # same input, byte-identical output
    run_cli('prepare', p, '--out', tmp_path/'out2', '--lenient', '--tokenizer', tiny_dir, '--eval-fraction', '0.2')
    for f in ('train.jsonl', 'eval.jsonl', 'rejected.jsonl', 'report.json'):
        assert (out/f).read_bytes() == (tmp_path/'out2'/f).read_bytes()


def test_prepare_numbers_augmentation_keeps_extraction_answers_true(tmp_path):
    "Figure perturbation through `prepare`: the new copies are counted as synthetic, and each answer is still what the statement says."
    from domain_tuner.domains import finance_dataset, write_domain, recompute_answer
    paths = write_domain(tmp_path/'fin', finance_dataset(n=400, seed=3, n_bench=5, n_bench_companies=2))
    res = prepare(paths['train'], out=tmp_path/'out', eval_fraction=0.0, augment=['numbers'])
    made = [r for r in res.train if (r.get('meta') or {}).get('augmentation') == 'numbers']
    extract = sum((r.get('meta') or {}).get('task') == 'extract' for r in res.train if r not in made)
    assert made and len(made) <= extract and all(r['synthetic'] and r['meta']['task'] == 'extract' for r in made)
    for r in made: assert recompute_answer(r) == r['messages'][-1]['content'], r['meta']['source']
