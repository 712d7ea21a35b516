"""Done-when checks of the training issue, per method, on a tiny model: the response loss falls, exactly the trainable
parameters change, the adapter reloads with plain peft to identical logits, and merged logits equal adapter logits."""
import os, random, json
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest, torch
from transformers import TrainerCallback
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.models import load_model, load_tokenizer
from domain_tuner.methods import TrainConfig
from domain_tuner.train import train, encode_records
from domain_tuner.data import Collator

torch.set_num_threads(1)  # tiny models: one thread is faster, and far faster when other processes share the CPU


def sums(n, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        out.append(dict(messages=[dict(role='user', content=f"What is {a} plus {b}?"),
                                  dict(role='assistant', content=f"{a} plus {b} is {a+b}.")], meta=dict(source=f"sums:{i+1}")))
    return out


def value(p):
    "A parameter's values; 4-bit weights dequantized (bitsandbytes repacks their storage on the first CPU forward)."
    if p.__class__.__name__ == 'Params4bit':
        import bitsandbytes as bnb
        return bnb.functional.dequantize_4bit(p.data, p.quant_state).clone()
    return p.detach().clone()


class Snapshot(TrainerCallback):
    "Copies every parameter (and whether it trains) when training begins."
    def on_train_begin(self, args, state, control, model=None, **kw):
        self.before = {n: (value(p), p.requires_grad) for n, p in model.named_parameters()}


@pytest.fixture(scope='module')
def base(): return tiny_model_dir()


@pytest.fixture(scope='module')
def data(): return sums(48), sums(8, seed=1)


def _batch(tok, records):
    cfg = TrainConfig(max_length=64)
    ds = encode_records(records, tok, cfg)
    return Collator(tok)([ds[i] for i in range(len(ds))])


def _logits(model, b):
    with torch.no_grad():
        return model.eval()(input_ids=b['input_ids'], attention_mask=b['attention_mask']).logits.float()


CASES = {
    'full': dict(method='full', lr=1e-3, freeze_layers=1),
    'lora': dict(method='lora', lr=5e-3, r=8),
    'dora': dict(method='dora', lr=5e-3, r=8),
    'qlora': dict(method='qlora', lr=5e-3, r=8),
}


def as_on_avx512bf16(on=True):
    "Make bitsandbytes believe the CPU has AVX512-BF16 (its one check), so it repacks 4-bit weights as it does there."
    from unittest.mock import patch
    return patch('bitsandbytes.nn.modules.has_avx512bf16', lambda: on)


@pytest.mark.parametrize('name', list(CASES) + ['qlora-avx512bf16'])
def test_method(name, base, data, tmp_path):
    "On every CPU, including one whose bitsandbytes repacks 4-bit weights on the eval pass that precedes training."
    train_recs, eval_recs = data
    snap = Snapshot()
    method = name.split('-')[0]
    cfg = TrainConfig(max_steps=12, batch_size=8, max_length=64, logging_steps=4, dropout=0.0, **CASES[method])
    with as_on_avx512bf16(name.endswith('avx512bf16')):
        res = train(base, train_recs, cfg, out=tmp_path/name, eval_data=eval_recs, plot=None, callbacks=[snap])
    m = res.metrics
    # the loss on response tokens (eval labels mask everything but the answers) falls
    assert m['eval_loss'] < m['eval_loss_before'] - 0.05, m
    # every trainable parameter changed, nothing frozen did
    after = dict(res.model.named_parameters())
    trainable = [n for n, (_, rg) in snap.before.items() if rg]
    assert trainable, "nothing was trainable"
    for n, (p0, rg) in snap.before.items():
        changed = not torch.equal(p0, value(after[n]))
        assert changed == rg, f"{n}: trainable={rg} but changed={changed}"
    if name == 'full':
        assert not any(rg for n, (_, rg) in snap.before.items() if '.layers.0.' in n)  # freeze_layers=1 froze block 0
        assert (res.out/'model.safetensors').exists()
        return
    assert not any(rg for n, (_, rg) in snap.before.items() if 'lora_' not in n)
    # the adapter reloads with plain peft to identical logits
    from peft import PeftModel
    tok = load_tokenizer(res.out)
    b = _batch(tok, eval_recs[:4])
    reloaded = PeftModel.from_pretrained(load_model(base, quantize=cfg.quantize), str(res.out))
    torch.testing.assert_close(_logits(reloaded, b), _logits(res.model, b), atol=1e-5, rtol=0)
    assert json.loads((res.out/'run_record.json').read_text())['quantize'] == cfg.quantize


def test_qlora_after_eval_learns_like_lora(base, tmp_path):
    "After an evaluation pass (train evaluates first), QLoRA's response-loss drop equals LoRA's within 10%."
    tr, ev = sums(96), sums(16, seed=1)
    drop = {}
    for method in ('lora', 'qlora'):
        cfg = TrainConfig(method=method, max_steps=40, batch_size=8, max_length=64, lr=5e-3, r=8, logging_steps=100)
        with as_on_avx512bf16():
            m = train(base, tr, cfg, out=tmp_path/method, eval_data=ev, plot=None).metrics
        drop[method] = 1 - m['eval_loss'] / m['eval_loss_before']
    assert drop['lora'] > 0.05, drop
    assert abs(drop['qlora'] - drop['lora']) <= 0.1 * drop['lora'], drop


@pytest.mark.parametrize('name', ['lora', 'dora', 'qlora'])
def test_merge_equals_adapter(name, base, data, tmp_path):
    from peft import PeftModel
    from domain_tuner.merge import merge
    cfg = TrainConfig(max_steps=4, batch_size=8, max_length=64, logging_steps=4, **CASES[name])
    res = train(base, data[0], cfg, out=tmp_path/'adapter', plot=None)
    check = merge(res.out, tmp_path/'merged', dtype='fp32')
    merged = load_model(tmp_path/'merged')
    assert not any('lora' in n for n, _ in merged.named_parameters())
    b = _batch(load_tokenizer(tmp_path/'merged'), data[1][:4])
    # merged logits equal the adapter's on the base it was trained on: a QLoRA adapter's is the 4-bit base
    # (`merge` puts it onto that base dequantized), the others' the full-precision base
    adapter = PeftModel.from_pretrained(load_model(base, quantize='nf4' if name == 'qlora' else None), str(res.out))
    torch.testing.assert_close(_logits(merged, b), _logits(adapter, b), atol=1e-4, rtol=0)
    assert check['max_diff'] <= 1e-4
    if name == 'qlora':  # the merged model is the trained one: no quantisation gap left between them
        assert check['onto'] == 'dequantized' and check['max_diff_vs_4bit'] <= 1e-4 * check['logit_scale']
    # the default merge is bf16: half the bytes, its check within 2% of the largest logit
    c16 = merge(res.out, tmp_path/'merged16')
    assert c16['dtype'] == 'bfloat16' and c16['max_diff'] <= 2e-2 * c16['logit_scale']
    assert (tmp_path/'merged16'/'model.safetensors').stat().st_size < 0.6 * (tmp_path/'merged'/'model.safetensors').stat().st_size



def test_overfitting_warning_from_logs():
    "LossHistory warns (once per event) when eval loss rises while the train loss since the last eval falls."
    import warnings
    from types import SimpleNamespace
    from domain_tuner.train import LossHistory
    h, st = LossHistory(plot=None), SimpleNamespace(global_step=0, is_world_process_zero=True)
    logs = [dict(loss=2.0), dict(eval_loss=1.9), dict(loss=1.5), dict(eval_loss=1.8), dict(loss=1.0), dict(eval_loss=2.1)]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        for i, l in enumerate(logs):
            st.global_step = 10 * (i + 1)
            h.on_log(None, st, None, logs=l)
    assert len(h.warnings) == 1 and 'starting to overfit' in h.warnings[0] and 'step 40' in h.warnings[0]
    assert any('starting to overfit' in str(x.message) for x in w)


def test_packed_training(base, data, tmp_path):
    "Packing (position ids restart per example) trains through the same path; fewer rows, the same tokens, loss falls."
    cfg = TrainConfig(method='lora', lr=5e-3, r=8, max_steps=6, batch_size=2, max_length=256, logging_steps=2, pack=True)
    res = train(base, data[0], cfg, out=tmp_path/'packed', eval_data=data[1], plot=None)
    d = res.record['data']
    assert d['n_train_rows'] < d['n_train'] / 4  # ~40-token examples, several per 256-token row
    assert res.metrics['eval_loss'] < res.metrics['eval_loss_before']
    assert 0 < res.metrics['tokens'] <= 6 * 2 * 256


def _varied(n, seed=0):
    "Conversations of very different lengths, so padded batches hold many pad tokens."
    rng = random.Random(seed)
    return [dict(messages=[dict(role='user', content='What is revenue? ' * rng.randint(1, 12)),
                           dict(role='assistant', content='Income from sales. ' * rng.randint(1, 12))]) for _ in range(n)]


def test_padding_free_matches_padded(base, tmp_path):
    "The default padding-free batches (with per-example attention) train exactly like padded batches, with no pad tokens."
    recs = _varied(24)
    runs = {}
    for pf in (True, False):
        cfg = TrainConfig(method='full', lr=1e-3, max_steps=4, batch_size=6, max_length=256, logging_steps=1, padding_free=pf,
                          dropout=0.0)
        runs[pf] = train(base, recs, cfg, out=tmp_path/f'pf{pf}', eval_data=_varied(6, seed=1), plot=None)
    fast, padded = runs[True], runs[False]
    lf = [l['loss'] for l in fast.history if 'loss' in l]
    lp = [l['loss'] for l in padded.history if 'loss' in l]
    assert len(lf) == len(lp) == 4 and lf[-1] < lf[0]
    assert max(abs(a - b) for a, b in zip(lf, lp)) < 1e-4, (lf, lp)
    assert abs(fast.metrics['eval_loss'] - padded.metrics['eval_loss']) < 1e-4
    assert fast.metrics['tokens'] == padded.metrics['tokens']  # real tokens counted alike
    assert fast.model.config._attn_implementation == 'sdpa'    # the per-example attention is switched back after training
