"write_report renders from the selection object and swaps a whole folder in: a reused folder never mixes two runs."
from pathlib import Path
import json, os, numpy as np, pandas as pd, pytest, torch
from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, resnet18, get_image_files
import fastai_subclass
import fastai_subclass.report as report
from fastai_subclass.report import write_report
from fastai_subclass.select import SubclassSelection, subclass_undersample

SAMPLE = Path(fastai_subclass.__file__).parent/'data'/'sample'

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1); yield; torch.set_num_threads(n)

@pytest.fixture(scope='module')
def sel():
    dls = ImageDataLoaders.from_folder(SAMPLE, valid='valid', bs=25, item_tfms=Resize(32), num_workers=0)
    torch.manual_seed(0)
    return subclass_undersample(vision_learner(dls, resnet18, pretrained=False), 60, layer='pool', ks=range(2, 4), progress=False)

def report_files(d): return sorted(o.name for o in Path(d).iterdir())

def test_refuses_a_used_folder_and_replaces_it_whole(sel, tmp_path):
    out = tmp_path/'report'
    write_report(sel, out, n_per_cluster=2)
    first = report_files(out)
    (out/'grid_oldclass.png').write_bytes(b'from an earlier run')
    with pytest.raises(FileExistsError, match='overwrite=True'): write_report(sel, out, n_per_cluster=2)
    assert (out/'grid_oldclass.png').exists()  # refused before touching anything
    write_report(sel.reselect('farthest'), out, n_per_cluster=2, overwrite=True)
    assert report_files(out) == first  # the earlier run's file is gone
    assert json.loads((out/'summary.json').read_text())['strategy'] == 'farthest'
    assert report_files(tmp_path) == ['report']  # no temporary or old folder left

def test_an_interrupted_report_leaves_the_previous_one(sel, tmp_path, monkeypatch):
    out = tmp_path/'report'
    write_report(sel, out, n_per_cluster=2)
    before = {f: (out/f).read_bytes() for f in report_files(out)}
    def boom(*args, **kwargs): raise KeyboardInterrupt
    monkeypatch.setattr(report, 'report_html', boom)
    with pytest.raises(KeyboardInterrupt): write_report(sel.reselect('random'), out, n_per_cluster=2, overwrite=True)
    assert {f: (out/f).read_bytes() for f in report_files(out)} == before
    assert report_files(tmp_path) == ['report']

def test_a_file_is_not_a_report_folder(sel, tmp_path):
    (tmp_path/'x').write_text('a file')
    with pytest.raises(NotADirectoryError, match='is a file'): write_report(sel, tmp_path/'x', overwrite=True)

def test_renders_a_selection_read_back_from_csv_on_dataframe_loaders(sel, tmp_path):
    "No JSON round trip: the page of a reloaded selection has the same tables; DataFrame rows' images come from `dls`"
    fn = sel.to_csv(tmp_path/'selection.csv')
    files = get_image_files(SAMPLE)
    df = pd.DataFrame({'fname': [o.relative_to(SAMPLE).as_posix() for o in files], 'label': [o.parent.name for o in files],
                       'is_valid': [o.parent.parent.name == 'valid' for o in files]})
    dls = ImageDataLoaders.from_df(df.sample(frac=1, random_state=0), SAMPLE, fn_col='fname', label_col='label',
                                   valid_col='is_valid', item_tfms=Resize(32), bs=25, num_workers=0)
    back = SubclassSelection.from_csv(fn, dls)
    a = write_report(sel, tmp_path/'a', n_per_cluster=2).read_text()
    b = write_report(back, tmp_path/'b', n_per_cluster=2, dls=dls).read_text()
    table = lambda page, id: page[page.index(f'<table id="{id}">'):].split('</table>')[0]
    for id in ('counts', 'classes', 'clusters-vehicle', 'silhouettes-vehicle'): assert table(a, id) == table(b, id)
    kept = pd.read_csv(tmp_path/'b'/'kept_items.csv')
    assert kept.label.value_counts().to_dict() == {'vehicle': 60, 'cat': 60, 'frog': 60} and 'fname' in kept

def test_kept_entries_survive_and_a_failed_swap_puts_the_old_folder_back(sel, tmp_path, monkeypatch):
    "`keep` (the CLI's feature cache) moves into the new folder; if the last move fails, the old folder is back as it was"
    out = tmp_path/'report'
    write_report(sel, out, n_per_cluster=2)
    (out/'feature_cache').mkdir(); (out/'feature_cache'/'f.npz').write_bytes(b'cached')
    before = {f: (out/f).read_bytes() for f in report_files(out) if f != 'feature_cache'}
    real = os.replace
    def replace(src, dst):
        if Path(dst) == out and '.tmp-' in Path(src).name: raise OSError('disk full')
        return real(src, dst)
    monkeypatch.setattr(os, 'replace', replace)
    with pytest.raises(OSError, match='disk full'):
        write_report(sel.reselect('random'), out, n_per_cluster=2, overwrite=True, keep=('feature_cache',))
    monkeypatch.undo()
    assert {f: (out/f).read_bytes() for f in report_files(out) if f != 'feature_cache'} == before
    assert (out/'feature_cache'/'f.npz').read_bytes() == b'cached' and report_files(tmp_path) == ['report']
    write_report(sel.reselect('random'), out, n_per_cluster=2, overwrite=True, keep=('feature_cache',))
    assert (out/'feature_cache'/'f.npz').read_bytes() == b'cached' and report_files(tmp_path) == ['report']
    assert json.loads((out/'summary.json').read_text())['strategy'] == 'random'
