"The project's base model: offline licensed text, generic copy items, a pre-training loop whose loss falls, a cached folder that loads like a hub model."
import json, os
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import random
import pytest
from domain_tuner.finance_base import (BaseConfig, general_corpus, corpus_info, lookup_item, base_tokenizer, pretrain_batches,
                               build_base, base_model_dir, copy_probe, canary_scores, ASSET_DIR)
from domain_tuner.models import load_model, load_tokenizer
from domain_tuner.tiny import EOT

TOY = BaseConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, vocab_size=600,
                 seq_len=64, batch_size=4, steps=40, warmup=5)

@pytest.fixture(scope='module')
def docs(): return general_corpus()

@pytest.fixture(scope='module')
def tok(docs): return base_tokenizer(BaseConfig(), docs)

def test_corpus_is_offline_and_licensed(docs):
    info = corpus_info(docs)
    assert info['characters'] > 500_000 and info['documents'] > 300
    assert 'PSF' in info['license'] and 'pydoc_data' in info['source']
    assert any('statement' in d for d in docs)   # real English prose, e.g. the Language Reference

def test_lookup_items_answer_from_context():
    r = random.Random(5)
    for _ in range(500):
        p, a = lookup_item(r)
        ctx, q = p.rsplit('\n\n', 1)
        table = dict(line.lower().split(': ', 1) for line in ctx.splitlines() if ': ' in line)
        asked = max((k for k in table if f' {k}' in q.lower()), key=len)   # the longest key the question names
        assert table[asked] == a.lower(), p

def test_tokenizer_knows_domain_words(tok):
    assert len(tok) == 2048 and tok.eos_token == EOT
    for w in [' revenue', ' gross profit', ' liabilities', ' million', ' Agreement']:
        assert len(tok(w, add_special_tokens=False)['input_ids']) <= 3, w

def test_batches_mask_only_item_prompts(tok, docs):
    cfg = BaseConfig(batch_size=4, seq_len=128, task_fraction=1.0)   # only chat items
    x, y = next(pretrain_batches(tok, docs[:50], cfg))
    assert x.shape == (4, 128)
    assert ((y == x) | (y == -100)).all()
    eot = tok.convert_tokens_to_ids(EOT)
    # every unmasked span ends at an end-of-turn token (answers are trained with their stop token) or at the row's end
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        spans, cur = [], []
        for t, l in zip(row_x, row_y):
            if l == -100:
                if cur: spans.append(cur); cur = []
            else: cur.append(t)
        assert spans, 'no answer tokens carry loss'
        assert all(eot in s for s in spans)
    cfg_text = BaseConfig(batch_size=2, seq_len=128, task_fraction=0.0)  # only text: loss on every token
    x, y = next(pretrain_batches(tok, docs[:50], cfg_text))
    assert (y == x).all()

def test_toy_build_loss_falls_and_loads_like_a_hub_model(tmp_path):
    p = build_base(tmp_path/'toy', TOY, probe=False)
    card = json.loads((p/'base_card.json').read_text())
    losses = json.loads((p/'train_log.json').read_text())['losses']
    assert card['steps'] == 40 == len(losses)
    assert sum(losses[-5:])/5 < sum(losses[:5])/5 - 0.5
    assert card['corpus']['license'].startswith('Python Software Foundation') and card['recipe_key'] == TOY.key
    m, t = load_model(p), load_tokenizer(p)
    assert m.config.model_type == 'llama' and m.config.num_hidden_layers == 2
    assert t.chat_template and t.pad_token_id != t.convert_tokens_to_ids(EOT)

def test_base_model_dir_builds_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('DOMAIN_TUNER_CACHE', str(tmp_path))
    cfg = BaseConfig(**{**TOY.__dict__, 'steps': 3})
    p = base_model_dir(cfg)
    assert p.parent == tmp_path and (p/'model.safetensors').exists()
    stamp = (p/'model.safetensors').stat().st_mtime_ns
    assert base_model_dir(cfg) == p and (p/'model.safetensors').stat().st_mtime_ns == stamp  # cached, not rebuilt

def test_shipped_base_is_small_and_documented():
    if not (ASSET_DIR/'base_card.json').exists(): pytest.skip('no base shipped in this checkout')
    assert base_model_dir() == ASSET_DIR
    card = json.loads((ASSET_DIR/'base_card.json').read_text())
    size = sum(f.stat().st_size for f in ASSET_DIR.iterdir())
    assert size < 12e6, size
    m = load_model(ASSET_DIR)
    n = sum(p.numel() for p in m.parameters())
    assert n == card['parameters'] and 1e6 < n < 9e6
    losses = json.loads((ASSET_DIR/'train_log.json').read_text())['losses']
    assert sum(losses[-50:])/50 < sum(losses[:50])/50 - 2   # it was really trained

@pytest.mark.slow
def test_shipped_base_probe_matches_its_card():
    card = json.loads((ASSET_DIR/'base_card.json').read_text())
    m, t = load_model(ASSET_DIR), load_tokenizer(ASSET_DIR)
    assert copy_probe(m, t) == pytest.approx(card['copy_probe'])
    assert canary_scores(m, t)['all'] == pytest.approx(card['canary']['all'])
