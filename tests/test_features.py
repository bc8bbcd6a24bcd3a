"The feature cache (issue item 5): files replaced in place, corrupt cache files, two writers of one key."
import shutil, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, resnet18, get_image_files
import fastai_subclass
from fastai_subclass.features import extract_features, feature_cache_path, atomic_write, MAX_FEATURE_BYTES

SAMPLE = Path(fastai_subclass.__file__).parent/'data'/'sample'

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1); yield; torch.set_num_threads(n)

@pytest.fixture(scope='module')
def learn():
    dls = ImageDataLoaders.from_folder(SAMPLE, valid='valid', bs=8, item_tfms=Resize(32))
    return vision_learner(dls, resnet18, pretrained=False)

@pytest.fixture
def images(tmp_path):
    for o in get_image_files(SAMPLE/'train'/'cat')[:4]: shutil.copy(o, tmp_path)
    return get_image_files(tmp_path)

class Forwards:
    "Counts the batches through a model"
    def __init__(self, m): self.n = 0; self.h = m.register_forward_hook(self)
    def __call__(self, *args): self.n += 1

def _extract(learn, items, cache): return extract_features(learn, items, layer='pool', cache_dir=cache, progress=False)['pool']

def test_an_image_replaced_in_place_is_recomputed(learn, images, tmp_path):
    cache = tmp_path/'cache'
    before = _extract(learn, images, cache)
    shutil.copy(get_image_files(SAMPLE/'train'/'frog')[0], images[0])  # same name, other pixels
    after = _extract(learn, images, cache)
    assert not np.allclose(before[0], after[0]), "the old features of the replaced image came back from the cache"
    np.testing.assert_allclose(before[1:], after[1:], atol=1e-5)

def test_dataframe_items_key_on_their_files_too(learn, images, tmp_path):
    df = pd.DataFrame({'fname': [str(o) for o in images], 'label': 'cat'})
    fn = lambda: feature_cache_path(learn, df, 'pool', tmp_path)
    a = fn()
    shutil.copy(get_image_files(SAMPLE/'train'/'frog')[0], images[0])
    assert fn() != a

@pytest.mark.parametrize('damage', [lambda b: b[:100], lambda b: b'', lambda b: b'not a zip file at all'])
def test_a_corrupt_cache_file_is_recomputed_with_a_warning(learn, images, tmp_path, damage):
    cache = tmp_path/'cache'
    good = _extract(learn, images, cache)
    fn = feature_cache_path(learn, images, 'pool', cache, max_bytes=MAX_FEATURE_BYTES, proj_dim=4096, seed=42)
    assert fn.exists()
    fn.write_bytes(damage(fn.read_bytes()))
    calls = Forwards(learn.model)
    try:
        with pytest.warns(UserWarning, match=fn.name): again = _extract(learn, images, cache)
    finally: calls.h.remove()
    assert calls.n > 0
    np.testing.assert_allclose(again, good, atol=1e-5)
    np.testing.assert_allclose(_extract(learn, images, cache), good, atol=1e-5)  # and the cache is whole again

def test_two_writers_of_one_key_do_not_collide(tmp_path):
    "Two processes that computed the same key save it at the same time: each has its own temporary file"
    fn = tmp_path/'features-x.npz'
    with atomic_write(fn) as f1, atomic_write(fn) as f2:
        np.savez(f1, pool=np.zeros((2, 3))); np.savez(f2, pool=np.ones((2, 3)))
    with np.load(fn) as f: assert f['pool'].shape == (2, 3)
    assert [o.name for o in tmp_path.iterdir()] == [fn.name]

def test_layer_errors_name_layer(learn):
    with pytest.raises(ValueError, match="layer='head'"): extract_features(learn, [], layer='head')
