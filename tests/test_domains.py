"Domain data: consistent statements, recomputable answers, leak-free benchmarks, byte-identical files per seed."
import hashlib, json, os
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest
from domain_tuner.domains import (finance_dataset, medical_dataset, legal_dataset, canary_set, general_tasks, write_domain,
                                  write_jsonl, make_company, company_names, check_statements, recompute_answer, parse_statement,
                                  statement_text, fmt_money, fmt_pct, fmt_ratio, fmt_growth, FINANCE_GLOSSARY)
from domain_tuner.core import DomainTunerError

@pytest.fixture(scope='module')
def fin(): return finance_dataset(n=10_000, seed=0)

def _prompt(rec): return rec['messages'][0]['content']

def test_statements_balance():
    for name in company_names(500, seed=3):
        co = make_company(name, seed=3)
        check_statements(co)
        for y, f in co['years'].items():
            assert f['total_assets'] == f['total_liabilities'] + f['equity']
            assert f['gross_profit'] == f['revenue'] - f['cogs']
            assert f['net_income'] == f['operating_income'] - f['interest'] - f['tax']
            assert f['net_change'] == f['cfo'] + f['cfi'] + f['cff']
            # the rendered text carries the same numbers
            parsed = parse_statement('\n\n'.join(statement_text(co, y, s) for s in ('income', 'balance', 'cashflow')))
            assert parsed[(y, 'Total assets')] == f['total_assets'] and parsed[(y, 'Net change in cash')] == f['net_change']

def test_broken_statement_is_named():
    co = make_company('Maple Media Inc.'); y = max(co['years']); co['years'][y]['gross_profit'] += 1
    with pytest.raises(DomainTunerError, match=f"Maple Media Inc. fiscal {y}.*gross profit = revenue - COGS"): check_statements(co)

def test_formats():
    assert fmt_money(42) == '$4.2 million' and fmt_money(-5) == '-$0.5 million' and fmt_money(123456) == '$12,345.6 million'
    assert fmt_pct(1, 3) == '33.3%' and fmt_ratio(2675, 1000) == '2.68' and fmt_ratio(1, 1) == '1.00'
    assert fmt_growth(100, 112) == 'up 12.0%' and fmt_growth(1000, 955) == 'down 4.5%'

def test_finance_sizes_and_tasks(fin):
    assert len(fin['train']) == 10_000
    tasks = {r['meta']['task'] for r in fin['train']}
    assert tasks == {'extract', 'ratio', 'growth', 'glossary'}
    assert set(fin['bench']) == {'extract', 'ratio', 'growth', 'glossary'}
    assert all(len(v) >= 100 for v in fin['bench'].values())
    assert len(FINANCE_GLOSSARY) == 60
    assert all(r['messages'][-1]['role'] == 'assistant' and r['messages'][-1]['content'] for r in fin['train'])
    assert all('text' in d and d['group'] for d in fin['documents'])

def test_every_answer_recomputes(fin):
    recs = [r for r in fin['train'] if r['meta']['task'] != 'glossary'] + \
           [r for k, v in fin['bench'].items() if k != 'glossary' for r in v]
    assert len(recs) > 9000
    for r in recs: assert recompute_answer(r) == r['messages'][-1]['content'], _prompt(r)
    for r in fin['train'] + fin['bench']['glossary']:
        if r['meta']['task'] == 'glossary':
            d = FINANCE_GLOSSARY[r['meta']['term']]; assert r['messages'][-1]['content'] == d[0].upper() + d[1:] + '.'

def test_finance_bench_never_overlaps_training(fin):
    train_prompts = {_prompt(r) for r in fin['train']}
    train_cos = set(fin['companies']['train'])
    assert not train_cos & set(fin['companies']['bench'])
    for task, recs in fin['bench'].items():
        assert not [r for r in recs if _prompt(r) in train_prompts], task
        if task != 'glossary':
            assert not {r['meta']['company'] for r in recs} & train_cos
            assert not [r for r in recs if any(c in _prompt(r) for c in list(train_cos)[:50])]
    # documents never mention a benchmark company
    bench_cos = set(fin['companies']['bench'])
    assert not [d for d in fin['documents'] if any(c in d['text'] for c in bench_cos)]
    # the glossary benchmark asks the same terms with phrasings training never uses
    templ = lambda r: _prompt(r).replace(r['meta']['term'], '{term}')
    assert not {templ(r) for r in fin['bench']['glossary']} & {templ(r) for r in fin['train'] if r['meta']['task'] == 'glossary'}

def test_medical_and_legal_benchmarks_held_out():
    for data in (medical_dataset(), legal_dataset()):
        train = {_prompt(r) for r in data['train']}
        for task, recs in data['bench'].items():
            assert recs and not [r for r in recs if _prompt(r) in train], task
    med = medical_dataset()
    seen = {r['meta']['item'] for r in med['train'] if r['meta']['task'] == 'word_parts'}
    assert not seen & {r['meta']['item'] for r in med['bench']['word_parts']}
    leg = legal_dataset()
    tr = {(r['meta']['item'], r['meta']['template']) for r in leg['train'] if r['meta']['task'] == 'clause_type'}
    assert not tr & {(r['meta']['item'], r['meta']['template']) for r in leg['bench']['clause_type']}

def test_canary_and_general_tasks_disjoint():
    can = canary_set()
    assert len(can) == 80 and len({_prompt(r) for r in can}) == 80
    cp = {_prompt(r) for r in can if r['meta']['task'] != 'saying'}
    assert not [r for r in general_tasks(5000) if _prompt(r) in cp]
    for r in can:
        if r['meta']['task'] == 'add':
            a, b = map(int, _prompt(r).removeprefix('What is ').removesuffix('?').split(' plus '))
            assert int(r['messages'][-1]['content']) == a + b

def _digest(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}

def test_same_seed_same_bytes(tmp_path):
    for i in (1, 2):
        write_domain(tmp_path/f'fin{i}', finance_dataset(n=1500, seed=7, n_bench=40), canary=canary_set())
        write_domain(tmp_path/f'med{i}', medical_dataset(seed=7))
        write_domain(tmp_path/f'leg{i}', legal_dataset(n_train=300, n_bench=50, seed=7))
    for k in ('fin', 'med', 'leg'): assert _digest(tmp_path/f'{k}1') == _digest(tmp_path/f'{k}2')
    other = tmp_path/'fin_seed8'; write_domain(other, finance_dataset(n=1500, seed=8, n_bench=40))
    assert _digest(other)['train.jsonl'] != _digest(tmp_path/'fin1')['train.jsonl']
    manifest = json.loads((tmp_path/'fin1'/'manifest.json').read_text())
    assert manifest['train']['records'] == 1500 and manifest['canary']['records'] == 80

def test_files_load_with_the_data_loader(tmp_path):
    from domain_tuner.data import load_records
    data = finance_dataset(n=500, seed=1, n_bench=20)
    paths = write_domain(tmp_path, data)
    for name in ('train', 'documents', 'bench_ratio'):
        got = load_records([paths[name]])
        recs = list(getattr(got, 'records', got))
        src = data['train'] if name == 'train' else data['documents'] if name == 'documents' else data['bench']['ratio']
        assert len(recs) == len(src)
        for a, b in zip(recs, src):
            assert a.get('messages') == b.get('messages') and a.get('text', '')[:50] == b.get('text', '')[:50]
            assert a['group'] == b['group'] and a['meta']['task' if 'messages' in b else 'kind'] == b['meta']['task' if 'messages' in b else 'kind']

def test_write_jsonl_rejects_bad_records(tmp_path):
    with pytest.raises(DomainTunerError, match=r"records\[1\]"):
        write_jsonl([dict(text='ok'), dict(meta={})], tmp_path/'x.jsonl')
