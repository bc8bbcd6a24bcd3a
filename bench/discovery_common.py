"""The known-subclass benchmark's data and models: compositions of CIFAR-10 *test* images, f0 from scratch or from a stand-in."""
from copy import deepcopy
from pathlib import Path
import numpy as np, pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent/'shared'/'data'/'cifar10'
OUT = ROOT/'bench'/'out'/'discovery'
TEST_PER_CLASS = 100  # the last 100 CIFAR-10 test images of every class used are the benchmark's test split

#: Each composition: one majority class made of real CIFAR-10 classes in skewed proportions (its true subclasses), and
#: minority classes, each a look-alike of one subclass, kept whole. `standin` names the weights of bench/standin.py that
#: f0 is fine-tuned from: composition B's subclasses (truck, cat, deer) were never seen by its stand-in.
COMPOSITIONS = {
    'A': dict(title='8:4:2:1, subclasses seen by the stand-in', standin='all', n=150,
              subclasses={'automobile': 400, 'deer': 200, 'airplane': 100, 'cat': 50},
              minority={'truck': 150, 'horse': 150, 'ship': 150, 'dog': 150}),
    'B': dict(title='5:1:1, subclasses the stand-in never saw', standin='no-cat-deer-truck', n=150,
              subclasses={'truck': 400, 'cat': 80, 'deer': 80},
              minority={'automobile': 150, 'dog': 150, 'horse': 150}),
}
#: Held-out compositions, kept out of every choice made on A and B and used only to check one (the stand-in `all` saw
#: their subclasses): C 8:3:1.5:1 and D 8:2:1
HOLDOUT = {
    'C': dict(title='8:3:1.5:1, held out', standin='all', n=150, subclasses={'ship': 400, 'bird': 150, 'frog': 75, 'dog': 50},
              minority={'airplane': 150, 'cat': 150}),
    'D': dict(title='8:2:1, held out', standin='all', n=150, subclasses={'airplane': 400, 'horse': 100, 'cat': 50},
              minority={'ship': 150, 'deer': 150}),
}
MAJORITY = 'majority'

def composition(name:str) -> dict:
    "The composition `name`: one of the benchmark's or a held-out one"
    return COMPOSITIONS[name] if name in COMPOSITIONS else HOLDOUT[name]

def composition_items(name:str, data=DATA) -> pd.DataFrame:
    "Item table (path, label, is_valid, subclass) of composition `name`: the first images of each class for training, the last 100 for testing"
    comp, rows = composition(name), []
    for cls, m in {**comp['subclasses'], **comp['minority']}.items():
        files = sorted((Path(data)/'test'/cls).glob('*.jpg'))
        if len(files) < m + TEST_PER_CLASS: raise FileNotFoundError(f"{Path(data)/'test'/cls} holds {len(files)} images, {m + TEST_PER_CLASS} are needed")
        label = MAJORITY if cls in comp['subclasses'] else cls
        rows += [dict(path=f, label=label, is_valid=False, subclass=cls) for f in files[:m]]
        rows += [dict(path=f, label=label, is_valid=True, subclass=cls) for f in files[-TEST_PER_CLASS:]]
    return pd.DataFrame(rows)

#: f0's and f_u's training: the paper's `fine_tune(8, freeze_epochs=3)` at bs 25, lr 0.01 from the stand-in; from scratch
#: (no frozen phase to speak of) `fit_one_cycle` for the same 11 epochs. 32 px: the CIFAR images' own size.
RECIPES = {'standin': dict(epochs=8, freeze_epochs=3), 'scratch': dict(epochs=11, freeze_epochs=0)}
BS, LR, SIZE = 25, 1e-2, 32

def standin_file(comp:str, standin_dir=None) -> Path:
    "The stand-in weights file that composition `comp`'s f0 is fine-tuned from"
    fn = Path(standin_dir or ROOT/'bench'/'out'/'standin')/f"resnet18-cifar10-{composition(comp)['standin']}.pth"
    if not fn.exists(): raise FileNotFoundError(f"{fn} is missing: make it with `python bench/standin.py`")
    return fn

def item_dls(items:pd.DataFrame, seed:int=0, size:int=SIZE):
    "fastai DataLoaders of an item table (path, label, is_valid, subclass) with the paper's augmentations at `size` px (32: as stored)"
    from fastai.vision.all import DataBlock, ImageBlock, CategoryBlock, ColReader, ColSplitter, Resize, set_seed
    from fastai_subclass.train import paper_aug_transforms
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('path'), get_y=ColReader('label'),
                      splitter=ColSplitter('is_valid'), item_tfms=None if size == SIZE else Resize(size),
                      batch_tfms=paper_aug_transforms(flip_vert=False))
    set_seed(seed, reproducible=True)
    return block.dataloaders(items.reset_index(drop=True), bs=BS, num_workers=0)

def train_model(items:pd.DataFrame, setting:str, comp:str, seed:int, keep_start:bool=False, dls=None, cbs=None, weights=None, size:int=SIZE):
    """A ResNet18 trained on the training rows of `items` (or on `dls`, e.g. a per-epoch draw from them) with the recipe of
    `setting` ('standin' or 'scratch'); `weights`: another stand-in file than the composition's, read at `size` px"""
    from fastai.vision.all import set_seed, resnet18
    from fastai_subclass.train import subclass_learner
    if dls is None: dls = item_dls(items, seed, size)
    set_seed(seed, reproducible=True)
    learn = (subclass_learner(dls, resnet18, weights_file=weights or standin_file(comp), lr=LR, cbs=cbs) if setting == 'standin' else
             subclass_learner(dls, resnet18, pretrained=False, lr=LR, cbs=cbs))
    if keep_start: learn.start_state = deepcopy(learn.model.state_dict())
    r = RECIPES[setting]
    with learn.no_bar(), learn.no_logging():
        if r['freeze_epochs']: learn.fine_tune(r['epochs'], base_lr=LR, freeze_epochs=r['freeze_epochs'])
        else: learn.fit_one_cycle(r['epochs'], LR)
    return learn

def test_scores(learn, items:pd.DataFrame) -> dict:
    "Mean one-vs-rest ROC AUC, accuracy, and the recall of every true subclass / class on the test rows"
    from sklearn.metrics import roc_auc_score
    with learn.no_bar(): probs, y = learn.get_preds(ds_idx=1)
    probs, y = probs.numpy(), y.numpy()
    sub = learn.dls.valid_ds.items.subclass.to_numpy()
    correct = probs.argmax(1) == y
    res = dict(mean_roc_auc=float(roc_auc_score(y, probs, multi_class='ovr', average='macro')), accuracy=float(correct.mean()))
    res.update({f'recall_{s}': float(correct[sub == s].mean()) for s in np.unique(sub)})
    return res

def worst_subclass_recall(scores:dict, comp:str) -> float:
    "The lowest test recall among the majority class's true subclasses"
    return min(scores[f'recall_{s}'] for s in composition(comp)['subclasses'])
