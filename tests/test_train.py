"The callback `SubclassUndersampling` and `subclass_fine_tune` follow fastai's habits: f0 is the user's own call, lr_find is not f0, one parameter group and frozen-only fits work, f_u replays f0's schedule."
import pickle, warnings
from copy import deepcopy
from pathlib import Path
import numpy as np, pytest, torch
from torch import nn
from fastai.callback.core import Callback, CancelFitException
from fastai.learner import Learner
from fastai.vision.data import ImageDataLoaders
from fastai.vision.augment import Resize
from fastai.vision.learner import vision_learner
from fastai.torch_core import set_seed
import fastai.callback.progress, fastai.callback.schedule  # noqa: F401 (no_bar, fine_tune, lr_find)
from torchvision.models import resnet18
import fastai_subclass
from fastai_subclass.select import train_labels, subset_dataloaders
from fastai_subclass.train import SubclassUndersampling

SAMPLE = Path(fastai_subclass.__file__).parent/'data'/'sample'
QUICK = dict(layer='pool', seed=0, ks=range(2, 4), progress=False)

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

@pytest.fixture(scope='module')
def small_dls():
    "80 vehicles, 20 cats, 20 frogs at 32 px"
    dls = ImageDataLoaders.from_folder(SAMPLE, valid='valid', item_tfms=Resize(32), bs=25, num_workers=0)
    labels = np.array(train_labels(dls))
    return subset_dataloaders(dls, np.concatenate([np.flatnonzero(labels == c)[::3] for c in ('vehicle', 'cat', 'frog')]))

class RecordFits(Callback):
    "Record (epochs, training items, first lr, frozen layer groups) and the start weights of every fit"
    order = 0
    def __init__(self): self.fits, self.states = [], []
    def before_fit(self):
        self.fits.append((self.n_epoch, len(self.dls.train_ds), self.opt.frozen_idx))
        self.states.append(deepcopy(self.model.state_dict()))

def _same(a, b): return all(torch.equal(a[k], b[k]) for k in a)

def _learner(dls, one_group=False):
    set_seed(0)
    if one_group: return Learner(dls, nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)), cbs=RecordFits())
    return vision_learner(dls, resnet18, pretrained=False, cbs=RecordFits())

def _quiet(learn): return learn.no_bar()

def test_fine_tune_with_the_callback(small_dls):
    learn = _learner(small_dls)
    init = deepcopy(learn.model.state_dict())
    msgs = []
    with _quiet(learn):
        learn.logger = lambda m: msgs.append(str(m))
        learn.fine_tune(2, 3e-3, freeze_epochs=1, cbs=SubclassUndersampling(n=20, **QUICK))
    rec = learn.record_fits
    assert rec.fits == [(1, 120, 2), (2, 120, 0), (1, 60, 2), (2, 60, 0)]  # f0: the whole fine_tune; f_u: the same
    assert _same(rec.states[2], init)
    assert any(m.startswith('f_u:') for m in msgs)  # f_u's training is labelled
    # f0 keeps its recorder's history (its last fit: 2 epochs of 120 items) and f_u replays its schedule
    assert len(learn.f0.recorder.values) == 2 and len(learn.f0.recorder.lrs) == 2 * len(learn.f0.dls.train)
    assert len(learn.recorder.lrs) == 2 * len(learn.dls.train) and learn.recorder.lrs[0] == pytest.approx(learn.f0.recorder.lrs[0])
    # the callback is gone, and neither f0 nor the selection is pickled with the learner
    assert not any(isinstance(cb, SubclassUndersampling) for cb in learn.cbs)
    learn.remove_cb(rec)
    assert b'fastai_subclass' not in pickle.dumps(learn.model) and 'f0' not in learn.__dict__

def test_lr_find_is_not_f0(small_dls):
    learn = _learner(small_dls)
    learn.add_cb(SubclassUndersampling(n=20, **QUICK))
    with _quiet(learn), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.lr_find(num_it=5, show_plot=False)
        assert learn.f0 is None and len(learn.dls.train_ds) == 120
        learn.fine_tune(1, 3e-3, freeze_epochs=1)
    assert [f[:2] for f in learn.record_fits.fits[-4:]] == [(1, 120), (1, 120), (1, 60), (1, 60)]
    assert learn.f0 is not None and max(learn.recorder.lrs) < 1e-2  # not lr_find's rising schedule

def test_a_frozen_only_fit(small_dls):
    learn = _learner(small_dls)
    learn.freeze()
    with _quiet(learn): learn.fit_one_cycle(1, 3e-3, cbs=SubclassUndersampling(n=20, **QUICK))
    assert learn.record_fits.fits == [(1, 120, 2), (1, 60, 2)]
    assert learn.subclass_selection.summary().loc['vehicle', 'kept'] == 20

def test_one_parameter_group(small_dls):
    learn = _learner(small_dls, one_group=True)
    with _quiet(learn): learn.fine_tune(2, 3e-3, freeze_epochs=1, cbs=SubclassUndersampling(n=20, **{**QUICK, 'layer': '2'}))
    assert [f[:2] for f in learn.record_fits.fits] == [(1, 120), (2, 120), (1, 60), (2, 60)]

class CancelFirst(Callback):
    def after_batch(self): raise CancelFitException()

def test_a_cancelled_f0_warns(small_dls):
    learn = _learner(small_dls)
    cb = SubclassUndersampling(n=20, **QUICK)
    with _quiet(learn), pytest.warns(UserWarning, match="f0's fit was cancelled"):
        learn.fit_one_cycle(1, 3e-3, cbs=[cb, CancelFirst()])
    assert learn.f0 is None and len(learn.dls.train_ds) == 120

def test_subclass_fine_tune(small_dls):
    learn = _learner(small_dls)
    init = deepcopy(learn.model.state_dict())
    with pytest.raises(ValueError, match='pass n'): learn.subclass_fine_tune(1)
    with _quiet(learn), learn.no_logging(): sel = learn.subclass_fine_tune(1, 3e-3, freeze_epochs=1, n=20, **QUICK)
    rec = learn.record_fits
    assert [f[:2] for f in rec.fits] == [(1, 120), (1, 120), (1, 60), (1, 60)] and _same(rec.states[2], init)
    assert learn.subclass_selection is sel and len(learn.f0.dls.train_ds) == 120
    assert not _same(learn.f0.model.state_dict(), learn.model.state_dict())

def test_a_weights_file_goes_into_the_body(small_dls, tmp_path):
    from fastai_subclass.train import subclass_learner, load_weights_file
    from fastai.vision.learner import create_body
    hub = tmp_path/'hub'; hub.mkdir()
    old = torch.hub.get_dir(); torch.hub.set_dir(str(hub))
    try:
        set_seed(1); fn = tmp_path/'r18.pth'; torch.save(resnet18().state_dict(), fn)
        learn = subclass_learner(small_dls, resnet18, weights_file=fn)
        want = create_body(resnet18(), 3, True, -2); want.load_state_dict(create_body(_loaded(fn), 3, True, -2).state_dict())
        assert _same(learn.model[0].state_dict(), want.state_dict())
        assert learn.opt.frozen_idx == 2 and any(type(t).__name__ == 'Normalize' for t in learn.dls.after_batch.fs)
        bad = tmp_path/'bad.pth'; bad.write_bytes(b'not a weights file')
        with pytest.raises(ValueError, match='bad.pth is not a PyTorch weights file'): subclass_learner(small_dls, resnet18, weights_file=bad)
        other = tmp_path/'other.pth'; torch.save(nn.Linear(2, 2).state_dict(), other)
        with pytest.raises(ValueError, match='other.pth does not hold the weights of resnet18'): subclass_learner(small_dls, resnet18, weights_file=other)
        assert list(hub.rglob('*')) == []  # torch's hub cache is never written
    finally: torch.hub.set_dir(old)

def _loaded(fn):
    m = resnet18(); m.load_state_dict(torch.load(fn)); return m
