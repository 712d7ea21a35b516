"""GGUF in and out: a tiny GGUF written by the test loads through `load_model` to the logits transformers computes from
the file; an adapter exports (merged first) and loads back; the real base converts and exports (slow)."""
import json, os
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest, torch
from transformers import AutoModelForCausalLM
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.models import load_model, load_tokenizer
from domain_tuner.resolve import gguf_to_folder
from domain_tuner.export import export_gguf
from conftest import run_cli
from test_train import sums

torch.set_num_threads(1)


def test_gguf_round_trip(tmp_path):
    d = tiny_model_dir()
    f = tmp_path/'tiny.gguf'
    export_gguf(d, f, type='f16', modelfile=False)
    folder = gguf_to_folder(f)
    conv = json.loads((folder/'conversion.json').read_text())
    assert conv['bytes'] == f.stat().st_size and len(conv['sha256']) == 64 and conv['transformers']
    x = torch.tensor([[5, 9, 33, 70, 2]])
    direct = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file='tiny.gguf', dtype=torch.float32)
    direct = direct.to(load_model(f).device); x = x.to(direct.device)  # where `load_model` puts models (a GPU if any)
    with torch.no_grad(): assert torch.equal(load_model(f)(x).logits, direct(x).logits)
    # the converted folder saves and reloads through the ordinary path
    load_model(f).save_pretrained(tmp_path/'saved'); load_tokenizer(f).save_pretrained(tmp_path/'saved')
    with torch.no_grad(): assert torch.equal(load_model(tmp_path/'saved')(x).logits, direct(x).logits)


def test_export_adapter_cli(tmp_path):
    from domain_tuner.train import train
    from domain_tuner.methods import TrainConfig
    res = train(tiny_model_dir(), sums(16), TrainConfig(method='lora', lr=5e-3, max_steps=2, batch_size=8, max_length=64),
                out=tmp_path/'adapter', plot=None)
    r = run_cli('export', res.out, '--gguf', tmp_path/'out'/'model.gguf')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'same next token at 100%' in r.stdout and (tmp_path/'out'/'Modelfile').exists()
    rec = json.loads((tmp_path/'out'/'model.json').read_text())
    # merged in fp16 for an f16 file: within 1% of the largest logit of the adapter's own
    assert rec['merged']['dtype'] == 'float16' and rec['merged']['max_diff'] <= 1e-2 * rec['merged']['logit_scale']
    assert rec['check']['tokens_equal'] and rec['check']['template_equal']


@pytest.mark.slow
def test_real_base_converts_and_exports(tmp_path):
    from domain_tuner.resolve import builtin_model
    d = builtin_model('builtin:smollm2-135m-instruct')
    conv = json.loads((d/'conversion.json').read_text())
    assert conv['tokenizer_pre'] == 'smollm' and conv['source'].endswith('SmolLM2-135M-Instruct.Q4_1.gguf')
    r = export_gguf(d, tmp_path/'smol.gguf', type='f16')
    c = r['check']
    assert c['tokens_equal'] and c['template_equal'] and c['argmax_equal'] == 1.0, c
    q = export_gguf(d, tmp_path/'q8'/'smol.gguf', type='q8_0')['check']
    # 8-bit rounding of every weight: the same next token almost everywhere, the largest of the 49 x 49,152 logit
    # differences a few percent of the logits' scale (an absolute bound would depend on the model's logit scale)
    assert q['argmax_equal'] >= 0.95 and q['max_logit_diff'] < 0.1 * q['logit_scale'], q
