#!/usr/bin/env python
"""The device check: what only a CUDA GPU can show, in one run of a few minutes on a Qwen2.5-0.5B-shaped model built
from its config (random weights; nothing is downloaded).

  - full fine-tuning, LoRA and QLoRA in bf16 (the GPU's own choice), each with its loss falling;
  - the fp16 path a T4 takes (QLoRA, fp16 autocast, fp32 adapters, paged 8-bit AdamW);
  - adapter reload parity (logits of the trained model and of a reload) and merge parity (`merge`'s own check);
  - batched generation on a 4-bit model: the same answers at batch 16 as one at a time, without dense copies of the
    4-bit layers (peak memory above the loaded model, next to the dense model's size);
  - throughput in tokens/s and MFU, with FLOPs counted where they are computed (the output layer only at trained
    positions, as `supervised_loss` does; causal attention per example; weight gradients only for full fine-tuning);
  - peak memory (torch.cuda's allocator) against the memory planner;
  - LoRA through TRL's SFTTrainer on the same rows, for a ratio.

`make gpu-check` runs it, then the whole test suite, on the device; `make gpu-carry` builds the wheels it needs there.

    python bench/gpu_check.py --out DIR      # on a CUDA GPU: gpu_check.md and gpu_check.json in DIR
    python bench/gpu_check.py --smoke        # on a CPU (CI): every code path on a tiny shape in fp32, < 90 s
"""
from __future__ import annotations
import argparse, json, math, os, random, sys, tempfile, time, traceback
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault('DOMAIN_TUNER_QUIET', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

# dense bf16 peak of each GPU (fp16 for the T4), FLOP/s, from the vendors' data sheets (SXM parts)
PEAK_BF16 = {'H200': 989e12, 'H100': 989e12, 'H800': 989e12, 'A100': 312e12, 'L40S': 362e12, 'L4': 121e12,
             'A10': 125e12, 'T4': 65e12}
SMOKE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             vocab_size=1024, tie_word_embeddings=True)
# the run's targets on a GPU (the issue's); the smoke run checks correctness only
TARGETS = dict(lora_mfu=0.30, qlora_mfu=0.20, qlora_plan_error=0.15)

def peak_flops(name:str)->float|None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)

# ---- the model and the data ---------------------------------------------------------------------------------------
def build_base(smoke:bool)->Path:
    "A Qwen2 model of the Qwen2.5-0.5B shape (or the smoke shape) with random weights, saved once with a small tokenizer."
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from domain_tuner.memory import SHAPES
    from domain_tuner.tiny import build_tokenizer
    shape = SMOKE if smoke else SHAPES['Qwen2.5-0.5B'][1]
    d = Path(tempfile.gettempdir())/f"gpu-check-{'smoke' if smoke else 'qwen0.5b'}"
    if not (d/'config.json').exists():
        tok = build_tokenizer()
        cfg = Qwen2Config(**shape, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                          eos_token_id=tok.eos_token_id, bos_token_id=None)
        torch.manual_seed(0)
        m = Qwen2ForCausalLM(cfg)
        (m if smoke else m.to(torch.bfloat16)).save_pretrained(d); tok.save_pretrained(d)
    return d

def token_examples(n:int, vocab:int, mean_len:int, max_len:int, seed:int=0)->list[dict]:
    """Learnable token-id examples: a quarter prompt (no loss), then a 16-token motif from a 1,000-token sub-vocabulary
    repeated; log-normal lengths. A random-init model's loss falls fast on them (sub-vocabulary, then copying)."""
    rng = random.Random(seed)
    lo, hi = 16, 16 + min(1000, vocab // 8)
    out = []
    for _ in range(n):
        k = max(16, min(max_len, int(rng.lognormvariate(math.log(mean_len), 0.5))))
        motif = [rng.randrange(lo, hi) for _ in range(16)]
        ids = [motif[i % 16] for i in range(k)]
        p = k // 4
        out.append(dict(input_ids=ids, labels=[-100] * p + ids[p:]))
    return out

def step_flops(ps:dict, method:str, ex:list[dict], ckpt:bool)->float:
    """FLOPs of one pass over examples `ex` (a micro-batch), counted where they are computed: the linear layers at every
    token; the output layer only where the next token is trained; causal attention within each example; input gradients
    always, weight gradients only for full fine-tuning (LoRA's own are negligible); a recomputed forward under
    checkpointing."""
    h, L, V = ps['hidden'], ps['layers'], ps['vocab']
    T = sum(len(e['input_ids']) for e in ex)
    K = sum(sum(1 for t in e['labels'][1:] if t != -100) for e in ex)
    sq = sum(len(e['input_ids']) ** 2 for e in ex)
    body, head, attn = 2 * ps['linear'] * T, 2 * h * V * K, 2 * h * L * sq  # attention: QK^T and AV, half of each
    fwd = body + head + attn
    bwd = body + head + 2 * attn + ((body + head) if method == 'full' else 0)
    return fwd + bwd + ((body + attn) if ckpt else 0)

class StepClock:
    "A callback that times optimizer steps (synchronising the GPU), so the first `warmup` steps can be left out."
    def __new__(cls, warmup:int):
        from transformers import TrainerCallback
        class _Clock(TrainerCallback):
            def __init__(self): self.t = []
            def on_step_end(self, args, state, control, **kw):
                import torch
                if torch.cuda.is_available(): torch.cuda.synchronize()
                self.t.append(time.perf_counter())
            def seconds_per_step(self):
                w = min(warmup, len(self.t) - 2)
                return (self.t[-1] - self.t[w]) / (len(self.t) - 1 - w)
        return _Clock()

# ---- the checks -----------------------------------------------------------------------------------------------------
class Check:
    "Runs the checks in order, keeping each one's figures and pass/fail; an exception fails that check, not the run."
    def __init__(self): self.results, self.ok = {}, True
    def __call__(self, name:str, fn, *args, **kw):
        t0 = time.perf_counter()
        try: r = fn(*args, **kw)
        except Exception as e: r = dict(passed=False, error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-3000:])
        r['seconds'] = round(time.perf_counter() - t0, 1)
        self.results[name] = r; self.ok &= bool(r.get('passed'))
        print(f"[gpu_check] {name}: {'ok' if r.get('passed') else 'FAILED'} ({r['seconds']} s)"
              + (f" - {r['error']}" if 'error' in r else ''), flush=True)
        return r

def train_check(ctx, method:str, precision:str, steps:int, tag:str|None=None)->dict:
    "Train `method` in `precision` on the learnable rows; the loss, speed, MFU and peak memory against the plan."
    import torch
    from domain_tuner.methods import TrainConfig
    from domain_tuner.train import TrainJob, train_model, LossHistory
    from domain_tuner.memory import parameter_split
    cfg = TrainConfig(method=method, precision=precision, r=16, lr=(2e-4 if method == 'full' else 2e-3) * ctx.lr_scale,
                      batch_size=ctx.batch, max_length=ctx.max_len, max_steps=steps, logging_steps=1, warmup_ratio=0.1,
                      eval_before=False)
    out = ctx.tmp/(tag or f"{method}-{precision}")
    clock = StepClock(3)
    t = train_model(TrainJob(str(ctx.base), cfg, ctx.tok, ctx.train_ds, out=out, callbacks=[LossHistory(None), clock]))
    model = t.trainer.model
    model.save_pretrained(out); ctx.tok.save_pretrained(out)
    (out/'run_record.json').write_text(json.dumps(dict(quantize=cfg.quantize, method=method, precision=precision)))
    losses = [l['loss'] for l in t.history.logs if 'loss' in l]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    sps = clock.seconds_per_step()
    per_step = ctx.batch * ctx.mean_tokens
    flops = ctx.batch * ctx.flops_per_example[method] / sps
    peak = ctx.peak
    r = dict(precision=precision, autocast=str(t.trainer.args.bf16 and 'bf16' or t.trainer.args.fp16 and 'fp16' or 'none'),
             optimizer=t.trainer.args.optim.value if hasattr(t.trainer.args.optim, 'value') else str(t.trainer.args.optim),
             loss_first=first, loss_last=last, finite=all(math.isfinite(l) for l in losses),
             tokens_per_s=per_step / sps, mfu=(flops / peak) if (peak and ctx.cuda) else None,
             peak_gb=t.memory.measured_gb, plan_gb=t.plan.total, plan_error=t.plan.total / max(t.memory.measured_gb, 1e-9) - 1,
             params=parameter_split(model)['total'] if method == 'full' else None)
    r['passed'] = r['finite'] and last < first - ctx.min_drop
    ctx.trained[tag or f"{method}-{precision}"] = (model, out)
    del t
    return r

def reload_check(ctx, tag:str)->dict:
    "The trained adapter reloaded onto a fresh load of its base gives the in-memory model's logits."
    import torch
    from peft import PeftModel
    from domain_tuner.models import load_model
    from domain_tuner.methods import training_precision, TrainConfig
    from domain_tuner.data import Collator
    from accelerate.utils import extract_model_from_parallel
    model, out = ctx.trained[tag]
    model = extract_model_from_parallel(model, keep_fp32_wrapper=False)  # no training-time autocast around forward
    rec = json.loads((out/'run_record.json').read_text())
    prec = training_precision(TrainConfig(method=rec['method'], precision=rec['precision']))
    back = PeftModel.from_pretrained(load_model(ctx.base, quantize=rec['quantize'], precision=prec), str(out)).eval()
    b = {k: v.to(back.device) for k, v in Collator(ctx.tok)(ctx.probe).items()}
    with torch.no_grad():
        a = model.eval()(input_ids=b['input_ids'], attention_mask=b['attention_mask']).logits.float()
        c = back(input_ids=b['input_ids'], attention_mask=b['attention_mask']).logits.float()
    diff, scale = (a - c).abs().max().item(), max(1.0, a.abs().max().item())
    same = (a.argmax(-1) == c.argmax(-1))[b['attention_mask'].bool()].float().mean().item()
    del back
    tol = 1e-3 if prec.load_dtype == 'float32' else 1e-2  # the same dtypes on both sides: kernel order only
    return dict(max_diff=diff, logit_scale=scale, argmax_agreement=same, passed=diff <= tol * scale)

def merge_check(ctx, tag:str)->dict:
    "`merge` (16 bits, on the GPU when there is one) passes its own logit check against the adapter."
    from domain_tuner.merge import merge
    _, out = ctx.trained[tag]
    chk = merge(out, ctx.tmp/f"{tag}-merged")
    return dict(chk, passed=chk['max_diff'] <= chk['atol'] * chk['logit_scale']
                and (chk['device'] == 'cuda') == ctx.cuda)

def generation_check(ctx, tag:str)->dict:
    "A 4-bit model answers the same at batch 16 as one at a time; memory above the loaded model stays small."
    import torch
    from domain_tuner.models import load_trained
    from domain_tuner.generation import generate
    from domain_tuner.memory import PeakMemory
    _, out = ctx.trained[tag]
    model, tok = load_trained(out)  # a QLoRA adapter: its base in 4-bit, as trained
    prompts = [f"Report {i}: what was revenue in year {2000 + i}?" for i in range(16)]
    with PeakMemory(ctx.device) as mem: batched = generate(model, tok, prompts, max_new_tokens=24, batch_size=16)
    single = generate(model, tok, prompts, max_new_tokens=24, batch_size=1)
    agree = sum(a == b for a, b in zip(batched, single)) / len(prompts)
    dense = ctx.dense_bytes / 1e9
    above = mem.delta_gb  # beyond what was allocated before answering: the loaded 4-bit model and anything else
    r = dict(agreement=agree, above_model_gb=above, dense_model_gb=dense,
             quantized=any(type(m).__name__ == 'Linear4bit' for m in model.modules()))
    # batched (left-padded) and one-at-a-time greedy decoding may part at a near-tie of a barely trained model
    r['passed'] = r['quantized'] and agree >= 0.75 and (not ctx.cuda or above < 0.5 * dense)
    del model
    return r

def trl_check(ctx, steps:int)->dict:
    "LoRA on the same rows through TRL's SFTTrainer (padding-free), timed the same way: the ratio to ours."
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer
    from domain_tuner.models import load_model
    from domain_tuner.methods import linear_module_names, training_precision, TrainConfig
    model = load_model(ctx.base, precision=training_precision(TrainConfig(method='lora', precision=ctx.precision)))
    clock = StepClock(3)
    rows = [dict(input_ids=e['input_ids'], completion_mask=[int(t != -100) for t in e['labels']]) for e in ctx.examples]
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, per_device_train_batch_size=ctx.batch, max_steps=steps, learning_rate=2e-3,
                         bf16=ctx.precision == 'bf16', padding_free=True, max_length=None, report_to='none',
                         completion_only_loss=True, save_strategy='no', logging_steps=1, use_cpu=not ctx.cuda,
                         disable_tqdm=True)
        tr = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=ctx.tok,
                        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=TrainConfig().dropout,
                                               target_modules=linear_module_names(model), task_type='CAUSAL_LM'),
                        callbacks=[clock])
        from transformers.trainer_callback import PrinterCallback
        tr.remove_callback(PrinterCallback)  # its log lines would bury the report
        tr.train()
    tps = ctx.batch * ctx.mean_tokens / clock.seconds_per_step()
    del model, tr
    return dict(tokens_per_s=tps, passed=True)

# ---- the run --------------------------------------------------------------------------------------------------------
class Context: pass

def main(argv=None)->int:
    p = argparse.ArgumentParser(prog='python bench/gpu_check.py', description=__doc__.splitlines()[0])
    p.add_argument('--smoke', action='store_true', help="the same code paths on a tiny shape on the CPU (CI)")
    p.add_argument('--out', default=None, help="folder for gpu_check.md and gpu_check.json")
    p.add_argument('--steps', type=int, default=40, help="optimizer steps per training check on a GPU")
    a = p.parse_args(argv)
    t_start = time.perf_counter()
    import torch
    from datasets import Dataset
    from domain_tuner.core import probe_cuda, probe_bitsandbytes, release_memory, environment_info, select_precision
    from domain_tuner.models import load_tokenizer
    from domain_tuner.memory import parameter_split
    cuda = bool(probe_cuda()) and not a.smoke
    if not cuda and not a.smoke:
        print("no CUDA GPU here: run with --smoke to check the code paths on the CPU"); return 2
    if a.smoke: os.environ['DOMAIN_TUNER_DEVICE'] = 'cpu'; torch.set_num_threads(min(2, os.cpu_count() or 1))
    os.environ.pop('DOMAIN_TUNER_PRECISION', None)  # the GPU's own choices are what is checked
    ctx = Context()
    ctx.cuda, ctx.device = cuda, 'cuda' if cuda else 'cpu'
    ctx.precision = 'bf16' if (cuda and select_precision().has_bf16) else ('fp16' if cuda else 'fp32')
    ctx.tmp = Path(tempfile.mkdtemp(prefix='gpu-check-'))
    ctx.base = build_base(a.smoke)
    ctx.tok = load_tokenizer(ctx.base)
    ps = parameter_split(ctx.base)
    ctx.batch, ctx.max_len = (4, 128) if a.smoke else (16, 1024)
    steps = 12 if a.smoke else a.steps
    ctx.examples = token_examples(ctx.batch * (steps + 2), ps['vocab'], 64 if a.smoke else 512, ctx.max_len)
    ctx.train_ds = Dataset.from_list(ctx.examples)
    ctx.probe = ctx.examples[:4]
    ctx.mean_tokens = sum(len(e['input_ids']) for e in ctx.examples) / len(ctx.examples)
    ctx.flops_per_example = {m: step_flops(ps, m, ctx.examples, ckpt=False) / len(ctx.examples)
                             for m in ('full', 'lora', 'qlora')}
    ctx.dense_bytes = ps['total'] * 2
    gpu = torch.cuda.get_device_name() if cuda else 'CPU (smoke run)'
    ctx.peak = peak_flops(gpu)
    ctx.min_drop, ctx.lr_scale = (0.05, 10) if a.smoke else (0.5, 1)
    ctx.trained = {}
    check = Check()
    qlora = bool(probe_bitsandbytes())
    for m in (('qlora',) if qlora else ()) + ('full', 'lora'):  # the LoRA model stays for the parity checks
        check(f"train {m} {ctx.precision}", train_check, ctx, m, ctx.precision, steps)
        if m != 'lora': ctx.trained.pop(f"{m}-{ctx.precision}", None); release_memory()
    if qlora:  # a T4's path: fp16 autocast, fp32 adapters, paged 8-bit AdamW; on the CPU its choice, trained in fp32
        t4 = select_precision(device='cuda', capability=(7, 5))
        check("T4 precision choice", lambda: dict(autocast=t4.autocast, adapter_dtype=t4.adapter_dtype,
                                                  passed=(t4.autocast, t4.adapter_dtype) == ('float16', 'float32')))
        check("train qlora fp16 (T4 path)", train_check, ctx, 'qlora', 'fp16' if cuda else 'fp32', max(steps // 2, 6), 'qlora-t4')
    check("adapter reload parity (lora)", reload_check, ctx, f"lora-{ctx.precision}")
    if qlora: check("adapter reload parity (qlora)", reload_check, ctx, 'qlora-t4')
    check("merge parity (lora)", merge_check, ctx, f"lora-{ctx.precision}")
    if qlora: check("batched generation on a 4-bit model", generation_check, ctx, 'qlora-t4')
    ctx.trained.clear(); release_memory()
    try:
        import trl  # noqa
        check("TRL SFTTrainer LoRA (same rows)", trl_check, ctx, steps)
    except ImportError: pass
    res = check.results
    targets = []
    if cuda:
        for key, m in (('lora_mfu', 'lora'), ('qlora_mfu', 'qlora')):
            r = res.get(f"train {m} {ctx.precision}", {})
            targets.append((f"{m} MFU >= {TARGETS[key]:.0%}", r.get('mfu'), (r.get('mfu') or 0) >= TARGETS[key]))
        r = res.get(f"train qlora {ctx.precision}", {})
        e = r.get('plan_error')
        targets.append(("QLoRA peak within 15% of the plan", e, e is not None and abs(e) <= TARGETS['qlora_plan_error']))
    lines = _markdown(gpu, ctx, res, targets, steps, time.perf_counter() - t_start)
    print('\n'.join(lines))
    if a.out:
        o = Path(a.out); o.mkdir(parents=True, exist_ok=True)
        (o/'gpu_check.md').write_text('\n'.join(lines) + '\n')
        (o/'gpu_check.json').write_text(json.dumps(dict(gpu=gpu, environment=environment_info(), results=res,
                                                        targets=targets), indent=1, default=str))
    return 0 if check.ok and all(t[2] for t in targets) else 1

def _markdown(gpu, ctx, res, targets, steps, seconds)->list[str]:
    f = lambda v, spec: '' if v is None else format(v, spec)
    lines = [f"## GPU check: {gpu}", "",
             f"`python bench/gpu_check.py{'' if ctx.cuda else ' --smoke'}` ({seconds:.0f} s): "
             f"{'a Qwen2.5-0.5B-shaped' if ctx.cuda else 'a tiny (smoke)'} Qwen2 (random weights) on learnable token rows, batch {ctx.batch} padding-free, {ctx.mean_tokens:.0f} tokens per example on average, {steps} "
             f"steps timed after 3, precision {ctx.precision}.", "",
             "| check | passed | loss first -> last | tokens/s | MFU | peak GB | plan GB | plan / peak - 1 | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k, r in res.items():
        if 'error' in r: lines.append(f"| {k} | **no**: {r['error'][:160]} | | | | | | | {r['seconds']} |"); continue
        loss = f"{r['loss_first']:.2f} -> {r['loss_last']:.2f}" if 'loss_first' in r else ''
        lines.append(f"| {k} | {'yes' if r['passed'] else '**no**'} | {loss} | {f(r.get('tokens_per_s'), ',.0f')} | "
                     f"{f(r.get('mfu'), '.1%')} | {f(r.get('peak_gb'), '.2f')} | {f(r.get('plan_gb'), '.2f')} | "
                     f"{f(r.get('plan_error'), '+.1%')} | {r['seconds']} |")
    extra = {k: {x: v for x, v in r.items() if x in ('max_diff', 'logit_scale', 'argmax_agreement', 'atol', 'device',
                                                      'agreement', 'above_model_gb', 'dense_model_gb')}
             for k, r in res.items() if 'error' not in r}
    lines += ["", *[f"- {k}: " + ', '.join(f"{x} {v:.4g}" if isinstance(v, float) else f"{x} {v}" for x, v in d.items())
                    for k, d in extra.items() if d]]
    if targets:
        lines += ["", "| target | got | met |", "|---|---|---|",
                  *[f"| {d} | {'' if v is None else f'{v:.3g}'} | {'yes' if ok else '**no**'} |" for d, v, ok in targets]]
    lines += ["", "MFU = FLOPs counted where computed (linear layers at every token, the output layer at trained "
              "positions only, causal attention per example, weight gradients for full fine-tuning alone) x steps/s / "
              f"the GPU's dense bf16 peak ({f(ctx.peak and ctx.peak / 1e12, '.0f') or 'unknown'} TFLOP/s)."]
    return lines

if __name__ == '__main__': sys.exit(main())
