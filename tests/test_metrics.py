"Metrics against scikit-learn on many random cases, and as fastai metrics in a real Learner (pinned and newest fastai)."
import pickle
import numpy as np, pytest, torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, log_loss, recall_score, balanced_accuracy_score
from sklearn.utils.class_weight import compute_class_weight
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
import fastai.callback.progress  # noqa: F401 (adds Learner.no_bar)
from fastai.callback.tracker import SaveModelCallback
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import BalancedAccuracy
from fastai_subclass.metrics import (mean_roc_auc_score, score_learner, SCORES, class_roc_aucs, multiclass_log_loss, per_class_recall, balanced_accuracy,
                                     class_weights, weighted_cross_entropy, MeanRocAuc, MultiLogLoss,
                                     PerClassRecall, ClassRecall)

def random_case(n, c, seed, signal=1.0):
    "Targets with every class present (imbalanced), and softmax probabilities somewhat related to them"
    rng = np.random.default_rng(seed)
    y = np.r_[np.arange(c), rng.choice(c, n - c, p=np.arange(1, c + 1) / (c * (c + 1) / 2))]
    logits = rng.normal(size=(n, c)) + signal * np.eye(c)[y]
    return y, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

@pytest.mark.parametrize('n,c,seed', [(50, 2, 0), (300, 4, 1), (500, 8, 2), (40, 3, 3)])
def test_against_sklearn(n, c, seed):
    y, p = random_case(n, c, seed)
    pred = p.argmax(1)
    assert mean_roc_auc_score(y, p) == pytest.approx(roc_auc_score(np.eye(c)[y], p, average='macro'), abs=1e-12)
    if c > 2: assert mean_roc_auc_score(y, p) == pytest.approx(roc_auc_score(y, p, multi_class='ovr'), abs=1e-12)
    assert multiclass_log_loss(y, p) == pytest.approx(log_loss(y, p, labels=range(c)), abs=1e-12)
    np.testing.assert_allclose(per_class_recall(y, p), recall_score(y, pred, average=None, labels=range(c)), atol=1e-12)
    assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)

def test_binary_auc_is_the_two_column_mean():
    # with 2 classes, both columns give the same AUC (p1 = 1 - p0), so the mean is scikit-learn's binary AUC
    y, p = random_case(100, 2, 5)
    np.testing.assert_allclose(class_roc_aucs(y, p), [roc_auc_score(y, p[:, 1])] * 2, atol=1e-12)

def test_perfect_and_constant_predictors():
    y, _ = random_case(120, 5, 4)
    perfect, const = np.eye(5)[y], np.full((120, 5), .2)
    assert mean_roc_auc_score(y, perfect) == 1. and mean_roc_auc_score(y, const) == .5
    assert multiclass_log_loss(y, perfect) == pytest.approx(0, abs=1e-12)
    assert multiclass_log_loss(y, const) == pytest.approx(np.log(5)) == pytest.approx(log_loss(y, const))
    assert balanced_accuracy(y, perfect) == 1. == balanced_accuracy_score(y, y)
    # a tie: argmax picks class 0 for every item
    assert per_class_recall(y, const).tolist() == [1, 0, 0, 0, 0]
    assert balanced_accuracy(y, const) == pytest.approx(balanced_accuracy_score(y, np.zeros_like(y))) == pytest.approx(.2)

def test_log_loss_scales_and_clips_like_kaggle():
    y = np.array([0, 1, 2])
    raw = np.array([[2., 1, 1], [0, 0, 5], [1, 1, 2]])  # rows do not sum to 1; row 1 gives its true class 0
    expected = -np.mean(np.log([.5, 1e-15, .5]))
    assert multiclass_log_loss(y, raw) == pytest.approx(expected, rel=1e-12)

def tiny_learner(metrics, loss_func=None, seed=0):
    "A linear model on noisy one-hot features of 4 imbalanced classes"
    y, _ = random_case(240, 4, seed)
    rng = np.random.default_rng(seed)
    x = torch.tensor(np.eye(4)[y] + rng.normal(scale=1.0, size=(240, 4)), dtype=torch.float32)
    ds = list(zip(x, torch.tensor(y)))
    dls = DataLoaders(DataLoader(ds[:160], bs=32, shuffle=True), DataLoader(ds[160:], bs=32))
    torch.manual_seed(seed)
    return Learner(dls, torch.nn.Linear(4, 4), loss_func=loss_func or CrossEntropyLossFlat(), lr=0.1, metrics=metrics)

def test_fastai_metrics_in_a_learner():
    classes = ['a', 'b', 'c', 'd']
    learn = tiny_learner([MeanRocAuc(), MultiLogLoss(), BalancedAccuracy(), *PerClassRecall(classes)])
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    names = learn.recorder.metric_names[1:-1]
    assert names == ['train_loss', 'valid_loss', 'mean_roc_auc', 'log_loss', 'balanced_accuracy_score'] + [f'recall_{c}' for c in classes]
    last = dict(zip(names, learn.recorder.values[-1]))
    probs, targs = learn.get_preds()
    p, y = probs.numpy().astype(np.float64), targs.numpy()
    assert last['mean_roc_auc'] == pytest.approx(roc_auc_score(y, p, multi_class='ovr'), abs=1e-6)
    assert last['log_loss'] == pytest.approx(log_loss(y, p / p.sum(1, keepdims=True)), abs=1e-5)
    assert last['log_loss'] == pytest.approx(last['valid_loss'], abs=1e-4)
    assert last['balanced_accuracy_score'] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)), abs=1e-12)
    np.testing.assert_allclose([last[f'recall_{c}'] for c in classes], recall_score(y, p.argmax(1), average=None), atol=1e-12)
    # validate() gives the same values as the last epoch
    np.testing.assert_allclose(learn.validate()[1:], learn.recorder.values[-1][1:], atol=1e-6)

def test_metric_called_on_a_batch_applies_softmax():
    y, p = random_case(60, 3, 7)
    logits = torch.tensor(np.log(p), dtype=torch.float32) - 1.
    assert MeanRocAuc()(logits, torch.tensor(y)) == pytest.approx(mean_roc_auc_score(y, p), abs=1e-6)
    assert ClassRecall(2)(logits, torch.tensor(y)) == pytest.approx(per_class_recall(y, p)[2])
    assert ClassRecall(2).name == 'recall_2'

def test_half_precision_outputs():
    from types import SimpleNamespace
    from fastai.torch_core import to_detach
    y, p = random_case(64, 4, 8)
    for dtype in (torch.float16, torch.bfloat16):
        m = MeanRocAuc(); m.reset()
        for i in (0, 32):
            m.accumulate(SimpleNamespace(pred=torch.tensor(np.log(p[i:i+32])).to(dtype), y=torch.tensor(y[i:i+32]),
                                         dls=SimpleNamespace(vocab=list('abcd')), to_detach=to_detach))
        assert m.value == pytest.approx(mean_roc_auc_score(y, p), abs=0.02)

def test_metrics_pickle_and_log_loss_monitors_lower_is_better():
    m = pickle.loads(pickle.dumps(MultiLogLoss()))
    assert m.name == 'log_loss'
    assert SaveModelCallback(monitor='log_loss').comp is np.less
    assert SaveModelCallback(monitor='mean_roc_auc').comp is np.greater

def test_class_weights_match_sklearn_balanced():
    counts = [1719, 200, 117, 67, 465, 299, 176, 734]  # Fisheries Monitoring
    y = np.repeat(np.arange(8), counts)
    w = class_weights(counts)
    np.testing.assert_allclose(w, compute_class_weight('balanced', classes=np.arange(8), y=y), rtol=1e-6)
    assert w[y].mean() == pytest.approx(1, abs=1e-6)

def test_weighted_loss_trains_and_equals_torch():
    counts = {'a': 10, 'b': 30, 'c': 60, 'd': 100}
    loss = weighted_cross_entropy(counts, classes=['a', 'b', 'c', 'd'])
    out, targ = torch.randn(20, 4), torch.randint(0, 4, (20,))
    w = torch.tensor(class_weights(counts))
    assert loss(out, targ).item() == pytest.approx(F.cross_entropy(out, targ, weight=w).item(), abs=1e-6)
    learn = tiny_learner([BalancedAccuracy()], loss_func=loss)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert np.isfinite(learn.recorder.values[-1]).all()

def test_score_learner_is_sklearn_and_nan_where_undefined():
    import math
    from fastai.data.load import DataLoader
    learn = tiny_learner([])
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    sc = score_learner(learn)
    probs, targs = learn.get_preds()
    y, p = targs.numpy(), probs.numpy().astype(np.float64)
    assert list(sc)[:4] == list(SCORES)
    assert sc['mean_roc_auc'] == pytest.approx(roc_auc_score(y, p, multi_class='ovr'), abs=1e-6)
    assert sc['balanced_accuracy'] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)), abs=1e-12)
    np.testing.assert_allclose([sc[f'recall_{i}'] for i in range(4)], recall_score(y, p.argmax(1), average=None), atol=1e-12)
    no3 = DataLoader([d for d in learn.dls.valid_ds if int(d[1]) != 3], bs=32)
    sc = score_learner(learn, no3)
    assert math.isnan(sc['mean_roc_auc']) and math.isnan(sc['recall_3']) and not math.isnan(sc['recall_0'])
