"Human evaluation: Wilson intervals and Cohen's kappa against known cases; blind, randomised, resumable review through the widget and the headless API."
import json
from pathlib import Path
import pytest
from domain_tuner.evaluate import (ReviewSession, review_widget, read_ratings, wilson_interval, win_rate, cohen_kappa, rater_agreement,
                                   rubric_means, compare_with_experts, score_answers, RUBRIC)
from domain_tuner.core import DomainTunerError

ITEMS = [dict(id=str(i), prompt=f"Question {i}?", answers={'base': f"base {i}", 'tuned': f"tuned {i}"}) for i in range(5)]
def sc(a, b): return {'A': {c: a for c in RUBRIC}, 'B': {c: b for c in RUBRIC}}

@pytest.mark.parametrize("k,n,lo,hi", [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (50, 100, 0.4038, 0.5962)])
def test_wilson_known_cases(k, n, lo, hi):
    a, b = wilson_interval(k, n)
    assert a == pytest.approx(lo, abs=1e-4) and b == pytest.approx(hi, abs=1e-4)

def test_kappa_known_cases():
    a = ['yes']*25 + ['no']*25; b = ['yes']*20 + ['no']*5 + ['yes']*10 + ['no']*15
    assert cohen_kappa(a, b) == pytest.approx(0.4)                 # textbook: p_o 0.7, p_e 0.5
    assert cohen_kappa(a, a) == 1.0 and cohen_kappa(['x', 'y'], ['y', 'x']) == pytest.approx(-1.0)
    # 3 labels: 7 of 9 agree; p_e = (3*2 + 3*3 + 3*4)/81 = 27/81
    r1 = list('aaabbbccc'); r2 = list('aabbbcccc')
    assert cohen_kappa(r1, r2) == pytest.approx((7/9 - 27/81)/(1 - 27/81))

def test_widget_saves_through_session_and_resumes(tmp_path):
    p = tmp_path/'ratings.jsonl'
    w = review_widget(ITEMS, p, rater='ana')
    shown = w.current
    assert 'base' not in shown and 'tuned' not in shown            # blind
    w.preference.value = 'B'
    for s in 'AB':
        for c in RUBRIC: w.scores[s][c].value = 2 if s == 'A' else 5
    w.comment.value = 'B is precise'; w.submit.click()
    row, = read_ratings(p)
    s = ReviewSession(ITEMS, p, rater='ana')
    assert row['winner'] == row['B'] == s.sides(ITEMS[0])[1] and row['scores'][row['B']] == {c: 5 for c in RUBRIC}
    assert row['comment'] == 'B is precise'
    # headless resume picks up after the widget, and the widget resumes after the headless API
    assert s.next()['id'] == '1'
    s.rate('1', 'tie', sc(3, 3))
    assert review_widget(ITEMS, p, rater='ana').current['id'] == '2'
    assert ReviewSession(ITEMS, p, rater='ben').next()['id'] == '0'
    w.preference.value = None; w.submit.click()                     # incomplete: refused, nothing written
    assert 'must be' in w.status.value or "'A', 'B' or 'tie'" in w.status.value
    assert len(read_ratings(p)) == 2

def test_sides_randomised_and_unblinded_correctly(tmp_path):
    many = [dict(id=str(i), prompt='q', answers={'base': 'x', 'tuned': 'y'}) for i in range(100)]
    s = ReviewSession(many, tmp_path/'r.jsonl', rater='ana')
    lefts = [s.sides(it)[0] for it in s.items]
    assert 30 < lefts.count('base') < 70
    for it in s.items[:10]:
        v = s.next(); row = s.rate(v['id'], 'A', sc(4, 2))
        assert row['winner'] == row['A'] and it['answers'][row['A']] == v['A']
    assert win_rate(read_ratings(tmp_path/'r.jsonl'), 'base')['wins'] == lefts[:10].count('base')

def test_aggregates_and_expert_comparison(tmp_path):
    p = tmp_path/'r.jsonl'
    plan = {'ana': ['tuned', 'tuned', 'tuned', 'base', 'tie'], 'ben': ['tuned', 'tuned', 'base', 'base', 'tie']}
    for rater, wants in plan.items():
        s = ReviewSession(ITEMS, p, rater=rater)
        for it, want in zip(ITEMS, wants):
            l, r = s.sides(it)
            s.rate(it['id'], 'tie' if want == 'tie' else ('A' if l == want else 'B'), sc(4, 4))
    rs = read_ratings(p)
    wr = win_rate(rs, 'tuned')
    assert (wr['wins'], wr['losses'], wr['ties'], wr['n']) == (5, 3, 2, 10)
    assert wr['win_rate'] == pytest.approx(0.6) and (wr['low'], wr['high']) == pytest.approx(wilson_interval(6, 10))
    # ana T T T B tie / ben T T B B tie: p_o 4/5, p_e = (3*2 + 1*2 + 1*1)/25
    assert rater_agreement(rs, 'ana', 'ben')['kappa'] == pytest.approx((4/5 - 9/25)/(1 - 9/25))
    assert rubric_means(rs)['tuned']['correctness'] == 4.0

def test_expert_relative_scores():
    bench = [{'messages': [{'role': 'user', 'content': q}, {'role': 'assistant', 'content': a}]}
             for q, a in [("Revenue?", "$12.4 million"), ("State?", "Delaware"), ("Auditor?", "KPMG")]]
    model = score_answers(bench, ["12.4 million", "Nevada", "KPMG"], metrics=['exact_match', 'numeric_match'], name='tuned')
    cmp = compare_with_experts(model, bench, ["$12.4 million", "Delaware", "Deloitte"])
    assert cmp.relative()['exact_match'] == pytest.approx((2/3)/(2/3))
    assert cmp.expert.metrics['exact_match'] == pytest.approx(2/3) and model.metrics['exact_match'] == pytest.approx(2/3)
    with pytest.raises(DomainTunerError, match="2 expert answers for 3"): compare_with_experts(model, bench, ["a", "b"])
