"Loss masks token by token for every input format, against transformers' assistant mask; packed logits equal unpacked logits."
import json
import pytest, torch
from domain_tuner.data import load_records, encode, encode_batch, tokenize_records, Collator, pack_lengths, packing_efficiency
from domain_tuner.models import load_tokenizer, load_model
from domain_tuner.tiny import tiny_model_dir, EOT, EOS_DOC

@pytest.fixture(scope='module')
def tok(): return load_tokenizer(tiny_model_dir())

ROWS = {
    'alpaca': {"instruction": "Define EBITDA.", "input": "Use one sentence.", "output": "Earnings before interest, taxes, depreciation and amortisation."},
    'sharegpt': {"conversations": [{"from": "system", "value": "You are a careful analyst."}, {"from": "human", "value": "What is ROE?"},
                                   {"from": "gpt", "value": "Net income over equity."}, {"from": "human", "value": "And ROA?"},
                                   {"from": "gpt", "value": "Net income over total assets."}]},
    'messages': {"messages": [{"role": "user", "content": "Quick ratio?"}, {"role": "assistant", "content": "Liquid assets over current liabilities."}]},
    'prompt_completion': {"prompt": "The current ratio is", "completion": " current assets divided by current liabilities."},
    'prompt_completion_list': {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Define accrual."}],
                               "completion": [{"role": "assistant", "content": "Revenue recorded when earned."}]},
}

def runs(labels):
    out, cur = [], []
    for i, l in enumerate(labels):
        if l != -100: cur.append(i)
        elif cur: out.append(cur); cur = []
    return out + ([cur] if cur else [])

@pytest.mark.parametrize('name', list(ROWS))
@pytest.mark.parametrize('template', [None, 'plain'])
def test_mask_covers_exactly_the_answers(tmp_path, tok, name, template):
    p = tmp_path/'d.jsonl'; p.write_text(json.dumps(ROWS[name]) + "\n")
    rec = load_records(p).records[0]
    ex = encode(rec, tok, template=template)
    eot = tok.convert_tokens_to_ids(EOT)
    answers = [m['content'] for m in rec['messages'] if m['role'] == 'assistant']
    got = runs(ex['labels'])
    assert len(got) == len(answers)
    for run, a in zip(got, answers):   # token by token: the answer's tokens, then end-of-turn
        assert [ex['input_ids'][i] for i in run] == tok(a, add_special_tokens=False)['input_ids'] + [eot]
        assert all(ex['labels'][i] == ex['input_ids'][i] for i in run)
    if template is None:   # the same positions transformers marks with the template's {% generation %} markers
        ref = tok.apply_chat_template(rec['messages'], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert ex['input_ids'] == ref['input_ids']
        assert [int(l != -100) for l in ex['labels']] == ref['assistant_masks']
    last = encode(rec, tok, loss_on='last', template=template)
    assert [last['input_ids'][i] for i in runs(last['labels'])[0]] == tok(answers[-1], add_special_tokens=False)['input_ids'] + [eot]
    assert len(runs(last['labels'])) == 1
    assert encode(rec, tok, loss_on='all', template=template)['labels'] == ex['input_ids']

def test_text_records_train_every_token_and_end_the_document(tok):
    ex = encode({"text": "Net income rose to $1.9 million."}, tok)
    assert ex['labels'] == ex['input_ids'] and ex['input_ids'][:-1] == tok("Net income rose to $1.9 million.", add_special_tokens=False)['input_ids']
    assert ex['input_ids'][-1] == tok.convert_tokens_to_ids(EOS_DOC)

def test_template_without_generation_markers_gives_the_same_mask(tok):
    plainer = tok.chat_template.replace('{% generation %}', '').replace('{% endgeneration %}', '')
    rec = load_records([ROWS['sharegpt']]).records[0]
    assert encode(rec, tok, template=plainer) == encode(rec, tok)

def test_batch_equals_one_by_one(tok):
    recs = load_records([ROWS[k] for k in ('alpaca', 'messages')]).records + [{"text": "A document."}]
    assert encode_batch(recs, tok)[0] == [encode(r, tok) for r in recs]

def test_truncation_policies_are_counted(tok):
    from domain_tuner.data import EncodeStats
    rec = load_records([ROWS['alpaca']]).records[0] | {"meta": {"source": "a.jsonl:3"}}
    n = len(encode(rec, tok)['input_ids'])
    with pytest.raises(Exception, match=f"a.jsonl:3: example is {n} tokens, longer than max_length=40"): encode(rec, tok, max_length=40)
    st = EncodeStats()
    ds = tokenize_records([rec, rec], tok, max_length=n - 5, truncation='truncate', stats=st)
    assert (st.truncated, st.tokens_lost) == (2, 10) and len(ds[0]['input_ids']) == n - 5
    assert ds[0]['input_ids'][-1] == ds[0]['labels'][-1] == tok.convert_tokens_to_ids(EOT)   # the stop token is re-appended and trained

@pytest.mark.parametrize('attn', ['sdpa', 'eager'])
def test_packed_logits_equal_unpacked(tok, attn):
    recs = load_records(list(ROWS.values())).records + [{"text": "Net income rose to $1.9 million in the year."}]
    exs = [encode(r, tok) for r in recs]
    width = 160
    rows = pack_lengths([len(e['input_ids']) for e in exs], width)
    assert len(rows) < len(exs)                        # several examples really share a row
    model = load_model(tiny_model_dir(), attn_implementation=attn).eval()
    batch = {k: v.to(model.device) for k, v in Collator(tok, pack=True, max_length=width)(exs).items()}
    with torch.no_grad():
        packed = model(input_ids=batch['input_ids'], position_ids=batch['position_ids'], use_cache=False).logits
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                n = len(exs[i]['input_ids'])
                alone = model(input_ids=torch.tensor([exs[i]['input_ids']], device=model.device)).logits[0]
                torch.testing.assert_close(packed[r, start:start + n], alone, atol=1e-4, rtol=1e-4)
                start += n
        padded = {k: v.to(model.device) for k, v in Collator(tok)(exs).items()}
        torch.testing.assert_close(model(**batch, use_cache=False).loss, model(**padded).loss, atol=1e-4, rtol=1e-4)

def test_packing_efficiency_on_long_tailed_lengths():
    import numpy as np
    lengths = np.clip(np.random.default_rng(1).lognormal(5, 0.9, 3000).astype(int), 16, 2048)
    rows = pack_lengths(lengths, 2048)
    assert packing_efficiency(lengths, rows, 2048) >= 0.95
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
