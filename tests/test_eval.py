"Evaluation: metrics against hand-computed values, generation and perplexity against plain transformers, evaluate against greedy decoding, the CLI."
import json, math
from pathlib import Path
import pytest, torch
from conftest import run_cli
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.models import load_model, load_tokenizer
from domain_tuner.core import DomainTunerError
from domain_tuner.data import encode
from domain_tuner.evaluate import (evaluate, perplexity, generate, chat, compare, ForgettingGuard, EvalResult, exact_match, token_f1,
                                   rouge_l, bleu, corpus_bleu, chrf, numeric_match, parse_numbers, normalize_answer, choice_logprobs,
                                   ungrounded_claims, write_report)
from domain_tuner.generation import render_prompts, stop_token_ids, _cut

@pytest.fixture(scope='module')
def tm():
    d = tiny_model_dir('tiny-eval', initializer_range=0.4)  # varied (random) text; the default init repeats one token
    return d, load_model(d), load_tokenizer(d)

def qa(q, a, **meta): return {'messages': [{'role': 'user', 'content': q}, {'role': 'assistant', 'content': a}], 'meta': meta}

QUESTIONS = ["What is EBITDA?", "Hi", "Net income rose to $1.9 million and the gross margin improved to 41 percent. Why?",
             "Summarise the key risks in the management discussion.", "Ratio?", "What is the quick ratio of a company with "
             "current assets of $5.2 million and current liabilities of $2.6 million?", "Define working capital.", "Who audits Acme?"]

# --- metrics: hand-computed values ---------------------------------------------------------------------------------
@pytest.mark.parametrize("f,pred,ref,want", [
    (exact_match, "The EBITDA.", "ebitda", 1.0),
    (exact_match, "EBITDA margin", "ebitda", 0.0),
    (token_f1, "net income rose sharply", "net income rose", 6/7),        # P 3/4, R 1
    (token_f1, "x b c", "c d", 2*(1/3)*(1/2)/(1/3 + 1/2)),                # 1 common: P 1/3, R 1/2
    (token_f1, "a b c", "c d", 0.5),                                      # the article "a" is dropped: P 1/2, R 1/2
    (rouge_l, "revenue grew by eight percent", "revenue grew eight percent this year", 8/11),  # LCS 4, P 4/5, R 4/6
    (rouge_l, "b a", "a b", 0.5),
    (bleu, "the cat sat", "the cat sat on the mat", math.exp(-1)),        # precisions 1 (smoothed), BP e^(1-6/3)
    (bleu, "the cat sat on the mat", "the cat sat on the mat", 1.0),
    (chrf, "abc", "abd", 7/18),                                           # orders 1..3: F 2/3, 1/2, 0
    (chrf, "ab", "abc", (5/7 + 5/9)/2),                                   # beta 2: F2 of (1, 2/3) and (1, 1/2)
    (numeric_match, "Revenue was $12,412,000 in 2023.", "$12.4 million", 1.0),
    (numeric_match, "12.6 million", "$12.4 million", 0.0),
    (numeric_match, "The margin is 12%", "0.12", 1.0),
    (numeric_match, "a loss of (1,234)", "-1234", 1.0),
    (numeric_match, "1234", "(1,234)", 0.0),
])
def test_metric_hand_values(f, pred, ref, want):
    assert f(pred, ref, {}) == pytest.approx(want, abs=1e-12)

def test_corpus_bleu_pools_counts():
    assert corpus_bleu(["a b c d", "a b x y"], ["a b c d", "a b x z"]) == pytest.approx((7/8*5/6*3/4*1/2)**0.25)

def test_normalisation_and_numbers():
    assert normalize_answer("  The EBITDA margin was 1,234.5%!  ") == "ebitda margin was 1.234.5"
    assert parse_numbers("$1,234.5, 12%, (1,234), $12.4 million, 3bn, 5 m tall") == [
        (1234.5, False), (12.0, True), (-1234.0, False), (12.4e6, False), (3e9, False), (5.0, False)]

def test_user_metric_and_bad_metric(tm):
    d, model, tok = tm
    def mentions(pred, ref, rec): return float(rec['meta']['term'].lower() in pred.lower())
    r = evaluate(model, tok, [qa("Hi", "Hello", term="zzz")], metrics=['exact_match', mentions], max_new_tokens=4)
    assert r.metrics['mentions'] == 0.0 and 'mentions' in r.examples[0]
    with pytest.raises(DomainTunerError, match="unknown metric 'bleurt'"): evaluate(model, tok, [qa("Hi", "x")], metrics=['bleurt'])

# --- generation -------------------------------------------------------------------------------------------------------
def _plain_greedy(model, tok, msgs, n):
    ids = tok(render_prompts(tok, [msgs])[0], add_special_tokens=False, return_tensors='pt')['input_ids'].to(model.device)
    out = model.generate(ids, max_new_tokens=n, do_sample=False)[0, ids.shape[1]:].tolist()
    return tok.decode(_cut(out, set(stop_token_ids(model, tok))), skip_special_tokens=True).strip()

def test_batched_greedy_equals_single_and_plain_generate(tm):
    d, model, tok = tm
    plain = [_plain_greedy(model, tok, q, 8) for q in QUESTIONS]
    for bs in (1, 16): assert generate(model, tok, QUESTIONS, max_new_tokens=8, batch_size=bs) == plain
    assert chat(model, QUESTIONS[0], tokenizer=tok, max_new_tokens=8) == plain[0]

def test_generation_stops_at_end_of_turn(tm):
    d, model, tok = tm
    from transformers import SequenceBiasLogitsProcessor
    bias = SequenceBiasLogitsProcessor({(tok.convert_tokens_to_ids('<|im_end|>'),): 100.0})
    assert generate(model, tok, QUESTIONS[:3], max_new_tokens=10, logits_processor=[bias]) == ['', '', '']

# --- perplexity ---------------------------------------------------------------------------------------------------------
def _plain_log_ppl(model, tok, recs, loss_on):
    tot = n = 0
    for r in recs:
        e = encode(r, tok, loss_on=loss_on); k = sum(l != -100 for l in e['labels'][1:])
        ids, lab = (torch.tensor([e[k]], device=model.device) for k in ('input_ids', 'labels'))
        with torch.no_grad(): tot += model(input_ids=ids, labels=lab).loss.item()*k
        n += k
    return tot/n

@pytest.mark.parametrize("loss_on", ['responses', 'last'])
def test_perplexity_equals_plain_forward(tm, loss_on):
    d, model, tok = tm
    recs = [{'text': "Revenue rose 8% to $12.4 million."}, {'text': "Current assets were $5.2 million against liabilities of $2.6 million."},
            qa("What is EBITDA?", "Earnings before interest, taxes, depreciation and amortisation."),
            {'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello.'},
                          {'role': 'user', 'content': 'Ratio?'}, {'role': 'assistant', 'content': 'Debt over equity.'}]}]
    want = _plain_log_ppl(model, tok, recs, loss_on)
    for bs in (1, 3, 8):
        assert math.log(perplexity(model, tok, recs, batch_size=bs, loss_on=loss_on)) == pytest.approx(want, abs=1e-5)

# --- evaluate -----------------------------------------------------------------------------------------------------------
def test_evaluate_matches_plain_greedy_and_forward(tm, tmp_path):
    d, model, tok = tm
    bench = [qa(q, a) for q, a in zip(QUESTIONS, ["Earnings before interest.", "Hello.", "Higher sales.", "Rates.", "2.0",
                                                  "2.0", "Current assets minus current liabilities.", "KPMG"])]
    bench.append(qa("Which statement shows operating cash?", "The cash flow statement",
                    choices=['The balance sheet', 'The cash flow statement', 'The income statement']))
    p = tmp_path/'bench.jsonl'; p.write_text('\n'.join(json.dumps(r) for r in bench) + '\n')
    r = evaluate(model, tok, p, metrics=['exact_match', 'token_f1'], max_new_tokens=10, batch_size=4)
    gen = r.examples[:-1]
    assert [e['prediction'] for e in gen] == [_plain_greedy(model, tok, b['messages'][:-1], 10) for b in bench[:-1]]
    assert r.metrics['exact_match'] == pytest.approx(sum(exact_match(e['prediction'], e['reference']) for e in r.examples)/len(bench))
    assert math.log(r.metrics['perplexity']) == pytest.approx(_plain_log_ppl(model, tok, bench, 'last'), abs=1e-5)
    lp = choice_logprobs(model, tok, bench[-1:])[0]
    assert r.examples[-1]['choice'] == max(range(3), key=lp.__getitem__)
    assert r.metrics['mc_accuracy'] == float(r.examples[-1]['choice'] == 1)
    assert r.examples[0]['source'].endswith('bench.jsonl:1')
    back = EvalResult.from_json(r.to_json(tmp_path/'r.json') and tmp_path/'r.json')
    assert back.metrics == r.metrics

def test_one_pass_answers_equal_generated(tmp_path):
    "Greedy evaluation answers and scores in one pass (references greedy would reproduce are not decoded): same answers."
    from domain_tuner.train import train
    from domain_tuner.methods import TrainConfig
    d = tiny_model_dir()
    recs = [qa(f"What is {a} plus {b}?", f"{a + b}") for a, b in [(1, 2), (2, 5), (3, 3), (4, 1), (6, 2), (7, 1)]]
    res = train(d, recs * 8, TrainConfig(method='full', lr=3e-3, max_steps=60, batch_size=8, max_length=64), out=tmp_path/'m', plot=None)
    model, tok = res.model.eval(), load_tokenizer(tmp_path/'m')
    r = evaluate(model, tok, recs, metrics=['exact_match'], max_new_tokens=8)
    assert r.metrics['exact_match'] >= 0.5, r.metrics                    # memorised: those answers come from the scoring pass
    assert [e['prediction'] for e in r.examples] == [_plain_greedy(model, tok, x['messages'][:-1], 8) for x in recs]
    plain = evaluate(model, tok, recs, metrics=['exact_match'], max_new_tokens=8, repetition_penalty=1.0)  # generate + score
    assert [e['prediction'] for e in plain.examples] == [e['prediction'] for e in r.examples]
    assert r.metrics['perplexity'] == pytest.approx(plain.metrics['perplexity'], rel=1e-5)


def test_grounding_flags_numbers_and_names():
    ctx = "Acme Corp reported revenue of $12.4 million in fiscal 2023 and EBITDA of $2.1 million. It is incorporated in Delaware."
    assert ungrounded_claims("Revenue was $12.4m and EBITDA $3.0 million; Acme is in Nevada, per the SEC.", ctx) == ['$3.0 million', 'Nevada', 'SEC']
    assert ungrounded_claims("The company, Acme Corp, earned 12.4 million dollars in 2023.", ctx) == []

def test_compare_fixed_broke_and_report(tmp_path):
    def fake(name, em, ppl):
        return EvalResult(name, dict(exact_match=sum(em)/len(em), perplexity=ppl),
                          [dict(id=i, prompt=f"q{i}", reference=f"a{i}", prediction=f"{name}{i}", exact_match=v) for i, v in enumerate(em)])
    c = compare(fake('base', [1, 0, 1, 0], 20.0), fake('tuned', [1, 1, 0, 1], 12.0))
    assert c.gains() == {'tuned': {'exact_match': 0.25, 'perplexity': -8.0}}
    d = c.diffs()
    assert [x['id'] for x in d['fixed']] == [1, 3] and [x['id'] for x in d['broke']] == [2]
    paths = write_report(c.results, tmp_path/'rep')
    html = paths['html'].read_text()
    assert html.count("src='data:image/png;base64,") == 2 and 'figures/' not in html
    assert (tmp_path/'rep'/'figures'/'gains.png').exists() and '2 fixed, 1 broke' in paths['markdown'].read_text()

def test_forgetting_guard_stops_trainer(tm):
    d, model, tok = tm
    from transformers.trainer_callback import TrainerControl, TrainerState
    guard = ForgettingGuard([qa("What is 2 + 2?", "4"), qa("Name a day of the week.", "Monday.")], threshold=0.05, action='stop')
    cb, control = guard.callback(tok), TrainerControl()
    cb.on_evaluate(None, TrainerState(), control, model=model); assert not control.should_training_stop
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with torch.no_grad(): model.model.norm.weight.mul_(3.0)
        cb.on_evaluate(None, TrainerState(), control, model=model)
    finally: model.load_state_dict(sd)
    assert control.should_training_stop and guard.history[1]['drop'] > 0.05

# --- the command --------------------------------------------------------------------------------------------------------
def _adapter(base_dir, path):
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(0)
    pm = get_peft_model(load_model(base_dir), LoraConfig(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj']))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.5)
    pm.save_pretrained(path); load_tokenizer(base_dir).save_pretrained(path)
    return path

def _cli_case(d, tmp_path):
    ad = _adapter(d, tmp_path/'adapter')
    bench = tmp_path/'bench.jsonl'
    bench.write_text('\n'.join(json.dumps(dict(instruction=q, output=a)) for q, a in
                               [("Revenue in 2023?", "$12.4 million"), ("What is EBITDA?", "Earnings before interest."), ("Hi", "Hello.")]) + '\n')
    return ad, bench, ['eval', '--model', str(ad), '--bench', str(bench), '--out', str(tmp_path/'REPORT.json'),
                       '--metrics', 'token_f1', 'numeric_match', '--max-new-tokens', '6', '--compare-base']

@pytest.mark.slow
def test_cli_eval_subprocess(tm, tmp_path):
    ad, bench, args = _cli_case(tm[0], tmp_path)
    r = run_cli(*args)
    assert 'gains over base' in r.stdout
    assert set(json.loads((tmp_path/'REPORT.json').read_text())['metrics']) >= {'perplexity', 'exact_match'}

def test_cli_eval_adapter_with_base_comparison(tm, tmp_path):
    from domain_tuner.evaluate import cli_eval
    d, model, tok = tm
    ad, bench, args = _cli_case(d, tmp_path)
    assert cli_eval(args[1:]) == 0
    rep = json.loads((tmp_path/'REPORT.json').read_text())
    assert {'perplexity', 'exact_match', 'token_f1', 'numeric_match'} <= set(rep['metrics'])
    assert len(rep['examples']) == 3 and rep['examples'][1]['reference'] == "Earnings before interest."
    assert rep['baseline']['metrics']['perplexity'] != rep['metrics']['perplexity']   # the adapter was applied
    from domain_tuner.models import load_trained
    m2, t2 = load_trained(ad)
    assert rep['metrics']['perplexity'] == pytest.approx(perplexity(m2, t2, [json.loads(l) and qa(json.loads(l)['instruction'], json.loads(l)['output'])
                                                                            for l in bench.read_text().splitlines()], loss_on='last'), rel=1e-5)
    assert (ad/'eval_report'/'report.md').exists() and (ad/'eval_report'/'report.html').exists()

@pytest.mark.parametrize('kind', ['full', 'merged'])
def test_cli_eval_compare_base_full_and_merged(kind, tmp_path):
    "--compare-base finds the base of a fully fine-tuned folder and of a merged adapter from their run records."
    from domain_tuner.evaluate import cli_eval
    from domain_tuner.train import train
    from domain_tuner.methods import TrainConfig
    from domain_tuner.merge import merge
    d = tiny_model_dir()
    recs = [qa(f"What is {a} plus {a}?", str(2*a)) for a in range(1, 9)]
    res = train(d, recs, TrainConfig(method='full' if kind == 'full' else 'lora', lr=1e-3, max_steps=2, batch_size=4,
                                     max_length=64), out=tmp_path/'trained', plot=None)
    model = res.out
    if kind == 'merged': merge(res.out, tmp_path/'merged'); model = tmp_path/'merged'
    bench = tmp_path/'bench.jsonl'; bench.write_text('\n'.join(json.dumps(r) for r in recs[:3]) + '\n')
    assert cli_eval(['--model', str(model), '--bench', str(bench), '--out', str(tmp_path/'R.json'), '--compare-base',
                     '--max-new-tokens', '4', '--no-report']) == 0
    rep = json.loads((tmp_path/'R.json').read_text())
    assert rep['baseline']['name'] == 'base' and rep['baseline']['metrics']['perplexity'] != rep['metrics']['perplexity']


def test_cli_eval_errors_name_the_input(tm, tmp_path):
    from domain_tuner.evaluate import cli_eval
    bad = tmp_path/'bench.jsonl'; bad.write_text('{"text": "no answer here"}\n')
    with pytest.raises(DomainTunerError, match=r"bench.jsonl:1: .*reference"):
        cli_eval(['--model', str(tm[0]), '--bench', str(bad), '--out', str(tmp_path/'R.json'), '--no-report'])
    with pytest.raises(DomainTunerError, match="not found"):
        cli_eval(['--model', str(tm[0]), '--bench', str(tmp_path/'missing.jsonl'), '--out', str(tmp_path/'R.json')])

@pytest.mark.slow
def test_cli_eval_error_exit_code(tm, tmp_path):
    bad = tmp_path/'bench.jsonl'; bad.write_text('{"text": "no answer here"}\n')
    r = run_cli('eval', '--model', tm[0], '--bench', bad, '--out', tmp_path/'R.json', '--no-report', check=False)
    assert r.returncode == 2 and 'bench.jsonl:1' in r.stderr and 'reference' in r.stderr
