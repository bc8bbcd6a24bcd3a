"Integration tests of the fastai path on the shipped sample images: f0, hooks, selection, rebuilt loaders, f_u (pinned and newest fastai)."
import shutil, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.data.block import DataBlock, CategoryBlock, MultiCategoryBlock
from fastai.data.transforms import ColReader, ColSplitter, GrandparentSplitter, get_image_files, parent_label
from fastai.vision.data import ImageBlock, ImageDataLoaders
from fastai.vision.augment import Resize
from fastai.vision.learner import vision_learner
from fastai.layers import AdaptiveConcatPool2d
from fastai.torch_core import set_seed
import fastai.callback.progress, fastai.callback.schedule  # noqa: F401 (add Learner.no_bar, fit_one_cycle)
from torchvision.models import resnet18, densenet121, vgg16_bn
import fastai_subclass
from fastai_subclass.features import candidate_layers, extract_features
from fastai_subclass.select import (train_labels, train_keys, item_keys, subset_dataloaders, subclass_undersample,
                                    SubclassSelection, SubclassSplitter)

SAMPLE = Path(fastai_subclass.__file__).parent/'data'/'sample'
#: Cheap selection settings for the tests that are about the loaders, not the layer choice: one layer, few k
QUICK = dict(layer='pool', ks=range(2, 4), progress=False)

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

def quiet_fit(learn, *args, **kwargs):
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit_one_cycle(*args, **kwargs)

def sample_df():
    "The sample as a table: relative file name, label, is_valid; with a string index, so item keys are not positions"
    files = get_image_files(SAMPLE)
    df = pd.DataFrame({'fname': [str(o.relative_to(SAMPLE)) for o in files], 'label': [parent_label(o) for o in files],
                       'is_valid': [o.parent.parent.name == 'valid' for o in files]})
    df.index = [f'img{i:04d}' for i in range(len(df))]
    return df

def factory_dls(kind):
    "The sample through one of fastai's factory methods, 32 px"
    kw = dict(item_tfms=Resize(32), bs=25, num_workers=0)
    if kind == 'from_folder': return ImageDataLoaders.from_folder(SAMPLE, valid='valid', **kw)
    if kind == 'from_df':  # columns by name: fastai 2.8.7's default fn_col=0 breaks on pandas 3
        return ImageDataLoaders.from_df(sample_df(), SAMPLE, fn_col='fname', label_col='label', valid_col='is_valid', **kw)
    files = get_image_files(SAMPLE/'train')
    return ImageDataLoaders.from_lists(SAMPLE, files, [parent_label(o) for o in files], valid_pct=0.25, seed=0, **kw)

def learner_like(dls, f0):
    "A ResNet18 learner on `dls` with f0's weights"
    learn = vision_learner(dls, resnet18, pretrained=False)
    assert list(dls.vocab) == list(f0.dls.vocab)
    learn.model.load_state_dict(f0.model.state_dict())
    return learn

def sample_block(splitter, blocks=(ImageBlock, CategoryBlock), get_y=parent_label):
    "A DataBlock over the sample's files, 32 px"
    return DataBlock(blocks=blocks, get_items=get_image_files, splitter=splitter, get_y=get_y, item_tfms=Resize(32))

@pytest.fixture(scope='module')
def dls(): return factory_dls('from_folder')

@pytest.fixture(scope='module')
def f0(dls):
    "f0: a ResNet18 trained from scratch for one epoch (no pretrained weights offline)"
    set_seed(0)
    learn = vision_learner(dls, resnet18, pretrained=False)
    quiet_fit(learn, 1, 3e-3)
    return learn

@pytest.fixture(scope='module')
def sel(f0):
    "The whole selection: vehicle (240) undersampled to 60, all three layers, the default k range"
    return subclass_undersample(f0, 60, seed=42, progress=False)

def test_whole_path_keeps_the_kept_items_and_every_other(dls, f0, sel):
    labels = train_labels(dls)
    assert list(sel.classes) == ['vehicle'] and sel.labels == labels
    cs = sel.classes['vehicle']
    assert set(cs.scores) == {'body', 'pool', 'linear'}
    assert cs.layer == max(cs.by_layer, key=lambda l: cs.by_layer[l].silhouette)
    assert len(cs.kept) == 60 and len(set(cs.kept.tolist())) == 60
    assert cs.kept_per_cluster.sum() == 60 and cs.kept_per_cluster.max() - cs.kept_per_cluster.min() <= 1, cs.kept_per_cluster
    assert (cs.kept_per_cluster <= cs.sizes).all()
    assert sel.counts()['after'].to_dict() == {'vehicle': 60, 'cat': 60, 'frog': 60}
    dls_u = sel.dataloaders(dls)
    keys = train_keys(dls)
    assert sel.keys == keys and keys[0] == dls.train_ds.items[0].relative_to(SAMPLE).as_posix()  # files relative to dls.path
    kept_vehicles = {keys[i] for i in cs.idx[cs.kept]}
    others = {k for k, l in zip(keys, labels) if l != 'vehicle'}
    assert len(dls_u.train_ds) == 180
    assert train_keys(dls_u) == [keys[i] for i in sel.keep] == sel.kept_keys
    assert set(train_keys(dls_u)) == kept_vehicles | others
    # every kept item keeps its own label
    assert train_labels(dls_u) == [labels[i] for i in sel.keep]
    assert dls_u.valid is dls.valid and item_keys(dls_u.valid_ds.items) == item_keys(dls.valid_ds.items)
    assert dls_u.train.bs == dls.train.bs and list(dls_u.vocab) == list(dls.vocab)
    # f_u: a fresh model trained on the kept items only
    learn_u = vision_learner(dls_u, resnet18, pretrained=False)
    with learn_u.no_bar(), learn_u.no_logging(): learn_u.fit(1, 1e-3, cbs=[])
    assert learn_u.train_iter == len(dls_u.train) == 180 // 25
    preds, targs = learn_u.get_preds()
    assert preds.shape == (120, 3) and len(targs) == 120

def test_same_seed_same_items(f0, sel):
    again = subclass_undersample(f0, 60, seed=42, progress=False)
    assert np.array_equal(again.keep, sel.keep)
    a, b = again.classes['vehicle'], sel.classes['vehicle']
    assert a.layer == b.layer and np.array_equal(a.labels, b.labels) and np.array_equal(a.kept, b.kept)

def test_splitter_in_a_datablock_gives_the_factory_items(dls, sel):
    base = GrandparentSplitter(valid_name='valid')
    dls_b = sample_block(base).dataloaders(SAMPLE, bs=25, num_workers=0)
    dls_bu = sample_block(SubclassSplitter(base, sel)).dataloaders(SAMPLE, bs=25, num_workers=0)
    assert set(train_keys(dls_bu, root=SAMPLE)) == set(sel.kept_keys)  # the DataBlock's loaders have path '.'
    assert len(dls_bu.train_ds) == 180
    assert pd.Series(train_labels(dls_bu)).value_counts().to_dict() == {'vehicle': 60, 'cat': 60, 'frog': 60}
    # validation: exactly what the base splitter gives, and the factory's validation items
    assert item_keys(dls_bu.valid_ds.items) == item_keys(dls_b.valid_ds.items)
    assert set(item_keys(dls_bu.valid_ds.items)) == set(item_keys(dls.valid_ds.items))
    # a selection made for other data is refused, not silently ignored
    no_vehicles = [o for o in get_image_files(SAMPLE) if o.parent.name != 'vehicle']
    with pytest.raises(ValueError, match='180 items to leave out are not in the training split'):
        SubclassSplitter(base, sel)(no_vehicles)

def test_splitter_in_a_datablock_over_a_dataframe(f0):
    "DataFrame rows are keyed by the file their ColReader names (no get_file needed): the DataBlock over the same table keeps the factory's rows"
    df = sample_df()
    dls_df = factory_dls('from_df')
    s = subclass_undersample(learner_like(dls_df, f0), 50, classes=['vehicle'], seed=0, **QUICK)
    block = lambda spl: DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('fname', pref=SAMPLE), get_y=ColReader('label'),
                                  splitter=spl, item_tfms=Resize(32))
    dls_u = block(SubclassSplitter(ColSplitter('is_valid'), s)).dataloaders(df, bs=25, num_workers=0)
    assert list(dls_u.train_ds.items.index) == list(s.dataloaders(dls_df).train_ds.items.index)
    assert train_keys(dls_u, root=SAMPLE) == s.kept_keys == list(dls_u.train_ds.items.fname)  # the files, relative to SAMPLE
    assert list(dls_u.valid_ds.items.index) == list(dls_df.valid_ds.items.index)
    assert pd.Series(train_labels(dls_u)).value_counts().to_dict() == {'vehicle': 50, 'cat': 60, 'frog': 60}

@pytest.mark.parametrize('kind', ['from_folder', 'from_df', 'from_lists'])
def test_subset_path_of_every_factory(f0, kind):
    dls_k = factory_dls(kind)
    labels = train_labels(dls_k)
    assert len(labels) == len(dls_k.train_ds) and set(labels) == {'vehicle', 'cat', 'frog'}
    sel_k = subclass_undersample(learner_like(dls_k, f0), 40, classes=['vehicle'], seed=0, **QUICK)
    dls_u = sel_k.dataloaders(dls_k)
    keys = train_keys(dls_k)
    assert train_keys(dls_u) == [keys[i] for i in sel_k.keep] == sel_k.kept_keys
    assert train_labels(dls_u) == [labels[i] for i in sel_k.keep]
    n_other = sum(l != 'vehicle' for l in labels)
    assert len(dls_u.train_ds) == 40 + n_other
    cs = sel_k.classes['vehicle']
    assert cs.kept_per_cluster.max() - cs.kept_per_cluster.min() <= 1
    assert dls_u.valid is dls_k.valid
    if kind == 'from_df':  # keys are the files the rows name, relative to dls.path, and the rows come back whole
        assert keys == list(dls_k.train_ds.items.fname) and list(dls_u.train_ds.items.columns) == ['fname', 'label', 'is_valid']
        assert (dls_u.train_ds.items.label.to_numpy() == np.array(train_labels(dls_u))).all()
    xb, yb = dls_u.one_batch()
    assert xb.shape == (25, 3, 32, 32) and yb.shape == (25,)

def test_multi_label_dls_get_a_clear_error():
    dls_ml = sample_block(GrandparentSplitter(valid_name='valid'), blocks=(ImageBlock, MultiCategoryBlock),
                          get_y=lambda o: [parent_label(o)]).dataloaders(SAMPLE, bs=25, num_workers=0)
    with pytest.raises(ValueError, match='multi-label'): train_labels(dls_ml)
    learn = vision_learner(dls_ml, resnet18, pretrained=False)
    with pytest.raises(ValueError, match='single-label'): subclass_undersample(learn, 60, progress=False)

def test_a_class_not_in_the_vocab(f0):
    with pytest.raises(ValueError, match=r"\['truck'\] are not in the training vocab"):
        subclass_undersample(f0, 60, classes=['truck'], progress=False)
    with pytest.raises(ValueError, match=r"\['Vehicle'\]"): subclass_undersample(f0, {'Vehicle': 60}, progress=False)

def test_n_larger_than_a_class_keeps_it_whole(f0):
    with pytest.warns(UserWarning, match="'cat' has 60 training items, not more than n=80: it is kept whole"):
        s = subclass_undersample(f0, 80, classes=['vehicle', 'cat'], seed=0, **QUICK)
    assert list(s.classes) == ['vehicle']
    assert s.counts()['after'].to_dict() == {'vehicle': 80, 'cat': 60, 'frog': 60}
    with pytest.warns(UserWarning, match='kept whole'), pytest.raises(ValueError, match='nothing to undersample'):
        subclass_undersample(f0, {'frog': 60}, progress=False)

@pytest.mark.parametrize('kind,at', [('from_folder', 0), ('from_folder', 5), ('from_df', 5), ('from_df', 0)])
def test_an_unreadable_image_is_named(tmp_path, kind, at):
    rows = []
    for split, n in (('train', 12), ('valid', 4)):
        for c in ('vehicle', 'cat', 'frog'):
            (tmp_path/split/c).mkdir(parents=True)
            for o in sorted((SAMPLE/split/c).glob('*.jpg'))[:n]:
                shutil.copy(o, tmp_path/split/c)
                rows.append((f'{split}/{c}/{o.name}', c, split == 'valid'))
    kw = dict(item_tfms=Resize(32), bs=4, num_workers=0)
    if kind == 'from_folder': dls_t = ImageDataLoaders.from_folder(tmp_path, valid='valid', **kw)
    else: dls_t = ImageDataLoaders.from_df(pd.DataFrame(rows, columns=['fname', 'label', 'is_valid']), tmp_path, fn_col='fname',
                                           label_col='label', valid_col='is_valid', **kw)
    labels = train_labels(dls_t)
    vehicles = [tmp_path/rows[i][0] if kind == 'from_df' else dls_t.train_ds.items[i] for i, l in enumerate(labels) if l == 'vehicle']
    bad = vehicles[at]
    bad.write_bytes(b'not a jpeg')  # a file that went bad after the loaders were made
    learn = vision_learner(dls_t, resnet18, pretrained=False)
    with pytest.raises(OSError, match=bad.name) as e: subclass_undersample(learn, 6, classes=['vehicle'], progress=False)
    # only the bad one is named
    assert sum(o.name in str(e.value) for o in vehicles) == 1

def test_a_repeated_dataframe_index_is_harmless(f0):
    "Rows are keyed by their files, not their index labels: an index with repeated labels changes nothing"
    df = sample_df().reset_index(drop=True)
    df = pd.concat([df.iloc[:300].reset_index(drop=True), df.iloc[300:].reset_index(drop=True)])  # labels 0.. twice
    def block(splitter):
        return DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('fname', pref=SAMPLE), get_y=ColReader('label'),
                         splitter=splitter, item_tfms=Resize(32))
    assert df.index.duplicated().any()
    dls_d = block(ColSplitter('is_valid')).dataloaders(df, bs=25, num_workers=0)
    s = subclass_undersample(learner_like(dls_d, f0), 60, classes=['vehicle'], seed=0, **QUICK)
    dls_u = block(SubclassSplitter(ColSplitter('is_valid'), s)).dataloaders(df, bs=25, num_workers=0)
    assert len(dls_u.train_ds) == 180 and sorted(dls_u.train_ds.items.fname) == sorted(s.dataloaders(dls_d).train_ds.items.fname)

def test_selection_csv_round_trip(dls, sel, tmp_path):
    fn = sel.to_csv(tmp_path/'selection.csv')
    df = pd.read_csv(fn)
    assert list(df.columns) == ['item', 'class', 'cluster', 'kept', 'layer', 'x', 'y', 'meta'] and len(df) == 360
    assert df.kept.sum() == 180 and df.cluster.isna().sum() == 120
    back = SubclassSelection.from_csv(fn, dls)
    assert np.array_equal(back.keep, sel.keep)
    a, b = back.classes['vehicle'], sel.classes['vehicle']
    assert a.layer == b.layer and np.array_equal(a.idx, b.idx) and np.array_equal(a.labels, b.labels) and np.array_equal(a.kept, b.kept)
    assert train_keys(back.dataloaders(dls)) == train_keys(sel.dataloaders(dls)) == sel.kept_keys
    # onto DataLoaders of the same files made another way (keys are files relative to root): the same kept files
    dls_b = sample_block(GrandparentSplitter(valid_name='valid')).dataloaders(SAMPLE, bs=25, num_workers=0)
    back_b = SubclassSelection.from_csv(fn, dls_b, root=SAMPLE)
    assert set(train_keys(back_b.dataloaders(dls_b, root=SAMPLE), root=SAMPLE)) == set(sel.kept_keys)
    df.iloc[:-5].to_csv(tmp_path/'short.csv', index=False)
    with pytest.raises(ValueError, match='have 5 training items the selection does not know'):
        SubclassSelection.from_csv(tmp_path/'short.csv', dls)

@pytest.mark.parametrize('arch,body', [(densenet121, 1024), (vgg16_bn, 512)])
def test_densenet_and_vgg_heads(arch, body):
    # 64 px: the body keeps a 2 x 2 map, so its flattening is checked too
    dls64 = ImageDataLoaders.from_folder(SAMPLE, valid='valid', item_tfms=Resize(64), bs=8, num_workers=0)
    learn = vision_learner(dls64, arch, pretrained=False)
    layers = candidate_layers(learn.model)
    assert list(layers) == ['body', 'pool', 'linear']
    assert isinstance(layers['pool'], AdaptiveConcatPool2d) and layers['linear'].out_features == 512
    items = get_image_files(SAMPLE/'train'/'cat')[:10]
    feats = extract_features(learn, items, progress=False)
    assert {k: v.shape for k, v in feats.items()} == {'body': (10, body * 4), 'pool': (10, 2 * body), 'linear': (10, 512)}
    learn.model.eval()
    x = torch.cat([b[0] for b in learn.dls.test_dl(items, bs=5)])
    with torch.no_grad():
        out = learn.model[0](x)
        assert out.shape == (10, body, 2, 2)
        np.testing.assert_allclose(feats['body'], out.flatten(1).numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(feats['pool'], learn.model[1][0](out).flatten(1).numpy(), rtol=1e-4, atol=1e-4)
    assert (feats['linear'] < 0).any()  # taken before the ReLU
