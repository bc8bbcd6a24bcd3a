"SubclassSelection as plain data (issue item 1): keys by file, classes checked, everything restored from the CSV."
import shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, resnet18, get_image_files
import fastai_subclass
from fastai_subclass.select import SubclassSelection, subclass_undersample, train_keys, train_labels

SAMPLE = Path(fastai_subclass.__file__).parent/'data'/'sample'
QUICK = dict(layer='pool', ks=range(2, 4), progress=False)

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1); yield; torch.set_num_threads(n)

def from_df(df, path=SAMPLE, **kw):
    return ImageDataLoaders.from_df(df, path, fn_col='fname', label_col='label', item_tfms=Resize(32), bs=25, num_workers=0, **kw)

@pytest.fixture(scope='module')
def table():
    files = get_image_files(SAMPLE/'train')
    return pd.DataFrame({'fname': [o.relative_to(SAMPLE).as_posix() for o in files], 'label': [o.parent.name for o in files]})

@pytest.fixture(scope='module')
def saved(table, tmp_path_factory):
    "The issue's case: a selection made on `from_df(df, valid_pct=0.2, seed=42)` loaders, saved to CSV"
    dls = from_df(table, valid_pct=0.2, seed=42)
    torch.manual_seed(0)
    sel = subclass_undersample(vision_learner(dls, resnet18, pretrained=False), 50, seed=42, **QUICK)
    fn = sel.to_csv(tmp_path_factory.mktemp('sel')/'selection.csv')
    return dls, sel, fn

def kept(sel, dls):
    "{file: class} of the training items of `sel.dataloaders(dls)`"
    d = sel.dataloaders(dls)
    return dict(zip(train_keys(d), train_labels(d)))

def test_reloaded_on_reordered_reindexed_rows_keeps_the_same_items(saved, table):
    dls, sel, fn = saved
    valid = set(dls.valid_ds.items.fname)
    # the same rows in another order, re-indexed, with the same split: before, index labels picked other rows
    df2 = table.sample(frac=1, random_state=1).reset_index(drop=True)
    df2['is_valid'] = df2.fname.isin(valid)
    dls2 = from_df(df2, valid_col='is_valid')
    back = SubclassSelection.from_csv(fn, dls2)
    want, got = kept(sel, dls), kept(back, dls2)
    assert got == want
    assert pd.Series(got).value_counts().to_dict() == pd.Series(want).value_counts().to_dict()
    assert back.summary().loc['vehicle', 'kept'] == 50 == pd.Series(got).value_counts()['vehicle']

def test_other_training_split_or_other_labels_are_clear_errors(saved, table):
    _, _, fn = saved
    shuffled = table.sample(frac=1, random_state=1).reset_index(drop=True)
    with pytest.raises(ValueError, match='not training items'):
        SubclassSelection.from_csv(fn, from_df(shuffled, valid_pct=0.2, seed=42))  # another random split
    swapped = table.assign(label=table.label.replace({'cat': 'frog', 'frog': 'cat'}))
    with pytest.raises(ValueError, match='another class'):
        SubclassSelection.from_csv(fn, from_df(swapped, valid_pct=0.2, seed=42))

def test_settings_clusters_and_map_are_restored(saved):
    _, sel, fn = saved
    back = SubclassSelection.from_csv(fn)
    assert (back.strategy, back.seed, back.pct, back.path) == (sel.strategy, sel.seed, sel.pct, str(SAMPLE))
    cs, cb = sel.classes['vehicle'], back.classes['vehicle']
    assert cb.layer == cs.layer and cb.k == cs.k and (cb.labels == cs.labels).all()
    assert cb.subclasses.scores == pytest.approx(cs.subclasses.scores)
    np.testing.assert_allclose(cb.subclasses.centers, cs.subclasses.centers, rtol=1e-6)
    np.testing.assert_allclose(cb.subclasses.embedding, cs.subclasses.embedding, rtol=1e-6)
    for strategy in ('farthest', 'random'):
        assert (back.reselect(strategy).keep == sel.reselect(strategy).keep).all()
    assert back.kept_keys == sel.kept_keys

def test_moved_data_folder_reloads(saved, table, tmp_path):
    dls, sel, fn = saved
    moved = tmp_path/'moved'
    shutil.copytree(SAMPLE/'train', moved/'train')
    valid = set(dls.valid_ds.items.fname)
    dls_m = from_df(table.assign(is_valid=table.fname.isin(valid)), path=moved, valid_col='is_valid')
    assert kept(SubclassSelection.from_csv(fn, dls_m), dls_m) == kept(sel, dls)
    # without dls: root= says where the data is now, for the thumbnails
    assert SubclassSelection.from_csv(fn, root=moved).path == str(moved)

def test_not_a_selection_file(tmp_path):
    pd.DataFrame({'a': [1]}).to_csv(tmp_path/'x.csv', index=False)
    with pytest.raises(ValueError, match='not a saved selection'): SubclassSelection.from_csv(tmp_path/'x.csv')

def test_a_selection_saved_by_the_old_format_loads(saved, tmp_path):
    "Files written before: absolute paths as items, no x, y or meta columns"
    dls, sel, fn = saved
    df = pd.read_csv(fn)[['item', 'class', 'cluster', 'kept', 'layer']]
    df['item'] = [str(SAMPLE/k) for k in df['item']]
    df.to_csv(tmp_path/'old.csv', index=False)
    back = SubclassSelection.from_csv(tmp_path/'old.csv', dls)
    assert back.kept_keys == sel.kept_keys and kept(back, dls) == kept(sel, dls)
    assert back.classes['vehicle'].subclasses is None  # no map saved then
