"""(13) The training loss's output layer in chunks (`domain_tuner.loss.chunked_nll`) where the logits dominate: a
Qwen2.5-shaped model (its 151,936-token vocabulary, 2 narrow layers, built from a config) on 4 x 1,024 tokens, every
token trained as in continued pre-training. Peak host memory of one training step above the step's start, the loss,
the gradient and the step time, with the whole output layer at once and in the trainer's chunks, each side in its own
child process, alternated.

Child mode: python -m bench.chunked_loss CHUNK  -> one JSON line (CHUNK 0: the whole output layer at once)."""
from __future__ import annotations
import json, statistics, sys, time
from .common import Result, timed_section, run_child

SHAPE = dict(vocab_size=151936, hidden_size=256, intermediate_size=768, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, tie_word_embeddings=True)
BATCH, LENGTH = 4, 1024

def child(chunk:str):
    import torch
    from transformers import Qwen2Config, AutoModelForCausalLM
    from domain_tuner.loss import supervised_loss
    from domain_tuner.memory import PeakMemory
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(Qwen2Config(**SHAPE)).train()
    ids = torch.randint(0, SHAPE['vocab_size'], (BATCH, LENGTH), generator=torch.Generator().manual_seed(1))
    batch = dict(input_ids=ids, labels=ids.clone(), use_cache=False)
    step = lambda: supervised_loss(m, batch, chunk=int(chunk) or None)[0]
    m.zero_grad(); step().backward()  # warm-up: allocator and kernels
    m.zero_grad(set_to_none=True)
    with PeakMemory('cpu') as pk:
        t0 = time.perf_counter(); loss = step(); loss.backward(); secs = time.perf_counter() - t0
    g = torch.cat([p.grad.flatten() for p in m.parameters()])
    print(json.dumps(dict(chunk=int(chunk), loss=float(loss.detach()), grad_norm=float(g.norm()), grad_head=g[:4096].tolist(),
                          above_start=pk.delta_gb, seconds=secs)))

def chunked_loss(repeats:int=2)->Result:
    from domain_tuner.loss import LOSS_CHUNK_BYTES
    from domain_tuner.memory import estimate_memory
    from domain_tuner.methods import TrainConfig
    from transformers import Qwen2Config
    chunk = LOSS_CHUNK_BYTES // (4 * SHAPE['vocab_size'])
    res = Result('chunked', '13. The training loss in chunks where the logits dominate (child process RSS)')
    with timed_section(res):
        runs = {0: [], chunk: []}
        for _ in range(repeats):
            for c in runs: runs[c].append(run_child('bench.chunked_loss', c))
        whole, part = runs[0][0], runs[chunk][0]
        diff = max(abs(a - b) for a, b in zip(whole['grad_head'], part['grad_head']))
        mem = {c: statistics.median(r['above_start'] for r in rs) for c, rs in runs.items()}
        sec = {c: statistics.median(r['seconds'] for r in rs) for c, rs in runs.items()}
        cfg = TrainConfig(method='full', batch_size=BATCH, max_length=LENGTH)
        planned = estimate_memory(Qwen2Config(**SHAPE), cfg, dtype='float32', device='cuda').logits
        res.figures.update(chunk=chunk, above_start_gb=mem, seconds=sec, loss={0: whole['loss'], chunk: part['loss']},
                           grad_norm={0: whole['grad_norm'], chunk: part['grad_norm']}, grad_max_diff=diff,
                           planned_logits_gb=planned)
        res.targets += [("same loss (relative difference <= 1e-5)", f"{whole['loss']:.6f} vs {part['loss']:.6f}",
                         abs(whole['loss'] - part['loss']) <= 1e-5 * abs(whole['loss'])),
                        ("same gradient (norm within 1e-4 relative)", f"{whole['grad_norm']:.5g} vs {part['grad_norm']:.5g}",
                         abs(whole['grad_norm'] - part['grad_norm']) <= 1e-4 * whole['grad_norm']),
                        ("a step's peak above its start at most 1/3 of the whole output layer's",
                         f"{mem[chunk]:.2f} vs {mem[0]:.2f} GB ({mem[chunk] / mem[0]:.2f}x)", mem[chunk] <= mem[0] / 3)]
        res.notes += [f"A Qwen2-shaped model from a config ({SHAPE}), fp32, one training step (forward and backward) on "
                      f"{BATCH} x {LENGTH} random tokens, all trained. Each side runs in a fresh child process after a "
                      f"warm-up step; peak = VmHWM above the step's start (`PeakMemory`); medians of {repeats} alternated "
                      f"runs. Chunks of {chunk} positions (`LOSS_CHUNK_BYTES` = {LOSS_CHUNK_BYTES / 2**20:.0f} MiB of fp32 "
                      f"logits); the planner counts {planned:.2f} GB for them.",
                      "| output layer | peak above the step's start GB | step s | loss | gradient norm |",
                      "|---|---|---|---|---|",
                      *[f"| {'whole' if c == 0 else f'chunks of {c}'} | {mem[c]:.2f} | {sec[c]:.1f} | "
                        f"{runs[c][0]['loss']:.6f} | {runs[c][0]['grad_norm']:.5g} |" for c in runs],
                      f"Step time, chunks / whole: {sec[chunk] / sec[0]:.2f}x (the backward pass computes each chunk's "
                      f"logits again). Largest difference in the first 4,096 gradient entries: {diff:.2e}."]
    return res

if __name__ == '__main__': child(sys.argv[1])
