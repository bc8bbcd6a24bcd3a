"After `subclass_fine_tune` or the callback, `learn.export()` is about a plain learner's size and loads in a fresh process that never imports fastai_subclass."
import os, subprocess, sys, warnings
from pathlib import Path
import pytest
from fastai.vision.data import ImageDataLoaders
from fastai.vision.augment import Resize
from fastai.vision.learner import vision_learner
from fastai.torch_core import set_seed
import fastai.callback.progress, fastai.callback.schedule  # noqa: F401
from torchvision.models import resnet18
import fastai_subclass
from fastai_subclass.train import SubclassUndersampling

SAMPLE = Path(fastai_subclass.__file__).parent/'data'/'sample'
QUICK = dict(layer='pool', seed=0, ks=range(2, 4), progress=False)
# fastai alone: importing fastai_subclass fails in the loading process
LOAD = """import sys; sys.modules['fastai_subclass'] = None
from fastai.learner import load_learner
learn = load_learner(sys.argv[1])
print('LOADED', learn.predict(sys.argv[2])[0], type(learn).__module__)"""

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

def _dls():
    return ImageDataLoaders.from_folder(SAMPLE, valid='valid', item_tfms=Resize(32), bs=25, num_workers=0)

def _learner(path, **kwargs):
    set_seed(0)
    return vision_learner(_dls(), resnet18, pretrained=False, path=path, **kwargs)

def _load_without_fastai_subclass(fn):
    img = sorted((SAMPLE/'valid'/'cat').iterdir())[0]
    env = {**os.environ, 'PYTHONPATH': '', 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-c', LOAD, str(fn), str(img)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return [l for l in r.stdout.splitlines() if l.startswith('LOADED')][-1].split()[1:]

@pytest.fixture(scope='module')
def plain(tmp_path_factory):
    path = tmp_path_factory.mktemp('plain')
    learn = _learner(path)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 3e-3, freeze_epochs=1)
    learn.export('plain.pkl')
    return (path/'plain.pkl').stat().st_size

@pytest.mark.parametrize('how', ['subclass_fine_tune', 'callback'])
def test_export_is_plain(plain, tmp_path, how):
    if how == 'callback': learn = _learner(tmp_path, cbs=SubclassUndersampling(n=60, **QUICK))
    else: learn = _learner(tmp_path)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if how == 'callback': learn.fine_tune(1, 3e-3, freeze_epochs=1)
        else: learn.subclass_fine_tune(1, 3e-3, freeze_epochs=1, n=60, **QUICK)
    assert learn.f0 is not None and len(learn.dls.train_ds) == 180  # f_u, trained on the kept items
    learn.export('fu.pkl')
    size = (tmp_path/'fu.pkl').stat().st_size
    print(f"{how}: export {size:,} bytes, plain learner {plain:,}")
    assert abs(size - plain) < 0.01 * plain  # neither f0, nor the selection, nor the start weights
    pred, module = _load_without_fastai_subclass(tmp_path/'fu.pkl')
    assert pred in ('cat', 'frog', 'vehicle') and module == 'fastai.learner'
