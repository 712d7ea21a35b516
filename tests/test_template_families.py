"""Real hub chat templates, family by family: the trained text of every assistant turn is exactly its answer (plus the
reasoning the template keeps for that turn) followed by that turn's end-of-turn token, and no user, system or tool
text is trained; a case a template cannot render is refused with a clear reason.

The templates are read from `../shared/data/chat-templates` (see its README; never copied into the project) and run
with the project's tiny tokenizer, given each family's special tokens, its `eos_token` (the end-of-document one where
the hub's base model has one, which is harder than the instruct model's end-of-turn token) and, where the hub ships
one, its generation_config's end tokens."""
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
import pytest
from domain_tuner.core import DomainTunerError
from domain_tuner.models import load_tokenizer
from domain_tuner.template import render_conversations, encode, end_of_turn_token
from domain_tuner.tiny import tiny_model_dir

TEMPLATES = Path(__file__).resolve().parents[2]/'shared'/'data'/'chat-templates'
pytestmark = pytest.mark.skipif(not TEMPLATES.is_dir(), reason="../shared/data/chat-templates is not there")

VERBATIM = '<think>{r}</think>'  # a `<think>` block opening the content, rendered as it is given
INLINE = {('inline', 'earlier'): VERBATIM, ('inline', 'last'): VERBATIM}
IM = ('<|im_start|>', '<|im_end|>')

@dataclass(frozen=True)
class Family:
    "A hub template, the tokenizer it runs with, and what it should train."
    file:str                # the template's file in TEMPLATES
    specials:tuple          # the family's control tokens, added to the tiny tokenizer as special tokens
    end:str                 # what closes an answer, up to and including the end-of-turn token
    last_end:str|None=None  # what closes the last answer, when it differs (gpt-oss)
    eos:str|None=None       # the tokenizer's eos_token (the tiny one's, `<|im_end|>`, when None)
    gen_eos:tuple=()        # generation_config's end tokens ([] when the hub's are not known)
    system:str|None=None    # None when a system prompt is rendered, else words of the template's refusal
    keeps:dict=field(default_factory=lambda: INLINE)  # (field|inline, earlier|last) -> how kept reasoning renders

FAMILIES = {
    'qwen3': Family('Qwen-Qwen3-0.6B.jinja', IM, '<|im_end|>', eos='<|endoftext|>',
                    gen_eos=('<|im_end|>', '<|endoftext|>'),
                    keeps={('field', 'last'): '<think>\n{r}\n</think>\n\n', ('inline', 'last'): '<think>\n{r}\n</think>\n\n'}),
    'qwq': Family('Qwen-QwQ-32B.jinja', IM, '<|im_end|>', eos='<|endoftext|>', gen_eos=('<|im_end|>', '<|endoftext|>'),
                  keeps={('inline', 'last'): VERBATIM}),
    'deepseek-r1-distill': Family('deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja',
                                  ('<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>'),
                                  '<｜end▁of▁sentence｜>', eos='<｜end▁of▁sentence｜>', keeps={}),
    'deepseek-v3.1': Family('deepseek-ai-DeepSeek-V3.1.jinja',
                            ('<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>'),
                            '<｜end▁of▁sentence｜>', eos='<｜end▁of▁sentence｜>', keeps={}),
    'gpt-oss': Family('openai-gpt-oss-120b.jinja', ('<|start|>', '<|end|>', '<|message|>', '<|channel|>', '<|return|>',
                                                    '<|call|>', '<|constrain|>', '<|endoftext|>'),
                      '<|end|>', last_end='<|return|>', eos='<|return|>',
                      gen_eos=('<|return|>', '<|endoftext|>', '<|call|>'),
                      keeps={**INLINE, ('field', 'last'): '<|channel|>analysis<|message|>{r}<|end|><|start|>assistant'
                                                          '<|channel|>final<|message|>'}),
    'command-r7b': Family('CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja',
                          ('<|START_OF_TURN_TOKEN|>', '<|END_OF_TURN_TOKEN|>', '<|SYSTEM_TOKEN|>', '<|USER_TOKEN|>',
                           '<|CHATBOT_TOKEN|>', '<|START_RESPONSE|>', '<|END_RESPONSE|>', '<|START_THINKING|>',
                           '<|END_THINKING|>', '<|START_ACTION|>', '<|END_ACTION|>', '<|START_TOOL_RESULT|>',
                           '<|END_TOOL_RESULT|>'),
                          '<|END_RESPONSE|><|END_OF_TURN_TOKEN|>', eos='<EOS_TOKEN>'),
    'hermes-3': Family('NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja', IM, '<|im_end|>', eos='<|im_end|>'),
    'llama-3.2': Family('meta-llama-Llama-3.2-3B-Instruct.jinja',
                        ('<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|eom_id|>',
                         '<|python_tag|>'), '<|eot_id|>', eos='<|end_of_text|>',
                        gen_eos=('<|end_of_text|>', '<|eom_id|>', '<|eot_id|>')),
    'llama-3.3': Family('meta-llama-Llama-3.3-70B-Instruct.jinja',
                        ('<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|eom_id|>',
                         '<|python_tag|>'), '<|eot_id|>', eos='<|end_of_text|>',
                        gen_eos=('<|end_of_text|>', '<|eom_id|>', '<|eot_id|>')),
    'mistral-nemo': Family('mistralai-Mistral-Nemo-Instruct-2407.jinja', ('<s>', '[INST]', '[/INST]'), '</s>',
                           eos='</s>', system="leaves the system prompt out"),
    'mistral-small-3.2': Family('Mistral-Small-3.2-24B-Instruct-2506.jinja',
                                ('<s>', '[INST]', '[/INST]', '[SYSTEM_PROMPT]', '[/SYSTEM_PROMPT]'), '</s>', eos='</s>'),
    'phi-3.5': Family('microsoft-Phi-3.5-mini-instruct.jinja', ('<|system|>', '<|user|>', '<|assistant|>', '<|end|>'),
                      '<|end|>', eos='<|endoftext|>', gen_eos=('<|end|>', '<|assistant|>', '<|endoftext|>')),
    'gemma-2': Family('google-gemma-2-2b-it.jinja', ('<start_of_turn>', '<end_of_turn>'), '<end_of_turn>', eos='<eos>',
                      gen_eos=('<eos>', '<end_of_turn>'), system="System role not supported"),
    'granite-3.3': Family('ibm-granite-granite-3.3-2B-Instruct.jinja',
                          ('<|start_of_role|>', '<|end_of_role|>', '<|tool_call|>'), '<|end_of_text|>',
                          eos='<|end_of_text|>'),
}

SYS, Q1, Q2 = "You are a terse financial analyst.", "What is EBITDA?", "And EBIT?"
A1, A2 = "Earnings before interest, taxes, depreciation and amortisation.", "Earnings before interest and taxes."
R1, R2 = "The user wants the acronym spelled out.", "EBIT keeps depreciation and amortisation."

def _conv(case:str)->list:
    "The conversation of a case: one or two turns, a system prompt, or reasoning as a field or inline."
    if case == 'one': return [dict(role='user', content=Q1), dict(role='assistant', content=A1)]
    a1, a2 = dict(role='assistant', content=A1), dict(role='assistant', content=A2)
    if case.startswith('field'): a1, a2 = a1 | dict(reasoning_content=R1), a2 | dict(reasoning_content=R2)
    if case.startswith('inline'):
        a1, a2 = a1 | dict(content=f'<think>{R1}</think>{A1}'), a2 | dict(content=f'<think>{R2}</think>{A2}')
    conv = [dict(role='user', content=Q1), a1, dict(role='user', content=Q2), a2]
    return [dict(role='system', content=SYS)] + conv if case == 'system' else conv

def _expected(fam:Family, case:str)->list[str]:
    "What each assistant turn of a case should train: its kept reasoning (when trained), its answer, its end."
    form, mode = (case.split('-') + ['train'])[:2] if case.startswith(('field', 'inline')) else (None, 'train')
    turns = [(A1, R1), (A2, R2)][:1 if case == 'one' else 2]
    out = []
    for k, (a, r) in enumerate(turns):
        pos = 'last' if k == len(turns) - 1 else 'earlier'
        kept = fam.keeps.get((form, pos)) if form else None
        out.append((kept.format(r=r) if kept and mode == 'train' else '') + a +
                   (fam.last_end or fam.end if pos == 'last' else fam.end))
    return out

@lru_cache(maxsize=None)
def _tokenizer(name:str):
    "The tiny tokenizer with a family's template, special tokens, eos_token and generation end tokens."
    fam, tok = FAMILIES[name], load_tokenizer(tiny_model_dir())
    tok.add_special_tokens({'additional_special_tokens': list(fam.specials)} | ({'eos_token': fam.eos} if fam.eos else {}))
    tok.chat_template, tok.generation_eos = (TEMPLATES/fam.file).read_text(), list(fam.gen_eos)
    return tok

def _check_spans(text:str, spans:list, conv:list):
    "The spans are in order, and none covers a character of a user, system or tool message's content."
    assert all(a < b for a, b in spans) and all(b <= c for (_, b), (c, _) in zip(spans, spans[1:])), spans
    for m in conv:
        if m['role'] == 'assistant': continue
        at = text.find(m['content'])
        while at >= 0:
            assert not any(a < at + len(m['content']) and at < b for a, b in spans), (m, spans)
            at = text.find(m['content'], at + 1)

def _token(end:str)->str:
    "The end-of-turn token of what closes an answer: its last token."
    return end[end.rindex('<'):]

CASES = ['one', 'two', 'system', 'field-train', 'field-mask', 'inline-train', 'inline-mask']

@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('name', list(FAMILIES))
def test_trained_text_is_each_answer_and_its_end(name, case):
    fam, tok, conv = FAMILIES[name], _tokenizer(name), _conv(case)
    mode = 'mask' if case.endswith('mask') else 'train'
    if case == 'system' and fam.system:
        with pytest.raises(DomainTunerError, match=fam.system): render_conversations([conv], tok, reasoning=mode)
        return
    (text,), (spans,) = render_conversations([conv], tok, reasoning=mode)
    assert [text[a:b] for a, b in spans] == _expected(fam, case)
    _check_spans(text, spans, conv)

@pytest.mark.parametrize('name', list(FAMILIES))
def test_tokens_end_with_each_turns_end_token(name):
    "Through `encode`: nothing is refused, and each trained run is its turn's text, ending with its own end token."
    fam, tok = FAMILIES[name], _tokenizer(name)
    conv = _conv('inline-train')
    ex = encode({'messages': conv}, tok)
    runs, cur = [], []
    for i, l in enumerate(ex['labels'] + [-100]):
        if l != -100: cur.append(i)
        elif cur: runs.append(cur); cur = []
    want = _expected(fam, 'inline-train')
    assert [tok.decode([ex['input_ids'][i] for i in r]) for r in runs] == want
    ends = [_token(fam.end), _token(fam.last_end or fam.end)]
    assert [tok.convert_ids_to_tokens(ex['input_ids'][r[-1]]) for r in runs] == ends
    assert end_of_turn_token(tok) == ends[-1]

def test_reasoning_from_the_data_reaches_the_template():
    "A `thinking` field read by `10_formats` is kept as `reasoning_content`, which Qwen3 renders on the last turn."
    from domain_tuner.formats import normalize
    rec = normalize({'messages': [dict(role='user', content=Q1), dict(role='assistant', content=A1, thinking=R1)]})[0]
    assert rec['messages'][1]['reasoning_content'] == R1
    tok = _tokenizer('qwen3')
    for mode, want in (('train', f'<think>\n{R1}\n</think>\n\n{A1}<|im_end|>'), ('mask', f'{A1}<|im_end|>')):
        (text,), (spans,) = render_conversations([rec['messages']], tok, reasoning=mode)
        assert [text[a:b] for a, b in spans] == [want]

TOOLS = [{'type': 'function', 'function': {'name': 'calculate', 'description': 'Arithmetic on numbers', 'parameters': {
    'type': 'object', 'properties': {'expression': {'type': 'string'}}}}}]
CALL = [{'type': 'function', 'function': {'name': 'calculate', 'arguments': {'expression': '164.5 / 773.4 * 100'}}}]

@pytest.mark.parametrize('name', ['qwen3', 'hermes-3', 'gpt-oss', 'command-r7b', 'llama-3.3'])
def test_tool_calls_are_trained_and_results_are_not(name):
    "A call and the answer after its result are trained, each to its end token; the result and the question are not."
    fam, tok = FAMILIES[name], _tokenizer(name)
    conv = [dict(role='user', content='Gross margin of FY2023?'), dict(role='assistant', content='', tool_calls=CALL),
            dict(role='tool', content='21.27'), dict(role='assistant', content='The gross margin was 21.3%.')]
    (text,), (spans,) = render_conversations([conv], tok, tools=[TOOLS])
    trained = [text[a:b] for a, b in spans]
    assert len(trained) == 2 and 'calculate' in trained[0] and '773.4' in trained[0]
    assert trained[1] == 'The gross margin was 21.3%.' + (fam.last_end or fam.end)
    assert trained[0].endswith(tuple(fam.gen_eos) + (_token(fam.end),)) and '21.27' not in ''.join(trained)
    _check_spans(text, spans, conv)

def test_unknown_reasoning_mode_is_refused():
    with pytest.raises(DomainTunerError, match="unknown reasoning='drop'"):
        render_conversations([_conv('one')], _tokenizer('qwen3'), reasoning='drop')
