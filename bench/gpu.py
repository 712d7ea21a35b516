#!/usr/bin/env python
"""The suite's GPU part: LoRA bf16 with packing on a Qwen2.5-0.5B-shaped model (random weights, no download):
tokens/s, model FLOPs utilisation (4N FLOPs per token for LoRA, 6N for full fine-tuning), peak memory for
full/LoRA/QLoRA next to the memory planner, and the same run through TRL's SFTTrainer. Prints a markdown section
for bench/RESULTS.md.

    python bench/gpu.py                  # on a CUDA machine, a few minutes
    python bench/gpu.py --smoke          # a tiny shape on the CPU: checks the code paths, figures mean nothing
"""
from __future__ import annotations
import argparse, gc, json, math, os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')

QWEN05 = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
              vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6, tie_word_embeddings=True, rms_norm_eps=1e-6)
SMOKE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             vocab_size=1024, max_position_embeddings=1024, tie_word_embeddings=True)
PEAK_BF16 = {'H100': 989e12, 'H200': 989e12, 'H800': 989e12, 'A100': 312e12, 'L40S': 362e12, 'L4': 121e12, 'A10': 125e12, 'T4': 65e12}

def peak_flops(name:str)->float|None:
    "Dense bf16 peak of the GPU (fp16 for the T4), from its name; None when unknown."
    return next((v for k, v in PEAK_BF16.items() if k in name), None)

def build_model_dir(shape:dict, dtype)->Path:
    "A Qwen2-architecture model with random weights saved once (QLoRA must load it through bitsandbytes)."
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from domain_tuner.tiny import build_tokenizer
    d = Path(tempfile.gettempdir())/f"bench-gpu-{shape['hidden_size']}x{shape['num_hidden_layers']}"
    if not (d/'config.json').exists():
        tok = build_tokenizer()
        cfg = Qwen2Config(**shape, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
        torch.manual_seed(0)
        Qwen2ForCausalLM(cfg).to(dtype).save_pretrained(d); tok.save_pretrained(d)
    return d

def examples(n:int, vocab:int, mean_len:float, max_len:int, seed:int=0)->list[dict]:
    "Token-id examples with log-normal lengths; the first quarter of each is prompt (label -100), the rest response."
    import random
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = max(8, min(max_len, int(rng.lognormvariate(math.log(mean_len), 1.0))))
        ids = [rng.randrange(10, vocab) for _ in range(k)]
        p = k // 4
        out.append(dict(input_ids=ids, labels=[-100] * p + ids[p:]))
    return out

class StepClock:
    "A TrainerCallback timing optimizer steps after a warm-up."
    def __new__(cls, warmup:int):
        from transformers import TrainerCallback
        class _C(TrainerCallback):
            def __init__(self): self.t = []
            def on_step_end(self, args, state, control, **kw):
                import torch
                if torch.cuda.is_available(): torch.cuda.synchronize()
                self.t.append(time.perf_counter())
            def seconds_per_step(self): return (self.t[-1] - self.t[warmup - 1]) / (len(self.t) - warmup)
        return _C()

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--smoke', action='store_true'); p.add_argument('--steps', type=int, default=30)
    p.add_argument('--max-length', type=int, default=2048); p.add_argument('--batch-size', type=int, default=8)
    a = p.parse_args(argv)
    import torch
    from datasets import Dataset
    from domain_tuner.core import probe_flash_attention
    from domain_tuner.models import load_model, load_tokenizer, count_parameters
    from domain_tuner.methods import TrainConfig, prepare_model, training_precision
    from domain_tuner.memory import estimate_memory, PeakMemory
    from domain_tuner.train import fit, encode_records, LossHistory  # noqa
    from domain_tuner.data import packed_dataset
    cuda = torch.cuda.is_available()
    if not cuda and not a.smoke: print("no CUDA device: run with --smoke to check the code paths on the CPU"); return 2
    shape, steps, L = (SMOKE, 4, 256) if a.smoke else (QWEN05, a.steps, a.max_length)
    prec = 'bf16' if cuda else 'fp32'
    d = build_model_dir(shape, torch.bfloat16 if cuda else torch.float32)
    tok = load_tokenizer(d)
    rows = a.batch_size * steps + a.batch_size
    raw = examples(int(rows * L / 300) + 50, shape['vocab_size'], 300 if not a.smoke else 60, L)
    train_ds = packed_dataset(Dataset.from_list(raw), L)
    real = sum(len(e['input_ids']) for e in raw) / len(train_ds)  # real tokens per packed row
    attn = 'flash_attention_2' if (cuda and probe_flash_attention()) else None
    dev = torch.cuda.get_device_name() if cuda else 'cpu (smoke test)'
    lines, res = [f"## GPU part: {dev}", ""], {}

    def ours(method, warm=3, gc_on=False):
        cfg = TrainConfig(method=method, precision=prec, pack=True, max_length=L, batch_size=a.batch_size, max_steps=steps,
                          logging_steps=10, gradient_checkpointing=gc_on)
        plan = estimate_memory(d, cfg, device='cuda' if cuda else 'cpu')
        clock = StepClock(min(warm, steps - 1))
        with PeakMemory('cuda' if cuda else 'cpu') as mem, tempfile.TemporaryDirectory() as tmp:
            model = prepare_model(load_model(d, quantize=cfg.quantize, precision=training_precision(cfg), attn_implementation=attn), cfg)
            n = count_parameters(model)
            fit(model, tok, train_ds, None, cfg, out=tmp, callbacks=[LossHistory(None), clock])
        del model; gc.collect(); torch.cuda.empty_cache() if cuda else None
        tps = a.batch_size * real / clock.seconds_per_step()
        return dict(tokens_per_s=tps, peak_gb=mem.peak_gb if cuda else mem.delta_gb, estimate_gb=plan.total, params=n)

    def trl(method, gc_on=False, warm=3):
        from trl import SFTConfig, SFTTrainer
        from peft import LoraConfig
        from domain_tuner.methods import linear_module_names
        model = load_model(d, precision=training_precision(TrainConfig(method=method, precision=prec)), attn_implementation=attn)
        pc = LoraConfig(r=16, lora_alpha=32, lora_dropout=TrainConfig().dropout, target_modules=linear_module_names(model), task_type='CAUSAL_LM') if method == 'lora' else None
        clock = StepClock(min(warm, steps - 1))
        with tempfile.TemporaryDirectory() as tmp:
            args = SFTConfig(output_dir=tmp, per_device_train_batch_size=a.batch_size, max_steps=steps, learning_rate=2e-4,
                             bf16=cuda, gradient_checkpointing=gc_on, packing=True, max_length=L, report_to='none',
                             save_strategy='no', logging_steps=10, use_cpu=not cuda, disable_tqdm=True)
            tr = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(raw), processing_class=tok, peft_config=pc,
                            callbacks=[clock])
            tr.train()
        del model, tr; gc.collect(); torch.cuda.empty_cache() if cuda else None
        return dict(tokens_per_s=a.batch_size * real / clock.seconds_per_step())

    pk = peak_flops(dev)
    for m in ('lora', 'full', 'qlora'):
        try: res[m] = ours(m)
        except Exception as e: res[m] = dict(error=repr(e)[:300])
    for k, gc_on in (('trl_lora', False), ('trl_lora_default_checkpointing', True)):
        try: res[k] = trl('lora', gc_on)
        except Exception as e: res[k] = dict(error=repr(e)[:300])
    N = res['full'].get('params', res['lora'].get('params', {})).get('total') if isinstance(res.get('full'), dict) else None
    lines += [f"Qwen2.5-0.5B-shaped Qwen2 config (random weights), {prec}, packed rows of {L} tokens x batch {a.batch_size} "
              f"({real:.0f} real tokens per row), attention {attn or 'sdpa (varlen per example)'}; {steps} steps, timed after 3.", "",
              "| run | tokens/s | MFU | peak memory GB | planner estimate GB |", "|---|---|---|---|---|"]
    for k, r in res.items():
        if 'error' in r: lines.append(f"| {k} | failed: {r['error']} | | | |"); continue
        n = (r.get('params') or {}).get('total') or N
        f = (6 if k == 'full' else 4) * n * r['tokens_per_s'] if n else None
        mfu = f"{f / pk:.1%}" if (f and pk) else 'n/a'
        lines.append(f"| {k} | {r['tokens_per_s']:,.0f} | {mfu} | {r.get('peak_gb', float('nan')):.2f} | {r.get('estimate_gb', float('nan')):.2f} |")
    lines += ["", "MFU = FLOPs per token (4N for LoRA: forward 2N + input gradients 2N, no weight gradients; 6N for full) x "
              f"tokens/s / the GPU's dense bf16 peak ({pk and f'{pk/1e12:.0f} TFLOP/s' or 'unknown'}); N counts every parameter "
              "once (the tied embedding as the output matmul); attention FLOPs are not counted, so MFU is a lower bound."]
    print('\n'.join(lines))
    print(json.dumps(res, default=str))
    return 0

if __name__ == '__main__': sys.exit(main())
