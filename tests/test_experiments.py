"The experiment runner on the shipped sample: what each method trains on, a 2-method x 2-seed run, its table and its resume."
import json
import numpy as np, pandas as pd, pytest
import fastai.learner
from fastai_subclass.datasets import sample_path, folder_items
from fastai_subclass.select import train_labels, subset_dataloaders
from fastai_subclass.train import item_dataloaders
from fastai_subclass.experiments import (METHODS, run_experiment, random_undersample, oversample, class_counts,
                                         summarize, markdown_table, ExperimentResults, parse_method)

TINY = dict(arch='resnet18', pretrained=False, size=32, bs=32, lr=3e-3, epochs=1, freeze_epochs=0, aug=False)
FAST_SELECT = dict(layer='pool', ks=range(2, 5))

@pytest.fixture(scope='module')
def items(): return folder_items(sample_path())

@pytest.fixture(scope='module')
def dls(items): return item_dataloaders(items, TINY, num_workers=0)

@pytest.fixture(scope='module')
def experiment(items, tmp_path_factory):
    out = tmp_path_factory.mktemp('exp')
    res = run_experiment(items, ['random', 'subclass_closest'], seeds=(0, 1), n={'vehicle': 60}, out_dir=out, recipe=TINY,
                         draws=1, select_kwargs=FAST_SELECT, verbose=False)
    return out, res

def test_training_set_of_each_method(dls):
    labels = train_labels(dls)
    assert class_counts(labels) == {'cat': 60, 'frog': 60, 'vehicle': 240}
    expected = {'random': {'cat': 60, 'frog': 60, 'vehicle': 50}, 'oversample': {'cat': 180, 'frog': 180, 'vehicle': 240}}
    rnd, ovs = random_undersample(labels, 50, ['vehicle'], seed=3), oversample(labels, ['cat', 'frog'], 3)
    for name, pos in (('random', rnd), ('oversample', ovs)):
        sub = subset_dataloaders(dls, pos)
        # the DataLoaders hold exactly these items, duplicates included
        assert class_counts(train_labels(sub)) == expected[name] == class_counts(labels, pos)
        assert len(sub.train_ds) == len(pos)
    # every vehicle item is kept 1 time, every cat and frog item 3 times
    reps = np.bincount(ovs, minlength=len(labels))
    assert set(reps[np.array(labels) == 'vehicle']) == {1} and set(reps[np.array(labels) != 'vehicle']) == {3}
    # random undersampling keeps every item of the other classes, once
    assert len(set(rnd)) == len(rnd) and all(i in set(rnd) for i in np.flatnonzero(np.array(labels) != 'vehicle'))

def test_random_draws_differ_and_repeat():
    labels = ['a'] * 100 + ['b'] * 10
    draws = [tuple(random_undersample(labels, 10, seed=(0, d))) for d in range(3)]
    assert len(set(draws)) == 3
    assert tuple(random_undersample(labels, 10, seed=(0, 1))) == draws[1]

def test_bad_input():
    with pytest.raises(ValueError, match='unknown method'): parse_method('smote')
    with pytest.raises(ValueError, match='factor 1 is the baseline'): oversample(['a', 'a', 'b'], factor=1)
    with pytest.raises(ValueError, match='no minority class'): oversample(['a', 'b'])

def test_run_table_and_records(experiment):
    out, res = experiment
    assert (res.ran, res.loaded) == (4, 0)
    tab = res.table()
    scores = ['mean_roc_auc', 'log_loss', 'balanced_accuracy', 'accuracy', 'recall_cat', 'recall_frog', 'recall_vehicle']
    assert list(tab.index) == ['random', 'subclass_closest']
    assert list(tab.columns) == ['runs'] + [f'{m}_{s}' for m in scores for s in ('median', 'std')]
    assert tab['runs'].tolist() == [2, 2]
    for m in ('random', 'subclass_closest'):
        v = res.runs.loc[res.runs.method == m, 'mean_roc_auc']
        assert tab.loc[m, 'mean_roc_auc_median'] == pytest.approx(v.median())
        assert tab.loc[m, 'mean_roc_auc_std'] == pytest.approx(v.std(ddof=1))
    recs = {r['run']: r for r in res.records}
    assert set(recs) == {'random-seed0-draw0', 'random-seed1-draw0', 'subclass_closest-seed0', 'subclass_closest-seed1'}
    for r in recs.values():
        assert r['train_counts'] == {'cat': 60, 'frog': 60, 'vehicle': 60}
        assert r['steps'] == r['target_steps'] == 11  # the baseline's: 360 items in batches of 32
        assert r['test_counts'] == {'cat': 30, 'frog': 30, 'vehicle': 60}
        assert len((out/'items'/f"{r['run']}.txt").read_text().split()) == 180
        assert r['config']['recipe']['arch'] == 'resnet18' and r['config']['targets'] == {'vehicle': 60}
    # the same starting weights within a seed, other ones across seeds
    assert recs['random-seed0-draw0']['start_hash'] == recs['subclass_closest-seed0']['start_hash']
    assert recs['random-seed0-draw0']['start_hash'] != recs['random-seed1-draw0']['start_hash']
    assert recs['random-seed0-draw0']['train_hash'] != recs['random-seed1-draw0']['train_hash']
    assert {p.name for p in out.iterdir()} >= {'runs.csv', 'results.csv', 'results.md', 'scores.png'}
    md = (out/'results.md').read_text()
    assert md.count('\n') == 4 and '| random | 2 |' in md and ' ± ' in md
    saved = pd.read_csv(out/'results.csv', index_col='method')
    pd.testing.assert_frame_equal(saved, tab, check_names=False)

def test_resume_trains_nothing(experiment, items, monkeypatch):
    out, res = experiment
    def no_fit(*args, **kwargs): raise AssertionError('a resumed experiment trained a model')
    monkeypatch.setattr(fastai.learner.Learner, 'fit', no_fit)
    again = run_experiment(items, ['random', 'subclass_closest'], seeds=(0, 1), n={'vehicle': 60}, out_dir=out, recipe=TINY,
                           draws=1, select_kwargs=FAST_SELECT, verbose=False)
    assert (again.ran, again.loaded) == (0, 4)
    pd.testing.assert_frame_equal(again.runs, res.runs)
    # a method added later that only needs f0 (the baseline) is scored with the saved f0: still no training
    more = run_experiment(items, ['baseline', 'random', 'subclass_closest'], seeds=(0, 1), n={'vehicle': 60}, out_dir=out,
                          recipe=TINY, draws=1, select_kwargs=FAST_SELECT, verbose=False)
    assert (more.ran, more.loaded) == (2, 4)
    assert more.table().index.tolist() == ['baseline', 'random', 'subclass_closest']
    base = json.loads((out/'runs'/'baseline-seed0.json').read_text())
    assert base['train_counts'] == {'cat': 60, 'frog': 60, 'vehicle': 240}
    assert base['start_hash'] == json.loads((out/'runs'/'random-seed0-draw0.json').read_text())['start_hash']

def test_other_config_is_refused(experiment, items):
    out, _ = experiment
    with pytest.raises(ValueError, match='another config'):
        run_experiment(items, ['random'], seeds=(0,), n={'vehicle': 50}, out_dir=out, recipe=TINY, draws=1, verbose=False)

def test_read_back(experiment):
    out, res = experiment
    # runs.csv holds the runs of the latest call, and so do the records: the same table from both
    csv, recs = ExperimentResults.from_runs_csv(out/'runs.csv'), ExperimentResults.from_dir(out)
    pd.testing.assert_frame_equal(csv.table(), recs.table().loc[csv.table().index])
    assert set(csv.runs.method) >= {'random', 'subclass_closest'}

def test_summary_and_markdown():
    runs = pd.DataFrame(dict(method=['a', 'a', 'a', 'b'], seed=[0, 1, 2, 0], draw=0, mean_roc_auc=[0.5, 0.7, 0.9, 0.6],
                             log_loss=[1.0, 2.0, 3.0, 0.5]))
    tab = summarize(runs, methods=['b', 'a'])
    assert tab.index.tolist() == ['b', 'a']
    assert tab.loc['a', 'mean_roc_auc_median'] == 0.7 and tab.loc['a', 'mean_roc_auc_std'] == pytest.approx(0.2)
    assert np.isnan(tab.loc['b', 'log_loss_std'])
    md = markdown_table(tab).split('\n')
    assert md[0] == '| method | runs | mean_roc_auc | log_loss |'
    # the best median in bold: the highest AUC, the lowest log loss
    assert md[2] == '| b | 1 | 0.600 | **0.500** |' and md[3] == '| a | 3 | **0.700 ± 0.200** | 2.000 ± 1.000 |'

def test_methods_constant():
    assert METHODS == ('baseline', 'random', 'oversample', 'weighted_loss', 'subclass_closest', 'subclass_farthest', 'subclass_random')

def test_f0_is_saved_whole_and_a_broken_one_is_named(experiment, items, monkeypatch):
    import torch, fastai_subclass.experiments as E
    out, _ = experiment
    fn = sorted((out/'models').glob('f0-seed0-*.pth'))[0]
    good = fn.read_bytes()
    def _killed(obj, f, *a, **k):  # torch.save killed half way, into a file object or a path
        (f.write(b'half') if hasattr(f, 'write') else open(f, 'wb').write(b'half')); raise KeyboardInterrupt
    monkeypatch.setattr(E.torch, 'save', _killed)
    with pytest.raises(KeyboardInterrupt): E._save_weights({'w': torch.ones(2)}, out/'models'/'new.pth')
    assert not (out/'models'/'new.pth').exists() and [p.name for p in (out/'models').iterdir() if 'new' in p.name] == []
    monkeypatch.undo()
    try:
        fn.write_bytes(good[:100])  # a file cut short (killed while saving, by an older version)
        with pytest.raises(ValueError, match=f"cannot read the saved weights .*{fn.name}.*delete the file"):
            run_experiment(items, ['subclass_farthest'], seeds=(0,), n={'vehicle': 60}, out_dir=out, recipe=TINY,
                           select_kwargs=FAST_SELECT, verbose=False)  # a method not run yet: it needs f0
    finally: fn.write_bytes(good)

def test_per_epoch_methods_draw_every_epoch(items, tmp_path):
    "subclass_balanced / subclass_weighted / subclass_dro: trained on loaders that draw n items of the class each epoch, all items recorded"
    res = run_experiment(items, ['subclass_balanced', 'subclass_weighted', 'subclass_dro'], seeds=(0,), n={'vehicle': 60}, out_dir=tmp_path,
                         recipe=TINY, select_kwargs=FAST_SELECT, verbose=False)
    runs = res.runs.set_index('method')
    assert list(runs.index) == ['subclass_balanced', 'subclass_weighted', 'subclass_dro']
    for m in runs.index:
        rec = json.loads((tmp_path/'runs'/f'{m}-seed0.json').read_text())
        assert rec['epoch_items'] == 180 and rec['n_train'] == 360  # 60 vehicles + 60 cats + 60 frogs an epoch, of all 360
        assert rec['config']['targets'] == {'vehicle': 60}
        assert np.isfinite(rec['scores']['mean_roc_auc'])
    # the same starting weights and steps as every method of the seed
    assert len({json.loads(f.read_text())['start_hash'] for f in (tmp_path/'runs').glob('*.json')}) == 1

def test_pretrained_methods_cluster_the_starting_weights(items, tmp_path, monkeypatch):
    "pretrained_*: selected through the weights every method starts from, before training and without f0; refused from random weights"
    import torch, torchvision
    import fastai_subclass.experiments as E
    wfile = tmp_path/'resnet18.pth'
    torch.manual_seed(0); torch.save(torchvision.models.resnet18().state_dict(), wfile)
    with pytest.raises(ValueError, match="recipe\\['pretrained'\\] is False"):
        run_experiment(items, ['pretrained_dro'], seeds=(0,), n={'vehicle': 60}, out_dir=tmp_path/'a', recipe=TINY, verbose=False)
    calls = []
    real = E.subclass_undersample
    def spy(learn, *a, **kw):
        calls.append((kw.get('before_training'), {k: v.clone() for k, v in learn.model.state_dict().items()}))
        return real(learn, *a, **kw)
    monkeypatch.setattr(E, 'subclass_undersample', spy)
    recipe = dict(TINY, pretrained=True, weights_file=str(wfile))
    res = run_experiment(items, ['pretrained_closest', 'pretrained_dro'], seeds=(0,), n={'vehicle': 60}, out_dir=tmp_path/'b',
                         recipe=recipe, select_kwargs=FAST_SELECT, verbose=False)
    assert list(res.runs.method) == ['pretrained_closest', 'pretrained_dro']
    assert not (tmp_path/'b'/'models').exists() or not list((tmp_path/'b'/'models').glob('f0-*'))  # no f0 was trained
    assert len(calls) == 1 and calls[0][0] is True  # one selection for both, made before training
    start = torch.load(wfile)
    body = {k[len('0.'):]: v for k, v in calls[0][1].items() if k.startswith('0.')}  # the body of the selecting model ...
    torchvision_keys = [k for k in start if not k.startswith('fc.')]
    assert len(body) == len(torchvision_keys)
    assert all(torch.equal(a, start[k]) for a, k in zip(body.values(), torchvision_keys))  # ... is the weights file, untrained
    for m in res.runs.method:
        rec = json.loads((tmp_path/'b'/'runs'/f'{m}-seed0.json').read_text())
        assert np.isfinite(rec['scores']['mean_roc_auc'])
    assert json.loads((tmp_path/'b'/'runs'/'pretrained_closest-seed0.json').read_text())['n_train'] == 180
