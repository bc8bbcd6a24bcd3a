"Item tables of every layout through one fastai training path, to a Kaggle submission file (pinned and newest fastai)."
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from fastai.data.block import DataBlock, CategoryBlock
from fastai.data.transforms import ColReader, ColSplitter, TrainTestSplitter, get_image_files
from fastai.vision.data import ImageBlock
from fastai.vision.augment import Resize
from fastai.learner import Learner
import fastai.callback.progress  # noqa: F401 (adds Learner.no_bar)
import fastai_subclass
from fastai_subclass.datasets import (FISH_CLASSES, PLANT_CLASSES, folder_items, fisheries_items, csv_items,
                                      plant_pathology_items, plant_pathology_test_files, plant_pathology_submission,
                                      fisheries_submission)
from fastai_subclass.metrics import MeanRocAuc, MultiLogLoss, PerClassRecall, weighted_cross_entropy

def make_jpgs(root, rel_paths, labels=None):
    "A tiny JPEG at each of `rel_paths`, coloured by its label (default: its folder), so a model can learn the class"
    for rel, label in zip(rel_paths, labels or [Path(r).parent.name for r in rel_paths]):
        (root/rel).parent.mkdir(parents=True, exist_ok=True)
        shade = sum(map(ord, label)) * 37 % 256
        Image.new('RGB', (12, 12), (shade, 255 - shade, 90)).save(root/rel)

@pytest.fixture
def plant(tmp_path):
    rows = [(f'Train_{i}', PLANT_CLASSES[i % 4]) for i in range(16)]
    df = pd.DataFrame({'image_id': [r[0] for r in rows], **{c: [int(r[1] == c) for r in rows] for c in PLANT_CLASSES}})
    df.to_csv(tmp_path/'train.csv', index=False)
    pd.DataFrame({'image_id': ['Test_0', 'Test_1', 'Test_2']}).to_csv(tmp_path/'test.csv', index=False)
    make_jpgs(tmp_path, [f'images/{i}.jpg' for i, _ in rows], [label for _, label in rows])
    make_jpgs(tmp_path, ['images/Test_0.jpg', 'images/Test_1.jpg', 'images/Test_2.jpg'])
    return tmp_path

@pytest.fixture
def fisheries(tmp_path):
    make_jpgs(tmp_path, [f'train/{c}/img_{i:05d}.jpg' for i, c in enumerate(FISH_CLASSES * 2)])
    make_jpgs(tmp_path, [f'test_stg1/img_{i:05d}.jpg' for i in range(100, 104)])
    return tmp_path

def dataloaders(items, bs=4):
    "The one DataBlock for every item table: the table's own split, or a stratified one"
    splitter = ColSplitter('is_valid') if 'is_valid' in items else TrainTestSplitter(0.5, random_state=0, stratify=items.label)
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('path'), get_y=ColReader('label'),
                     splitter=splitter, item_tfms=Resize(12)).dataloaders(items, bs=bs, num_workers=0)

def tiny_learner(dls, **kwargs):
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, len(dls.vocab)))
    return Learner(dls, model, lr=0.05, **kwargs)

def check_table(df, with_valid):
    assert list(df.columns) == (['path', 'label', 'is_valid'] if with_valid else ['path', 'label'])
    assert all(isinstance(p, Path) and p.is_absolute() and p.is_file() for p in df.path)
    assert all(isinstance(l, str) for l in df.label)
    if with_valid: assert df.is_valid.dtype == bool

def test_plant_pathology_end_to_end(plant):
    items = plant_pathology_items(plant)
    check_table(items, with_valid=False)
    assert items.label.value_counts().to_dict() == {c: 4 for c in PLANT_CLASSES}
    dls = dataloaders(items)
    assert list(dls.vocab) == list(PLANT_CLASSES)
    counts = items.label[dls.splits[0]].value_counts()
    learn = tiny_learner(dls, loss_func=weighted_cross_entropy(counts, dls.vocab),
                         metrics=[MeanRocAuc(), *PerClassRecall(dls.vocab)])
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert learn.recorder.metric_names[3:-1] == ['mean_roc_auc'] + [f'recall_{c}' for c in PLANT_CLASSES]
    files = plant_pathology_test_files(plant)
    probs, _ = learn.get_preds(dl=dls.test_dl(files))
    sub = plant_pathology_submission(files, probs, dls.vocab, expected=plant/'test.csv', fname=plant/'submission.csv')
    back = pd.read_csv(plant/'submission.csv')
    assert list(back.columns) == ['image_id', *PLANT_CLASSES]
    assert back.image_id.tolist() == ['Test_0', 'Test_1', 'Test_2']
    np.testing.assert_allclose(back.iloc[:, 1:].to_numpy(), probs.numpy(), rtol=1e-6)
    pd.testing.assert_frame_equal(back, sub)

def test_fisheries_end_to_end(fisheries):
    items = fisheries_items(fisheries)
    check_table(items, with_valid=False)
    dls = dataloaders(items)
    assert list(dls.vocab) == list(FISH_CLASSES)
    learn = tiny_learner(dls, metrics=[MultiLogLoss()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    files = get_image_files(fisheries/'test_stg1')
    probs, _ = learn.get_preds(dl=dls.test_dl(files))
    sub = fisheries_submission(files, probs, dls.vocab, fname=fisheries/'submission.csv')
    back = pd.read_csv(fisheries/'submission.csv')
    assert list(back.columns) == ['image', *FISH_CLASSES]
    assert sorted(back.image) == [f'img_{i:05d}.jpg' for i in range(100, 104)]
    np.testing.assert_allclose(back.iloc[:, 1:].to_numpy().sum(1), 1, rtol=1e-5)
    pd.testing.assert_frame_equal(back, sub)

def test_shipped_sample_trains_with_its_own_split():
    items = folder_items(Path(fastai_subclass.__file__).parent/'data'/'sample')
    check_table(items, with_valid=True)
    assert items.groupby(['is_valid', 'label']).size().to_dict() == {
        (False, 'cat'): 60, (False, 'frog'): 60, (False, 'vehicle'): 240, (True, 'cat'): 30, (True, 'frog'): 30, (True, 'vehicle'): 60}
    dls = dataloaders(items, bs=64)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (360, 120)

def test_csv_and_folder_tables_have_the_same_shape(tmp_path):
    rel = [f'{c}/{c}_{i}.jpg' for c in ('owl', 'hawk') for i in range(4)]
    make_jpgs(tmp_path/'tree', rel)
    pd.DataFrame({'file': [f'tree/{r}' for r in rel], 'bird': [r.split('/')[0] for r in rel],
                  'valid': [i % 4 == 3 for i in range(8)]}).to_csv(tmp_path/'birds.csv', index=False)
    from_csv = csv_items(tmp_path/'birds.csv', 'file', 'bird', valid_col='valid')
    from_tree = folder_items(tmp_path/'tree')
    check_table(from_csv, with_valid=True); check_table(from_tree, with_valid=False)
    key = lambda df: sorted(zip(map(str, df.path), df.label))
    assert key(from_csv) == key(from_tree)
    dls = dataloaders(from_csv)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (6, 2)
