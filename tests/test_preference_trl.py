"""Our DPO, IPO, KTO and ORPO losses against TRL's trainers on the same batch and model (issue 24: DPO loss within 1e-4
and gradients within 1e-3, relative, of TRL's `DPOTrainer`).

TRL tokenizes the data and builds its batch; the same tensors go through `domain_tuner.preference` (labels = the
completion tokens TRL scores), and the loss and every trainable gradient are compared. The policy differs from the
reference (noise on the weights, or on LoRA's B matrices), so the losses are not at their trivial starting value."""
import copy, os, warnings
import pytest

trl = pytest.importorskip('trl')
torch = pytest.importorskip('torch')
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from domain_tuner.tiny import tiny_model_dir
from domain_tuner.methods import TrainConfig
from domain_tuner.preference import preference_loss, sequence_logps, orpo_loss

BETA, LOSS_TOL, GRAD_TOL = 0.1, 1e-4, 1e-3
Q = ["What was revenue?", "How did net income change?", "Is the company liquid?", "Define debt to equity."]
GOOD = ["Revenue was $12.4 million.", "Net income rose to $1.9 million.", "Yes, current assets exceed liabilities.",
        "Total liabilities divided by equity."]
BAD = ["Not reported in the document.", "It fell to $7.0 million.", "No.", "Equity over assets."]

@pytest.fixture(scope='module')
def setup():
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore')
    d = tiny_model_dir()
    return d, AutoTokenizer.from_pretrained(d)

def _models(d, seed=0, perturb=0.05, ref_perturb=0.0):
    "A reference (the tiny model, optionally with noise) and a policy that differs from it."
    ref = AutoModelForCausalLM.from_pretrained(d)
    pol = copy.deepcopy(ref)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in pol.parameters(): p.add_(perturb * torch.randn(p.shape, generator=g))
        for p in ref.parameters(): p.add_(ref_perturb * torch.randn(p.shape, generator=g))
    return pol, ref

def _args(cls, **kw):
    return cls(output_dir=os.path.join(os.environ.get('TMPDIR', '/tmp'), 'dt_trl_parity'), per_device_train_batch_size=4,
               use_cpu=True, bf16=False, activation_checkpointing=False, report_to='none', save_strategy='no',
               dataloader_num_workers=0, seed=0, disable_tqdm=True, max_length=256, beta=BETA, **kw)

def _pairs():
    return Dataset.from_dict({"prompt": [[{"role": "user", "content": q}] for q in Q],
                              "chosen": [[{"role": "assistant", "content": a}] for a in GOOD],
                              "rejected": [[{"role": "assistant", "content": a}] for a in BAD]})

def _ours(ids, am, scored):
    "Our batch layout from TRL's: labels are the tokens TRL scores (its completion mask), -100 elsewhere."
    return dict(input_ids=ids, attention_mask=am, labels=ids.masked_fill(scored == 0, -100))

def _grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(); loss.backward()
    g = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    model.zero_grad(set_to_none=True)
    return float(loss), g

def _agree(trl_side, ours_side):
    (l_trl, g_trl), (l_ours, g_ours) = trl_side, ours_side
    assert abs(l_trl - l_ours) <= LOSS_TOL * max(1.0, abs(l_trl)), (l_trl, l_ours)
    assert g_trl.keys() == g_ours.keys() and g_trl
    for n in g_trl:
        scale = g_trl[n].abs().max().item()
        if scale > 1e-8:
            rel = (g_trl[n] - g_ours[n]).abs().max().item() / scale
            assert rel <= GRAD_TOL, (n, rel)

@pytest.mark.parametrize('objective', ['dpo', 'ipo'])
def test_dpo_and_ipo_match_trl_with_a_reference_copy(setup, objective):
    d, tok = setup
    pol, ref = _models(d)
    tr = trl.DPOTrainer(model=pol, ref_model=ref, args=_args(trl.DPOConfig, loss_type='sigmoid' if objective == 'dpo'
                        else 'ipo'), train_dataset=_pairs(), processing_class=tok)
    b = tr.data_collator([tr.train_dataset[i] for i in range(4)])
    tr.model.train()
    ours = _ours(b['input_ids'], b['attention_mask'], b['completion_mask'])
    with torch.no_grad(): ours['ref_logps'] = sequence_logps(ref, ours)[0]  # the reference copy, computed ahead
    cfg = TrainConfig(method='full', objective=objective, beta=BETA)
    _agree(_grads(tr.model, lambda: tr.compute_loss(tr.model, b)),
           _grads(tr.model, lambda: preference_loss(tr.model, ours, cfg)[0]))
    # the statistics we log are TRL's too
    tr._metrics['train'].clear()
    with torch.no_grad(): tr.compute_loss(tr.model, b)
    _, st = preference_loss(tr.model, ours, cfg)
    m = {k: v[-1] for k, v in tr._metrics['train'].items()}
    for ours_k, trl_k in [('reward_chosen', 'rewards/chosen'), ('reward_rejected', 'rewards/rejected'),
                          ('margin', 'rewards/margins'), ('accuracy', 'rewards/accuracies')]:
        assert abs(float(st[ours_k]) - m[trl_k]) <= 1e-5, (ours_k, float(st[ours_k]), m[trl_k])

def test_dpo_with_an_sft_term_matches_trl(setup):
    "`sft_weight` is TRL's loss_type=['sigmoid', 'sft'] with loss_weights=[1, w] (the RPO paper's NLL on the chosen)."
    d, tok = setup
    pol, ref = _models(d)
    tr = trl.DPOTrainer(model=pol, ref_model=ref, args=_args(trl.DPOConfig, loss_type=['sigmoid', 'sft'],
                        loss_weights=[1.0, 0.5]), train_dataset=_pairs(), processing_class=tok)
    b = tr.data_collator([tr.train_dataset[i] for i in range(4)])
    tr.model.train()
    ours = _ours(b['input_ids'], b['attention_mask'], b['completion_mask'])
    with torch.no_grad(): ours['ref_logps'] = sequence_logps(ref, ours)[0]
    cfg = TrainConfig(method='full', objective='dpo', beta=BETA, sft_weight=0.5)
    _agree(_grads(tr.model, lambda: tr.compute_loss(tr.model, b)),
           _grads(tr.model, lambda: preference_loss(tr.model, ours, cfg)[0]))
    plain = preference_loss(tr.model, ours, TrainConfig(method='full', objective='dpo', beta=BETA))[0]
    with_sft, st = preference_loss(tr.model, ours, cfg)
    assert abs(float(with_sft - plain) - 0.5 * float(st['nll'])) < 1e-5  # the term is there, weighted

def test_dpo_with_lora_matches_trl_reference_is_the_disabled_adapter(setup):
    from peft import LoraConfig
    d, tok = setup
    base = AutoModelForCausalLM.from_pretrained(d)
    lcfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=['q_proj', 'v_proj', 'up_proj'],
                      task_type='CAUSAL_LM')
    tr = trl.DPOTrainer(model=base, ref_model=None, args=_args(trl.DPOConfig), train_dataset=_pairs(),
                        processing_class=tok, peft_config=lcfg)
    pm = tr.model
    with torch.no_grad():  # B starts at zero (policy = reference): give the adapter some weight
        g = torch.Generator().manual_seed(1)
        for n, p in pm.named_parameters():
            if 'lora_B' in n: p.add_(0.2 * torch.randn(p.shape, generator=g))
    b = tr.data_collator([tr.train_dataset[i] for i in range(4)])
    pm.train()
    ours = _ours(b['input_ids'], b['attention_mask'], b['completion_mask'])  # no ref_logps: the adapter is disabled
    _agree(_grads(pm, lambda: tr.compute_loss(pm, b)),
           _grads(pm, lambda: preference_loss(pm, ours, TrainConfig(method='lora', objective='dpo', beta=BETA))[0]))

def _stack(a_ids, a_am, a_scored, b_ids, b_am, b_scored, pad=0):
    "Two right-padded halves (TRL's separate tensors) as our one batch of 2B rows."
    n = max(a_ids.shape[1], b_ids.shape[1])
    p = lambda t, v: torch.nn.functional.pad(t, (0, n - t.shape[1]), value=v)
    ids = torch.cat([p(a_ids, pad), p(b_ids, pad)]); am = torch.cat([p(a_am, 0), p(b_am, 0)])
    return _ours(ids, am, torch.cat([p(a_scored, 0), p(b_scored, 0)]))

def test_kto_matches_trl(setup):
    d, tok = setup
    ds = Dataset.from_dict({"prompt": [[{"role": "user", "content": q}] for q in Q],
                            "completion": [[{"role": "assistant", "content": a}]
                                           for a in [GOOD[0], "No idea", GOOD[2], "Delaware law applies."]],
                            "label": [True, False, True, False]})
    pol, ref = _models(d, seed=3, perturb=0.02, ref_perturb=0.1)  # a noisier reference: a positive KL estimate
    tr = trl.KTOTrainer(model=pol, ref_model=ref, args=_args(trl.KTOConfig, desirable_weight=1.0, undesirable_weight=1.5),
                        train_dataset=ds, processing_class=tok)
    b = next(iter(tr.get_train_dataloader()))
    tr.model.train()
    ours = _stack(b['input_ids'], b['attention_mask'], b['completion_mask'],
                  b['KL_input_ids'], b['KL_attention_mask'], b['KL_completion_mask'])
    ours['kto_label'] = b['label'].bool()
    with torch.no_grad(): ours['ref_logps'] = sequence_logps(ref, ours)[0]
    cfg = TrainConfig(method='full', objective='kto', beta=BETA, desirable_weight=1.0, undesirable_weight=1.5)
    _, st = preference_loss(tr.model, ours, cfg)
    assert float(st['kl']) > 0  # the KL term is in play, not clamped away
    _agree(_grads(tr.model, lambda: tr.compute_loss(tr.model, b)),
           _grads(tr.model, lambda: preference_loss(tr.model, ours, cfg)[0]))

def test_orpo_odds_ratio_matches_trl(setup):
    "ORPO's odds-ratio term and its gradient; the NLL is taken as TRL takes it (prompt and answer tokens) for the check."
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    d, tok = setup
    pol, _ = _models(d, seed=5)
    tr = ORPOTrainer(model=pol, args=_args(ORPOConfig), train_dataset=_pairs(), processing_class=tok)
    b = next(iter(tr.get_train_dataloader()))
    tr.model.train()
    ours = _stack(b['chosen_input_ids'], b['chosen_attention_mask'], b['chosen_labels'] != -100,
                  b['rejected_input_ids'], b['rejected_attention_mask'], b['rejected_labels'] != -100)
    B = b['chosen_input_ids'].shape[0]
    def loss_ours():
        lp, n = sequence_logps(tr.model, ours)
        avg = lp / n
        c = dict(input_ids=b['chosen_input_ids'], attention_mask=b['chosen_attention_mask'],
                 labels=b['chosen_input_ids'].masked_fill(b['chosen_attention_mask'] == 0, -100))
        nll = tr.model(**c).loss  # TRL's NLL: every attended token of the chosen rows
        return orpo_loss(avg[:B], avg[B:], nll, BETA)[0]
    _agree(_grads(tr.model, lambda: tr.compute_loss(tr.model, b)), _grads(tr.model, loss_ours))
