"""Bring your own data: files shaped like LLaMA-Factory's demo data (its `data/` folder) prepare with every record
accounted for, and a short LoRA run trains on an Alpaca file with the default settings. The files are generated here
in the same shapes (the originals are not ours to ship): an Alpaca JSON array, a ShareGPT file with its two
conversations on one line, the v1 format (content parts with `value`, a `loss_weight` per message), a wiki dump
(one article per line, no blank lines), C4-style JSON Lines of long texts, and tool-call conversations."""
import os, json, random, subprocess, sys
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.models import load_tokenizer
from domain_tuner.prepare import prepare

WORDS = ("revenue grew while costs fell and the margin widened as the company paid down its debt after a year of "
         "strong demand in every region where new stores opened late under tight budgets with lower freight rates but "
         "higher wages for staff who joined from rival chains during the second half").split()


def sentence(i, n=12):
    "A seeded sentence of random words: different rows share no long word sequences (no false contamination)."
    rng = random.Random(i)
    return ' '.join(rng.choice(WORDS) for _ in range(n)).capitalize() + '.'


@pytest.fixture(scope='module')
def tok(): return load_tokenizer(tiny_model_dir())


def accounted(res):
    c = res.report['counts']
    assert c['read'] == c['accepted'] + c['rejected'] + c['duplicates'] + c['blank'], c
    return c


def test_alpaca_array(tok, tmp_path):
    rows = [dict(instruction=f"Question {i}: {sentence(10**6 + i)}", input="" if i % 3 else sentence(500 + 1000 * i),
                 output=' '.join(sentence(1000 * i + k) for k in range(1 + i % 40))) for i in range(120)]  # some answers are long
    (tmp_path/'alpaca_en_demo.json').write_text(json.dumps(rows, indent=2))
    res = prepare(tmp_path/'alpaca_en_demo.json', tokenizer=tok, max_length=128, lenient=True, near_dedup=False, figure=False)
    c = accounted(res)
    assert c['rejected'] == 0 and c['train'] + c['eval'] == 120
    assert res.report['tokens']['train']['truncated'] > 0  # over-long answers are cut and counted, not an error


def test_sharegpt_two_conversations_on_one_line(tok, tmp_path):
    convs = [dict(conversations=[dict(**{'from': 'human'}, value=f"Hi {i}"), dict(**{'from': 'gpt'}, value=sentence(i))])
             for i in range(2)]
    (tmp_path/'two.json').write_text(json.dumps(convs))
    res = prepare(tmp_path/'two.json', tokenizer=tok, max_length=128, figure=False)
    c = accounted(res)
    assert (c['accepted'], c['rejected']) == (2, 0)
    assert (c['train'], c['eval']) == (1, 1)  # two records, two names, so one can be held out


def test_v1_parts_and_loss_weight(tok, tmp_path):
    rows = [dict(messages=[dict(role='user', content=[dict(type='text', value=f"Define term {i}")], loss_weight=0.0),
                           dict(role='assistant', content=[dict(type='text', value=sentence(i))], loss_weight=1.0)])
            for i in range(30)]
    rows[0]['messages'] = [dict(role='user', content=[dict(type='text', value="hi")], loss_weight=0.0),
                           dict(role='assistant', content=[dict(type='text', value="Hello.")], loss_weight=0.0),
                           dict(role='user', content=[dict(type='text', value="Define margin")], loss_weight=0.0),
                           dict(role='assistant', content=[dict(type='text', value="Profit over revenue.")], loss_weight=1.0)]
    (tmp_path/'v1_sft_demo.jsonl').write_text('\n'.join(map(json.dumps, rows)) + '\n')
    res = prepare(tmp_path/'v1_sft_demo.jsonl', tokenizer=tok, max_length=128, lenient=True, eval_fraction=0, figure=False)
    c = accounted(res)
    assert (c['accepted'], c['rejected']) == (30, 0)
    from domain_tuner.template import encode
    first = next(r for r in res.train if r['messages'][1]['content'] == "Hello.")
    ex = encode(first, tok)
    trained = tok.decode([i for i, l in zip(ex['input_ids'], ex['labels']) if l != -100])
    assert trained == "Profit over revenue.<|im_end|>"  # the turn with loss_weight 0 is context, not trained


def test_wiki_text_read_whole(tok, tmp_path):
    lines = [f"Article {i}. " + ' '.join(sentence(1000 * i + k) for k in range(60)) for i in range(20)]  # ~5k characters a line
    (tmp_path/'wiki_demo.txt').write_text('\n'.join(lines) + '\n')
    res = prepare(tmp_path/'wiki_demo.txt', tokenizer=tok, max_length=256, near_dedup=False, figure=False)
    c = accounted(res)
    assert c['rejected'] == 0 and c['eval'] >= 1 and c['train'] >= 1  # one file: held out by position, not an error
    t = res.report['tokens']['train']
    assert t['truncated'] == 0 and t['tokens_lost'] == 0 and t['documents_split'] > 0 and t['blocks'] > t['documents_split']
    assert any("held out chunks" in w for w in res.report['warnings'])


def test_c4_long_texts(tok, tmp_path):
    rows = [dict(text=' '.join(sentence(1000 * i + k) for k in range(5 + 10 * (i % 7))), timestamp="2019-04-25", url=f"https://x/{i}")
            for i in range(50)]
    (tmp_path/'c4_demo.jsonl').write_text('\n'.join(map(json.dumps, rows)) + '\n')
    res = prepare(tmp_path/'c4_demo.jsonl', tokenizer=tok, max_length=128, near_dedup=False, figure=False)
    c = accounted(res)
    assert c['rejected'] == 0
    assert res.report['tokens']['train']['truncated'] == 0 and res.report['tokens']['train']['documents_split'] > 0


def test_tool_calls_read_and_a_bad_one_rejected_with_a_reason(tok, tmp_path):
    "LLaMA-Factory's tool-call rows are read (calls trained, results context); a call to a tool the row lacks is refused."
    call = lambda name: dict(**{'from': 'function_call'}, value=json.dumps({"name": name, "arguments": {"amount": 100}}))
    conv = lambda name: [dict(**{'from': 'human'}, value="Convert 100 USD"), call(name),
                         dict(**{'from': 'observation'}, value='{"eur": 92}'), dict(**{'from': 'gpt'}, value="That is 92 EUR.")]
    tools = json.dumps([{"name": "convert", "description": "currency", "parameters": {"type": "object", "properties": {}}}])
    rows = [dict(conversations=conv('convert'), tools=tools), dict(conversations=conv('weather'), tools=tools),
            dict(conversations=[dict(**{'from': 'human'}, value="Hello"), dict(**{'from': 'gpt'}, value="Hi there.")], tools='[]')]
    (tmp_path/'glaive_toolcall_en_demo.json').write_text(json.dumps(rows, indent=1))
    res = prepare(tmp_path/'glaive_toolcall_en_demo.json', tokenizer=tok, max_length=1024, lenient=True, eval_fraction=0,
                  figure=False)  # the schemas in the system turn make the prompt long
    c = accounted(res)
    assert (c['accepted'], c['rejected']) == (2, 1)
    assert "calls weather, not among the row's tools (convert)" in res.rejected[0]['reason']
    kept = [r for r in res.train if r.get('tools')]
    assert len(kept) == 1 and kept[0]['messages'][1]['tool_calls'][0]['function']['name'] == 'convert'


def test_train_on_alpaca_file_with_defaults(tmp_path):
    "`domain-tuner train --data alpaca.json` with nothing else but a short run: over-long rows train, cut and counted."
    rows = [dict(instruction=f"Question {i}: {sentence(10**6 + i)}", input="", output=' '.join(sentence(1000 * i + k) for k in range(1 + i % 30)))
            for i in range(64)]
    (tmp_path/'alpaca.json').write_text(json.dumps(rows, indent=2))
    r = subprocess.run([sys.executable, '-m', 'domain_tuner.cli', 'train', '--base', str(tiny_model_dir()), '--data',
                        str(tmp_path/'alpaca.json'), '--method', 'lora', '--out', str(tmp_path/'out'), '--max-length', '96',
                        '--max-steps', '4', '--plot', 'none'], capture_output=True, text=True,
                       env=dict(os.environ, DOMAIN_TUNER_QUIET='1', OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(l for l in r.stdout.splitlines() if l.startswith('data: read'))
    assert "read 64" in line and "training on 64" in line and "truncated" in line, line
    assert (tmp_path/'out'/'adapter_model.safetensors').exists() or any((tmp_path/'out').rglob('adapter_model.safetensors'))
