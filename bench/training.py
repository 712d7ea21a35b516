"""Training benchmarks: (1) padding efficiency, (2) throughput against TRL's SFTTrainer at equal quality,
(3) LoRA against full fine-tuning, (7) the engine's overhead outside forward, backward and optimizer step."""
from __future__ import annotations
import math, os, tempfile, time, warnings
from pathlib import Path
from .common import Result, timed_section, alternate, median, instructions, model_dir, encoded, load_average

TRAIN_SHAPE = dict(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2)           # ~2.6M parameters
WIDE_SHAPE = dict(hidden_size=1024, num_layers=2, num_heads=16, num_kv_heads=4, intermediate_size=2816)
LR, BATCH, MAX_LEN, QUALITY_TOL = 1e-3, 8, 512, 0.01

def _quiet_logs():
    import logging
    for n in ('transformers', 'trl', 'accelerate', 'peft'): logging.getLogger(n).setLevel(logging.ERROR)
    warnings.filterwarnings('ignore')

def _model(d, method='full'):
    from domain_tuner.models import load_model
    from domain_tuner.methods import TrainConfig, prepare_model
    from domain_tuner.core import seed_everything
    seed_everything(0)
    return prepare_model(load_model(d), TrainConfig(method=method))

def response_loss(model, ds, batch_size=8)->float:
    "Mean cross-entropy per response token over `ds` (padded batches, eval mode): the quality figure."
    import torch
    from domain_tuner.data import Collator
    col, tot, n = Collator(pad_token_id=0), 0.0, 0
    model.eval()
    rows = [dict(input_ids=a, labels=b) for a, b in zip(ds['input_ids'], ds['labels'])]
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            b = col(rows[i:i + batch_size])
            logits = model(input_ids=b['input_ids'], attention_mask=b['attention_mask'], use_cache=False).logits[:, :-1].float()
            lab = b['labels'][:, 1:]
            tot += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1), ignore_index=-100, reduction='sum'))
            n += int((lab != -100).sum())
    model.train()
    return tot / n

def _ours(d, tok, train_ds, eval_ds, method='full', lr=LR, **cfg_kw):
    from domain_tuner.methods import TrainConfig
    from domain_tuner.train import fit, LossHistory
    cfg = TrainConfig(method=method, lr=lr, batch_size=BATCH, max_length=MAX_LEN, epochs=1, logging_steps=10, **cfg_kw)
    model = _model(d, method)
    with tempfile.TemporaryDirectory() as tmp:
        tr, m, _ = fit(model, tok, train_ds, None, cfg, out=tmp, callbacks=[LossHistory(None)])
    return dict(seconds=m['train_seconds'], steps=m['steps'], records=len(tr.train_dataset),
                loss=response_loss(model, eval_ds) if eval_ds is not None else None)

def _trl(d, tok, train_ds, eval_ds, packing=False, batch=BATCH, sensible=True, max_steps=-1):
    from trl import SFTConfig, SFTTrainer
    model = _model(d, 'full')
    cpu = dict(bf16=False, gradient_checkpointing=False) if sensible else {}  # TRL's defaults: bf16 autocast, checkpointing on
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, per_device_train_batch_size=batch, num_train_epochs=1, max_steps=max_steps,
                         learning_rate=LR, lr_scheduler_type='cosine', warmup_steps=0.03, weight_decay=0.0, max_grad_norm=1.0,
                         use_cpu=True, logging_steps=10, save_strategy='no', report_to='none',
                         seed=0, data_seed=0, max_length=MAX_LEN, packing=packing, disable_tqdm=True,
                         dataloader_num_workers=0, **cpu)
        tr = SFTTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tok)
        from transformers.trainer_callback import PrinterCallback
        tr.remove_callback(PrinterCallback)  # printing only; ours prints nothing either
        t = time.perf_counter(); tr.train(); secs = time.perf_counter() - t
        steps, records = tr.state.global_step, len(tr.train_dataset)  # after TRL's own processing (it may drop rows)
    return dict(seconds=secs, steps=steps, records=records, loss=response_loss(model, eval_ds) if eval_ds is not None and max_steps < 0 else None)

def padding_efficiency(tok, train_ds, seed=0)->Result:
    "(1) real tokens / token slots over one epoch of batches of 8, in a seeded random order."
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    from domain_tuner.methods import TrainConfig
    from domain_tuner.train import batch_collator
    res = Result('padding', '1. Padding efficiency')
    with timed_section(res):
        rows = [dict(input_ids=a, labels=b) for a, b in zip(train_ds['input_ids'], train_ds['labels'])]
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
        real = sum(len(r['input_ids']) for r in rows)
        sides = dict(ours=batch_collator(tok, TrainConfig(batch_size=BATCH, max_length=MAX_LEN)),
                     trl=DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id),
                     padded=batch_collator(tok, TrainConfig(batch_size=BATCH, max_length=MAX_LEN, padding_free=False)))
        eff = {}
        for k, col in sides.items():
            slots = sum(col([rows[i] for i in order[s:s + BATCH]])['input_ids'].numel() for s in range(0, len(rows), BATCH))
            eff[k] = real / slots
        res.figures.update(ours=eff['ours'], trl_default=eff['trl'], ratio=eff['ours'] / eff['trl'])
        res.targets += [("ours >= 0.95 real tokens per slot", f"{eff['ours']:.3f}", eff['ours'] >= 0.95),
                        ("ours / TRL default collator >= 2x", f"{eff['ours'] / eff['trl']:.2f}x", eff['ours'] / eff['trl'] >= 2)]
        res.notes.append(f"{len(rows)} examples, {real:,} real tokens, batches of {BATCH} in a seeded random order. "
                         f"Ours: `padding_free=True` (the default) joins each batch's examples into one row with position ids "
                         f"restarting per example, so there are no pad slots; TRL's default `DataCollatorForLanguageModeling` "
                         f"pads each batch to its longest example ({eff['trl']:.3f}); our padded collator gives {eff['padded']:.3f}.")
    return res

def throughput(d, tok, train_ds, eval_ds, repeats=3, trl_default_steps=3)->Result:
    "(2) useful tokens/s over one epoch, full fine-tuning: ours vs TRL padded vs TRL packed, alternated; equal quality."
    res = Result('throughput', '2. Training throughput vs TRL SFTTrainer (full fine-tuning, one epoch)')
    real = sum(len(x) for x in train_ds['input_ids'])
    mean_len = real / len(train_ds)
    pack_batch = max(1, round(BATCH * mean_len / MAX_LEN))  # TRL packed rows: about the same tokens per step as ours
    with timed_section(res):
        runs = alternate(dict(ours=lambda: _ours(d, tok, train_ds, eval_ds),
                              trl_padded=lambda: _trl(d, tok, train_ds, eval_ds),
                              trl_packed=lambda: _trl(d, tok, train_ds, eval_ds, packing=True, batch=pack_batch)), repeats)
        tps = {k: median([real / r['seconds'] for r in v]) for k, v in runs.items()}
        loss = {k: median([r['loss'] for r in v]) for k, v in runs.items()}
        steps = {k: v[0]['steps'] for k, v in runs.items()}
        records = {k: v[0]['records'] for k, v in runs.items()}
        default = None
        if trl_default_steps:
            try:
                r = _trl(d, tok, train_ds, None, sensible=False, max_steps=trl_default_steps)
                # tokens in the first N batches are not known exactly; the epoch mean per step is a fair estimate
                default = (real / steps['trl_padded']) * r['steps'] / r['seconds']
            except Exception as e: res.notes.append(f"TRL with its default bf16 autocast + gradient checkpointing failed here: {e!r:.200}")
        r_pad, r_pack = tps['ours'] / tps['trl_padded'], tps['ours'] / tps['trl_packed']
        res.figures.update(tokens_per_s=tps, response_loss=loss, steps=steps, records=records, ratio_vs_padded=r_pad, ratio_vs_packed=r_pack,
                           trl_default_tokens_per_s=default)
        res.targets += [("both sides train on the same records", f"{records['ours']} vs {records['trl_padded']}",
                         records['ours'] == records['trl_padded'] == len(train_ds)),
                        ("ours / TRL padded >= 1.5x", f"{r_pad:.2f}x", r_pad >= 1.5),
                        ("ours / TRL packed >= 1.0x", f"{r_pack:.2f}x", r_pack >= 1.0),
                        (f"equal quality: our response loss <= TRL padded + {QUALITY_TOL}", f"{loss['ours']:.4f} vs {loss['trl_padded']:.4f}",
                         loss['ours'] <= loss['trl_padded'] + QUALITY_TOL)]
        res.notes += [
            f"Model: Llama {TRAIN_SHAPE} (random weights, vocab 1024); {len(train_ds)} examples, {real:,} real tokens "
            f"(mean {mean_len:.0f}, max {max(len(x) for x in train_ds['input_ids'])}); AdamW lr {LR:g}, cosine, warm-up 3%, "
            f"batch {BATCH}, max_length {MAX_LEN}, loss on responses only (the same encoded examples, `labels` -100 "
            f"outside responses, given to both). Tokens/s = real (non-pad) tokens of the epoch / seconds in `train()`; "
            f"median of {repeats} alternated runs.",
            "| side | records trained | tokens/s (median) | optimizer steps | response loss after the epoch (held-out) |",
            "|---|---|---|---|---|",
            *[f"| {k} | {records[k]} | {tps[k]:,.0f} | {steps[k]} | {loss[k]:.4f} |" for k in tps],
            f"TRL is configured as a CPU user would: `bf16=False, gradient_checkpointing=False` (TRL's defaults turn both on). "
            f"TRL packed: `packing=True` (strategy bfd, which turns padding-free on), rows of {MAX_LEN} tokens, "
            f"{pack_batch} rows per step so a step holds about as many tokens as ours; it takes "
            f"{steps['trl_packed']} steps instead of {steps['trl_padded']}, which the equal-quality rule exists to expose.",
        ]
        if default: res.notes.append(f"TRL with its defaults (bf16 autocast + gradient checkpointing), {trl_default_steps} steps: "
                                     f"about {default:,.0f} tokens/s, {tps['trl_padded'] / default:.1f}x slower than TRL configured for the CPU.")
    return res

def lora_vs_full(repeats=3, n=96)->Result:
    "(3) tokens/s of LoRA vs full fine-tuning on the same wide model, our engine both sides."
    from domain_tuner.methods import TrainConfig
    from domain_tuner.models import load_tokenizer
    d = model_dir('wider', **WIDE_SHAPE); tok = load_tokenizer(d)
    ds = encoded(instructions(n, seed=3), tok, MAX_LEN)
    real = sum(len(x) for x in ds['input_ids'])
    res = Result('lora', '3. LoRA vs full fine-tuning tokens/s (same model, our engine)')
    with timed_section(res):
        runs = alternate(dict(full=lambda: _ours(d, tok, ds, None, 'full'), lora=lambda: _ours(d, tok, ds, None, 'lora', lr=2e-4)), repeats)
        tps = {k: median([real / r['seconds'] for r in v]) for k, v in runs.items()}
        ratio = tps['lora'] / tps['full']
        res.figures.update(tokens_per_s=tps, ratio=ratio)
        res.targets.append(("LoRA / full >= 1.3x", f"{ratio:.2f}x", ratio >= 1.3))
        res.notes.append(f"Model: Llama {WIDE_SHAPE} (vocab 1024); {n} examples, {real:,} tokens, batch {BATCH}, LoRA r=16 on all "
                         f"linear layers (dropout {TrainConfig().dropout:g}, the default). Full {tps['full']:,.0f} tokens/s, LoRA {tps['lora']:,.0f} tokens/s. "
                         "Why this shape: LoRA saves the weight gradients of the frozen layers (one of the three matmuls per "
                         "linear layer) and the AdamW update of the frozen weights; that saving is only visible where the linear "
                         "layers dominate the step, i.e. a hidden size that is large next to the number of layers and the "
                         "attention/embedding work. On a 64-wide toy model the step is all Python and memory traffic and both run alike.")
    return res

def overhead(d, tok, train_ds)->Result:
    "(7) share of `train()` wall time outside forward, backward and optimizer step, for our default full fine-tuning run."
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook, register_optimizer_step_post_hook
    from domain_tuner.methods import TrainConfig
    from domain_tuner.train import fit, DomainTrainer, LossHistory
    res = Result('overhead', '7. Overhead outside forward, backward and optimizer step')
    acc = dict(forward=0.0, backward=0.0, optimizer=0.0)
    t = {}
    def pre(name): t[name] = time.perf_counter()
    def post(name): acc[name] += time.perf_counter() - t[name]
    with timed_section(res):
        model = _model(d, 'full')
        h1 = model.register_forward_pre_hook(lambda m, a: pre('forward'))
        h2 = model.register_forward_hook(lambda m, a, o: post('forward'))
        h3 = register_optimizer_step_pre_hook(lambda o, a, k: pre('optimizer'))
        h4 = register_optimizer_step_post_hook(lambda o, a, k: post('optimizer'))
        orig = DomainTrainer.training_step
        def step(self, *a, **k):
            bw = self.accelerator.backward
            def timed_bw(loss, **kw):
                pre('backward'); r = bw(loss, **kw); post('backward'); return r
            self.accelerator.backward = timed_bw
            try: return orig(self, *a, **k)
            finally: self.accelerator.backward = bw
        DomainTrainer.training_step = step
        try:
            with tempfile.TemporaryDirectory() as tmp:
                _, m, _ = fit(model, tok, train_ds, None, TrainConfig(method='full', lr=LR, batch_size=BATCH, max_length=MAX_LEN,
                                                                      logging_steps=10), out=tmp, callbacks=[LossHistory(None)])
        finally:
            DomainTrainer.training_step = orig
            for h in (h1, h2, h3, h4): h.remove()
        total = m['train_seconds']; inside = sum(acc.values()); share = 1 - inside / total
        res.figures.update(share=share, total_s=total, **{k + '_s': v for k, v in acc.items()}, steps=m['steps'])
        res.targets.append(("time outside forward + backward + optimizer step <= 5%", f"{share:.1%}", share <= 0.05))
        res.notes.append(f"One epoch of the throughput run ({m['steps']} steps, {TRAIN_SHAPE}): `train()` {total:.2f} s; forward "
                         f"{acc['forward']:.2f} s, backward {acc['backward']:.2f} s, optimizer step {acc['optimizer']:.2f} s; the rest "
                         f"({total - inside:.2f} s: data loading and collation, gradient clipping, zero_grad, scheduler, callbacks, "
                         f"logging) is the overhead. Forward/backward are timed with module hooks and a wrapper around "
                         f"`accelerator.backward`, the optimizer with torch's global step hooks.")
    return res
