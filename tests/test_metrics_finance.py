"""Finance answer metrics against TAT-QA's official scorer (`tatqa_metric.py`, NExTplusplus/TAT-QA): each case's
expected exact match and F1 is what that scorer gives for the prediction (split on ';' into spans, as its models
output them) against the gold answer the reference string renders (answer, type and scale, as the table-and-text
sample in ../shared/data/finance-tableqa writes them). Two of the scorer's quirks are left out on purpose and named
in 30_metrics: it sorts spans before removing articles, and it reads `(1,234)` with a separator as positive."""
import pytest
from domain_tuner.metrics import exact_match, token_f1, numeric_match, read_amount, exact_match_squad

# (prediction, reference, official exact match, official F1 rounded to 2 places as the scorer rounds it)
CASES = [
    ('7', '7%', 0, 0.0),
    ('7%', '7%', 1, 1.0),
    ('0.07', '7%', 1, 1.0),
    ('7.00%', '7%', 1, 1.0),
    ('(9.8)', '9.8', 0, 0.0),
    ('-9.8', '-9.8', 1, 1.0),
    ('(9.8)', '-9.8', 1, 1.0),
    ('9.8', '-9.8', 0, 0.0),
    ('1,496.5 million', '1,496.5 million', 1, 1.0),
    ('1496.5 million', '1,496.5 million', 1, 1.0),
    ('1,496.5', '1,496.5 million', 0, 0.0),
    ('1.4965 billion', '1,496.5 million', 1, 1.0),
    ('1,496,500 thousand', '1,496.5 million', 1, 1.0),
    ('$1,496.5 million', '1,496.5 million', 1, 1.0),
    ('1,496 million', '1,496.5 million', 0, 0.0),
    ('-12.60', '-12.6', 1, 1.0),
    ('-12.6', '-12.60', 1, 1.0),
    ('12.6', '-12.6', 0, 0.0),
    ('-12.7', '-12.6', 0, 0.0),
    ('-22.22%', '-22.22%', 1, 1.0),
    ('22.22%', '-22.22%', 0, 0.0),
    ('-22.2%', '-22.22%', 0, 0.0),
    ('-0.2222', '-22.22%', 1, 1.0),
    ('3', '3', 1, 1.0),
    ('4', '3', 0, 0.0),
    ('2018; 2019', '2019; 2018', 1, 1.0),
    ('2019', '2019; 2018', 0, 0.67),
    ('2019; 2018; 2017', '2019; 2018', 0, 0.8),
    ('Americas; Europe', 'Europe; the Americas', 1, 1.0),
    ('The EBITDA.', 'EBITDA', 1, 1.0),
    ('an increase in sales', 'increase in sales', 1, 1.0),
    ('increase in net sales', 'increase in sales', 0, 0.86),
    ('sales', 'increase in sales', 0, 0.5),
    ('Cost of revenue', 'cost of revenues', 0, 0.67),
    ('U.S.', 'US', 1, 1.0),
    ('fiscal 2019', '2019', 0, 0.0),
    ('2,000 thousand', '2,000 thousand', 1, 1.0),
    ('2000 thousand', '2,000 thousand', 1, 1.0),
    ('$2,000', '2,000 thousand', 0, 0.0),
    ('1,496.5 million; 2,000 million', '2,000 million; 1,496.5 million', 1, 1.0),
    ('(1,234)', '(1,234)', 1, 1.0),
    ('134', '(134)', 0, 0.0),
    ('(134)', '(134)', 1, 1.0),
    ('Europe', 'Europe; the Americas', 0, 0.67),
]

def test_enough_cases():
    assert len(CASES) >= 30

@pytest.mark.parametrize('pred,ref,em,f1', CASES)
def test_agrees_with_the_official_scorer(pred, ref, em, f1):
    assert exact_match(pred, ref) == em
    assert round(token_f1(pred, ref), 2) == f1

@pytest.mark.parametrize('pred,ref,em,f1', [c for c in CASES if read_amount(c[0]) and read_amount(c[1])])
def test_numeric_match_agrees_with_exact_match_on_numbers(pred, ref, em, f1):
    assert numeric_match(pred, ref) == exact_match(pred, ref) == em

def test_the_issue_cases_the_squad_score_gets_wrong():
    "The cases the issue reported: the SQuAD-style score decides them the other way."
    for pred, ref in [("7", "7%"), ("(9.8)", "9.8"), ("1,496.5", "1496.5"), ("-12.6", "-12.60"), ("2018; 2019", "2019; 2018")]:
        assert exact_match(pred, ref) != exact_match_squad(pred, ref), (pred, ref)
