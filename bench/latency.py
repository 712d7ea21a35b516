"""(8) Inference latency of a merged adapter and of an unmerged (PEFT) adapter against the base model."""
from __future__ import annotations
import tempfile, time
from pathlib import Path
from .common import Result, timed_section, alternate, median, model_dir

SHAPE = dict(hidden_size=768, num_layers=2, num_heads=12, num_kv_heads=4, intermediate_size=2048)
PROMPT, NEW = 128, 32

def merged_latency(repeats:int=5)->Result:
    import torch
    from peft import get_peft_model
    from domain_tuner.models import load_model, load_tokenizer
    from domain_tuner.methods import TrainConfig, lora_config
    from domain_tuner.merge import merge
    d = model_dir('wide', **SHAPE)
    res = Result('latency', '8. Merged and unmerged adapter latency vs the base model')
    with timed_section(res), tempfile.TemporaryDirectory() as tmp:
        base = load_model(d).eval()
        torch.manual_seed(0)
        adapter = get_peft_model(load_model(d), lora_config(TrainConfig(method='lora'), load_model(d)))
        with torch.no_grad():  # a trained-looking adapter: B is zero at initialisation, which would merge to nothing
            for n, p in adapter.named_parameters():
                if 'lora_B' in n: p.normal_(0, 0.02)
        adapter.save_pretrained(Path(tmp)/'adapter'); load_tokenizer(d).save_pretrained(Path(tmp)/'adapter')
        check = merge(Path(tmp)/'adapter', Path(tmp)/'merged', base=d)   # the project's merge: reload, merge, check logits, save
        merged = load_model(Path(tmp)/'merged').eval()
        adapter = adapter.eval()
        g = torch.Generator().manual_seed(0)
        prompt = torch.randint(10, base.config.vocab_size, (1, PROMPT), generator=g)
        def fwd(m):
            def run():
                with torch.no_grad():
                    t = time.perf_counter()
                    m(input_ids=prompt, use_cache=False)
                    return time.perf_counter() - t
            return run
        def gen(m):
            def run():
                with torch.no_grad():
                    t = time.perf_counter()
                    m.generate(input_ids=prompt[:, :32], max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
                    return time.perf_counter() - t
            return run
        models = dict(base=base, base_again=load_model(d).eval(), merged=merged, unmerged=adapter)  # base_again: the noise floor
        for m in models.values(): fwd(m)(); gen(m)()  # warm-up
        f = {k: median(v) for k, v in alternate({k: fwd(m) for k, m in models.items()}, 8 * repeats).items()}  # one forward per turn, finely interleaved
        gn = {k: median(v) for k, v in alternate({k: gen(m) for k, m in models.items()}, repeats).items()}
        r = {f'{k}_{w}': x[k] / x['base'] for w, x in (('forward', f), ('generate', gn)) for k in ('base_again', 'merged', 'unmerged')}
        res.figures.update(forward_s=f, generate_s=gn, merge_check=check, **r)
        res.targets += [(f"merged / base <= 1.02x ({w})", f"{r['merged_' + w]:.3f}x", r['merged_' + w] <= 1.02) for w in ('forward', 'generate')]
        res.targets += [(f"unmerged / base <= 1.2x ({w})", f"{r['unmerged_' + w]:.3f}x", r['unmerged_' + w] <= 1.2) for w in ('forward', 'generate')]
        res.notes += [f"Model: Llama {SHAPE}, vocab 1024, fp32; LoRA r=16 on all linear layers (B filled with N(0, 0.02) so the "
                      f"merge changes the weights), merged with `domain_tuner.merge.merge` (max logit difference "
                      f"{check['max_diff']:.1e}). forward: one {PROMPT}-token prompt, no cache; generate: {NEW} greedy tokens after "
                      f"a 32-token prompt. Median of {8 * repeats} (forward) and {repeats} (generate) alternated repeats, one call per turn. `base_again` is a second copy of the base model, "
                      f"timed like the others: its ratio to the base ({r['base_again_forward']:.3f}x forward, "
                      f"{r['base_again_generate']:.3f}x generate) is the noise floor of this run on this shared machine.",
                      "| model | forward ms | generate ms |", "|---|---|---|",
                      *[f"| {k} | {f[k]*1e3:.1f} | {gn[k]*1e3:.1f} |" for k in models]]
    return res
