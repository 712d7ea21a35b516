"""On a CUDA GPU: QLoRA with bitsandbytes' CUDA kernels, bf16 (or fp16 on older GPUs) and paged 8-bit AdamW; the loss
falls, the adapter reloads to the same logits, and the memory planner is compared with torch.cuda's peak."""
import os, json
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
import pytest, torch
from domain_tuner.core import probe_cuda, select_precision
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.models import load_model, load_tokenizer
from domain_tuner.methods import TrainConfig, _default_adamw
from domain_tuner.train import train, encode_records
from domain_tuner.data import Collator
from test_train import sums

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not probe_cuda(), reason="needs a CUDA GPU")
@pytest.mark.parametrize('method', ['lora', 'qlora'])
def test_gpu_training(method, tmp_path, monkeypatch):
    monkeypatch.delenv('DOMAIN_TUNER_PRECISION', raising=False)  # the GPU's own choice: bf16, or fp16 before Ampere
    base = tiny_model_dir('gpu', hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2)
    prec = select_precision()
    assert prec.autocast in ('bfloat16', 'float16')
    res = train(base, sums(64), TrainConfig(method=method, r=8, lr=3e-3, max_steps=20, batch_size=8, max_length=64),
                out=tmp_path/method, eval_data=sums(8, seed=1), plot=None)
    m, rec = res.metrics, res.record
    assert rec['precision']['device'] == 'cuda' and rec['precision']['autocast'] == prec.autocast
    assert rec['optimizer'] == ('paged_adamw_8bit' if method == 'qlora' else _default_adamw())
    assert m['eval_loss'] < m['eval_loss_before'] - 0.1, m
    assert rec['memory']['measured']['device'] == 'cuda' and m['memory_measured_gb'] > 0
    print(f"{method}: {m['tokens_per_second']:.0f} tokens/s, memory estimated {m['memory_estimate_gb']:.3f} GB, "
          f"measured {m['memory_measured_gb']:.3f} GB, precision {prec.reason}")
    from peft import PeftModel
    tok = load_tokenizer(res.out)
    ds = encode_records(sums(4, seed=2), tok, TrainConfig(max_length=64))
    b = {k: v.cuda() for k, v in Collator(tok)([ds[i] for i in range(len(ds))]).items()}
    reloaded = PeftModel.from_pretrained(load_model(base, quantize=res.record['quantize']), str(res.out)).eval()
    with torch.no_grad():
        a = res.model.eval()(input_ids=b['input_ids'], attention_mask=b['attention_mask']).logits.float()
        r = reloaded(input_ids=b['input_ids'], attention_mask=b['attention_mask']).logits.float()
    # the same dtypes on both sides (a 16-bit base, fp32 adapters): only kernel order differs
    torch.testing.assert_close(r, a, atol=1e-2 * max(1.0, a.abs().max().item()), rtol=0)
