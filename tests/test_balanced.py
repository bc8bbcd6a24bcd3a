"The per-epoch subclass-balanced draw: exact quotas every epoch, every item covered, repeatable, validation untouched, fastai's copies and training, the weighted variant's shares, Group DRO's update."
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders, TfmdDL
from fastai.data.block import DataBlock, CategoryBlock
from fastai.data.transforms import GrandparentSplitter, parent_label, get_image_files
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.vision.data import ImageDataLoaders, ImageBlock
from fastai.vision.augment import Resize
from fastai.vision.learner import vision_learner
from fastai.torch_core import set_seed
import fastai.callback.progress, fastai.callback.schedule  # noqa: F401 (no_bar, fine_tune)
from torchvision.models import resnet18
from fastai_subclass.core import Subclasses, cluster_quotas, select_samples
from fastai_subclass.select import ClassSelection, SubclassSelection, train_keys, train_labels
from fastai_subclass.datasets import sample_path
from fastai_subclass.balanced import (group_draw, balanced_draw, cover_epochs, EpochPlan, SubclassBalancedDL, SubclassWeightedDL,
                                      GroupDRO)

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

def test_group_draw_quota_and_coverage():
    for size, quota in [(1, 1), (5, 3), (7, 2), (10, 10), (13, 4), (30, 15)]:
        draws = [group_draw(size, quota, e, seed=3, group=1) for e in range(4 * cover_epochs([size], [quota]))]
        assert all(len(d) == quota == len(set(d)) for d in draws)  # exactly the quota, no item twice
        assert set(np.concatenate(draws[:cover_epochs([size], [quota])])) == set(range(size))
        counts = np.bincount(np.concatenate(draws), minlength=size)
        assert counts.max() - counts.min() <= 1  # cycling: no item drawn again before all others

def test_group_draw_seeded():
    a = [group_draw(9, 4, e, seed=5) for e in range(6)]
    assert all((group_draw(9, 4, e, seed=5) == d).all() for e, d in enumerate(a))  # any epoch, in any order
    assert all((group_draw(9, 4, e, seed=5) == a[e]).all() for e in (5, 0, 3))
    assert any((group_draw(9, 4, e, seed=6) != d).any() for e, d in enumerate(a))
    assert any((group_draw(9, 4, e, seed=5, group=1) != d).any() for e, d in enumerate(a))

def test_group_draw_bad_input():
    with pytest.raises(ValueError, match="between 0 and the group's size 3"): group_draw(3, 4, 0)
    with pytest.raises(ValueError, match="epoch"): group_draw(3, 1, -1)
    assert len(group_draw(3, 0, 2)) == 0

def test_balanced_draw_counts():
    groups = [np.arange(0, 50), np.arange(50, 60), np.arange(60, 62), np.arange(62, 80)]
    quotas = list(cluster_quotas([50, 10, 2], 21)) + [18]
    assert quotas == [10, 9, 2, 18]
    seen = set()
    for e in range(cover_epochs([50, 10, 2, 18], quotas)):
        d = balanced_draw(groups, quotas, e, seed=0)
        assert [np.isin(d, g).sum() for g in groups] == quotas
        seen |= set(d)
    assert seen == set(range(80))
    with pytest.raises(ValueError, match="one quota per group"): balanced_draw(groups, quotas[:2], 0)

def _hand_selection(keys, labels, n=60, seed=42, path=None):
    "The vehicles' true subclasses (the start of the file name) as clusters, `n` kept at random"
    idx = np.flatnonzero(np.array(labels) == 'vehicle')
    subs = np.unique([Path(keys[i]).name.split('_')[0] for i in idx], return_inverse=True)[1].ravel()
    sc = Subclasses(subs, int(subs.max()) + 1, np.zeros((subs.max() + 1, 2)), np.zeros((len(subs), 2), np.float32))
    cs = ClassSelection('vehicle', idx, 'truth', subs, select_samples(sc, n, 'random', seed=seed), {'truth': sc})
    return SubclassSelection(keys, labels, {'vehicle': cs}, 'random', seed, path=path)

@pytest.fixture(scope='module')
def sample():
    dls = ImageDataLoaders.from_folder(sample_path(), valid='valid', bs=25, item_tfms=Resize(32), num_workers=0)
    keys, labels = train_keys(dls), train_labels(dls)
    true = np.array([Path(k).name.split('_')[0] if l == 'vehicle' else l for k, l in zip(keys, labels)])
    return dls, _hand_selection(keys, labels, path=dls.path), true

def test_epoch_plan(sample):
    dls, sel, true = sample
    plan = sel.epoch_plan()
    assert plan.quotas == [15, 15, 15, 15, 60, 60] and plan.epoch_size == len(sel.keep) == 180
    ids = plan.group_ids(len(sel.keys))
    assert (ids >= 0).all()
    # a group is one true subclass, or one class kept whole
    assert all(len(set(true[g])) == 1 for g in plan.groups)

def test_balanced_dataloaders_epochs(sample):
    dls, sel, true = sample
    bdls = sel.balanced_dataloaders(dls)
    dl = bdls.train
    assert len(dl.dataset) == len(dls.train_ds) == 360  # the full training set
    assert dl.n == len(sel.keep) and len(dl) == len(sel.keep) // dls.train.bs
    assert bdls.valid is dls.valid
    seen = set()
    for _ in range(8):  # ceil(110 airplanes / 15)
        idxs = dl.get_idxs()
        assert len(idxs) == len(set(idxs)) == len(sel.keep)
        assert pd.Series(true[idxs]).value_counts().to_dict() == {'cat': 60, 'frog': 60, 'airplane': 15, 'automobile': 15,
                                                                   'ship': 15, 'truck': 15}
        seen |= set(idxs)
    assert seen == set(range(360))
    # same seed, same draws; another seed, others
    a, b = sel.balanced_dataloaders(dls).train, sel.balanced_dataloaders(dls).train
    assert all(a.get_idxs() == b.get_idxs() for _ in range(3))
    other = _hand_selection(sel.keys, sel.labels, seed=7, path=dls.path).balanced_dataloaders(dls).train
    assert set(other.get_idxs()) != set(sel.balanced_dataloaders(dls).train.get_idxs())

def test_validation_unchanged(sample):
    dls, sel, _ = sample
    before = list(dls.valid.get_idxs()), list(dls.valid_ds.items)
    for bdls in (sel.balanced_dataloaders(dls), sel.weighted_dataloaders(dls)):
        assert bdls.valid is dls.valid
        assert list(bdls.valid.get_idxs()) == before[0] and list(bdls.valid_ds.items) == before[1]

def test_copies(sample):
    dls, sel, _ = sample
    dl = sel.balanced_dataloaders(dls).train
    assert dl.new(shuffle=False).get_idxs() == list(range(360))  # get_preds(ds_idx=0): every item, in order
    dl.get_idxs()
    cp = dl.new()
    assert type(cp) is SubclassBalancedDL and cp.epoch == 1 and cp.get_idxs() == dl.get_idxs()
    e = dl.epoch
    dl.one_batch()
    assert dl.epoch == e  # show_batch uses no epoch
    assert type(dl.new(dls.valid_ds)) is TfmdDL  # other data: the draw does not apply
    with pytest.raises(ValueError, match="pass them"): sel.balanced_dataloaders()
    sel.source_dls = dls
    try: assert sel.balanced_dataloaders().train.n == 180
    finally: del sel.source_dls

def test_factories(sample):
    dls, sel, _ = sample
    root = sample_path()
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, splitter=GrandparentSplitter(valid_name='valid'),
                       get_y=parent_label, item_tfms=Resize(32))
    df = pd.DataFrame({'fname': [str(o.relative_to(root)) for o in get_image_files(root)]})
    df['label'], df['is_valid'] = df.fname.map(lambda o: Path(o).parent.name), df.fname.str.startswith('valid')
    df = df.sample(frac=1, random_state=1).reset_index(drop=True)
    ref = sel.balanced_dataloaders(dls).train
    ref_keys = np.array(train_keys(dls))[ref.get_idxs()]
    for other in (dblock.dataloaders(root, path=root, bs=25, num_workers=0),
                  ImageDataLoaders.from_df(df, root, fn_col='fname', label_col='label', valid_col='is_valid', item_tfms=Resize(32),
                                           bs=25, num_workers=0)):
        dl = sel.balanced_dataloaders(other).train
        assert sorted(np.array(train_keys(other))[dl.get_idxs()]) == sorted(ref_keys)  # the same items, found by key

def test_trains(sample):
    dls, sel, _ = sample
    set_seed(0)
    learn = vision_learner(sel.balanced_dataloaders(dls), resnet18, pretrained=False, n_out=3)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, freeze_epochs=0)
    assert learn.dls.train.epoch == 1 and len(learn.recorder.losses) == 180 // 25
    with learn.no_bar(): preds, _ = learn.get_preds(ds_idx=0)
    assert len(preds) == 360
    learn = vision_learner(sel.weighted_dataloaders(dls), resnet18, pretrained=False, n_out=3)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert len(learn.recorder.losses) == 180 // 25

def test_weighted_shares(sample):
    dls, sel, true = sample
    w = sel.subclass_weights()
    for s in ('airplane', 'automobile', 'ship', 'truck'): assert w[true == s].sum() == pytest.approx(15)
    assert (w[np.isin(true, ['cat', 'frog'])] == 1).all()
    dl = sel.weighted_dataloaders(dls).train
    assert isinstance(dl, SubclassWeightedDL) and dl.n == len(sel.keep) and len(dl.dataset) == 360
    draws = np.concatenate([dl.get_idxs() for _ in range(300)])
    shares = pd.Series(true[draws]).value_counts() / 300
    for s, v in {'airplane': 15, 'automobile': 15, 'ship': 15, 'truck': 15, 'cat': 60, 'frog': 60}.items():
        assert abs(shares[s] - v) < 0.05 * v, (s, shares[s])
    assert (dl.new().wgts == dl.wgts).all() and dl.new(shuffle=False).get_idxs() == list(range(360))
    a, b = sel.weighted_dataloaders(dls).train, sel.weighted_dataloaders(dls).train
    assert a.get_idxs() == b.get_idxs()

def _toy_dls(eta_seed=0):
    "Points whose target is their group: 3 groups of sizes 12, 6, 6, 4 of each an epoch"
    g = np.repeat([0, 1, 2], [12, 6, 6])
    x = torch.randn(len(g), 2, generator=torch.Generator().manual_seed(eta_seed))
    items = [(x[i], torch.tensor(g[i])) for i in range(len(g))]
    groups = [np.flatnonzero(g == k) for k in range(3)]
    train = SubclassBalancedDL(items, bs=4, groups=groups, quotas=[4, 4, 4], shuffle=True, seed=1)
    return DataLoaders(train, TfmdDL(items, bs=4))

class _Check(Callback):
    "After GroupDRO: record its weights, the batch's groups and targets, and the loss it set"
    order = 70
    def __init__(self, dro): self.dro = dro
    def before_fit(self): self.rows = []
    def after_loss(self):
        if self.training:
            dro = self.dro
            self.rows.append((dro.groups.clone(), self.yb[0].clone(), self.pred.detach().clone(), dro.q.clone(), self.learn.loss_grad.detach().clone()))

def test_group_dro_update():
    set_seed(0)
    dro = GroupDRO(eta=0.5); chk = _Check(dro)
    learn = Learner(_toy_dls(), nn.Linear(2, 3), loss_func=CrossEntropyLossFlat(), cbs=[dro, chk], lr=0.1)
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    assert len(chk.rows) == 2 * 3
    q = torch.full((3,), 1 / 3)
    for groups, y, pred, q_after, loss in chk.rows:
        assert torch.equal(groups, y)  # the groups GroupDRO found for the batch are its items' groups
        losses = F.cross_entropy(pred, y, reduction='none')
        gl = torch.stack([losses[y == k].mean() if (y == k).any() else torch.tensor(0.) for k in range(3)])
        q = q * torch.exp(0.5 * gl); q = q / q.sum()
        assert torch.allclose(q_after, q, atol=1e-6)
        assert torch.allclose(loss, (gl * q).sum(), atol=1e-6)
    assert learn.loss_func.reduction == 'mean'

def test_group_dro_needs_groups(sample):
    dls, _, _ = sample
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3)), loss_func=CrossEntropyLossFlat(), cbs=GroupDRO())
    with pytest.raises(ValueError, match="group of every training item"), learn.no_bar(), learn.no_logging(): learn.fit(1)

LOAD = """import sys; sys.modules['fastai_subclass'] = None
from fastai.learner import load_learner
learn = load_learner(sys.argv[1])
print('LOADED', type(learn.dls.train).__name__)"""

def test_export_loads_without_library(sample, tmp_path):
    "`learn.export` of a learner trained on balanced loaders: its empty loaders are plain fastai ones"
    import os, subprocess, sys
    dls, sel, _ = sample
    learn = vision_learner(sel.balanced_dataloaders(dls), resnet18, pretrained=False, n_out=3, path=tmp_path)
    learn.export('fu.pkl')
    env = {**os.environ, 'PYTHONPATH': '', 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-c', LOAD, str(tmp_path/'fu.pkl')], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'LOADED TfmdDL' in r.stdout
