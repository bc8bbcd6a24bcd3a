"""The two commands: `subclass_demo` end to end (every report file, the numbers of its page), each error path of
`subclass_undersample` (exit code and a message naming the problem), and the feature cache reused by a rerun."""
import configparser, json, shutil, subprocess, sys
from html.parser import HTMLParser
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
import fastai_subclass
from fastai_subclass.cli import (subclass_undersample_cli, subclass_demo, EXIT_OK, EXIT_ARGS, EXIT_DATA, EXIT_WEIGHTS,
                             EXIT_INTERRUPTED, undersample_parser, _run_command)

SAMPLE = Path(fastai_subclass.__file__).parent/'data'/'sample'
ROOT = Path(__file__).parent.parent
REPORT_FILES = ('index.html', 'class_counts.png', 'selection.csv', 'kept_items.csv', 'summary.csv', 'counts.csv', 'summary.json')

class _Tables(HTMLParser):
    "The text of the cells of every table of a page that has an id: {id: [[cell, ...], ...]}"
    def __init__(self):
        super().__init__(); self.tables, self.table, self.row, self.cell = {}, None, None, None
    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'table' and 'id' in attrs: self.table = self.tables.setdefault(attrs['id'], [])
        elif tag == 'tr' and self.table is not None: self.row = []
        elif tag in ('td', 'th') and self.row is not None: self.cell = ''
    def handle_endtag(self, tag):
        if tag == 'table': self.table = None
        elif tag == 'tr' and self.row is not None: self.table.append(self.row); self.row = None
        elif tag in ('td', 'th') and self.cell is not None: self.row.append(self.cell.strip()); self.cell = None
    def handle_data(self, data):
        if self.cell is not None: self.cell += data

def html_tables(page:str) -> dict:
    p = _Tables(); p.feed(page); return p.tables

def _run_python(code, *args, timeout=900):
    "Run `code` in a fresh Python (as a console script would), with `args` as its command line"
    return subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)

@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    "The demo command, run once in a fresh process: (completed process, report folder)"
    out = tmp_path_factory.mktemp('demo')/'report'
    # one torch thread: the CI machine may be shared, where two OpenMP threads per process crawl
    res = _run_python("import sys; from fastai_subclass.cli import subclass_demo; sys.exit(subclass_demo())", '--out', out, '--threads', 1)
    return res, out

def test_demo_writes_every_report_file(demo):
    res, out = demo
    assert res.returncode == EXIT_OK, res.stderr[-3000:]
    assert f"open {out.absolute()/'index.html'}" in res.stdout
    for f in REPORT_FILES + ('metrics.csv', 'map_vehicle.png', 'grid_vehicle.png', 'dropped_vehicle.png', 'silhouettes_vehicle.png'):
        assert (out/f).is_file() and (out/f).stat().st_size > 0, f
    # one file for the vehicles' training items, one for their validation items (placed in the subclasses)
    assert len(list((out/'feature_cache').glob('features-*.npz'))) == 2
    page = (out/'index.html').read_text()
    pngs = sorted(p.name for p in out.glob('*.png'))
    assert pngs == ['class_counts.png', 'dropped_vehicle.png', 'grid_vehicle.png', 'map_vehicle.png', 'outliers_vehicle.png',
                    'scores_vehicle.png', 'silhouettes_vehicle.png']
    for png in pngs: assert f'src="{png}"' in page
    for f in ('selection.csv', 'kept_items.csv', 'summary.csv', 'counts.csv', 'summary.json', 'metrics.csv', 'subclass_scores.csv',
              'outliers.csv'): assert f'href="{f}"' in page
    # f0 and f_u scored per subclass, and the worst subclass of each said on the command line
    scores = pd.read_csv(out/'subclass_scores.csv')
    assert set(scores.model) == {'f0', 'f_u'} and scores.groupby('model')['items'].sum().to_dict() == {'f0': 60, 'f_u': 60}
    assert 'f0: worst subclass recall: vehicle subclass' in res.stdout and 'f_u: worst subclass recall: vehicle subclass' in res.stdout
    # the known groups (the sample's file names) beside them: each model's recall of every true subclass
    truth = html_tables(page)['truth-vehicle']
    assert truth[0][-2:] == ['recall f0', 'recall f_u'] and sorted(r[0] for r in truth[1:]) == ['airplane', 'automobile', 'ship', 'truck']

def test_demo_numbers_in_the_page_match_the_selection(demo):
    res, out = demo
    assert res.returncode == EXIT_OK, res.stderr[-3000:]
    t, summ = html_tables((out/'index.html').read_text()), json.loads((out/'summary.json').read_text())
    sel = pd.read_csv(out/'selection.csv')
    # class counts: before from every training item, after from the kept ones
    counts = {r[0]: (int(r[1]), int(r[2])) for r in t['counts'][1:]}
    before, after = sel['class'].value_counts(), sel[sel.kept]['class'].value_counts()
    assert counts == {**{c: (before[c], after[c]) for c in before.index}, 'all': (360, 180)}
    assert counts['vehicle'] == (240, 60)
    # the class's layer, k and clusters: as in the selection CSV
    veh = sel[sel['class'] == 'vehicle']
    assert t['classes'][0] == ['class', 'layer', 'k', 'silhouette', 'stability', 'weak', 'items', 'kept']
    (_, layer, k, sil, stability, weak, items, kept), = t['classes'][1:]
    assert (layer, int(k), int(items), int(kept)) == (veh.layer.iloc[0], veh.cluster.nunique(), 240, 60)
    assert float(sil) == pytest.approx(summ['classes']['vehicle']['silhouette'], abs=5e-4)
    strength = json.loads(sel['meta'].iloc[0])['classes']['vehicle']['strength']  # the cluster check, saved with the selection
    assert float(stability) == pytest.approx(strength['stability'], abs=5e-4) and weak == ('WEAK' if strength['weak'] else 'no')
    clusters = t['clusters-vehicle']
    assert clusters[0] == ['subclass', 'items', 'kept']
    sizes, kept_per = veh.cluster.value_counts().sort_index(), veh[veh.kept].cluster.value_counts().sort_index()
    assert [[int(c) for c in r] for r in clusters[1:-1]] == [[c, sizes[c], kept_per.get(c, 0)] for c in sizes.index]
    # every (layer, k) silhouette, and the chosen one the best of the chosen layer
    sils = t['silhouettes-vehicle']
    for row in sils[1:]:
        for k_, v in zip(sils[0][1:], row[1:]):
            assert float(v) == pytest.approx(summ['classes']['vehicle']['scores'][row[0]][k_], abs=5e-4)
    # f0 and f_u scores, as in metrics.csv
    m = pd.read_csv(out/'metrics.csv', index_col='metric')
    rows = {r[0].split(' ')[0]: r[1:] for r in t['metrics'][1:]}
    assert t['metrics'][0] == ['metric', 'f0', 'f_u']
    for name in ('accuracy', 'balanced_accuracy', 'mean_roc_auc', 'log_loss', 'recall_vehicle', 'recall_cat', 'recall_frog'):
        assert [float(v) for v in rows[name]] == pytest.approx(m.loc[name, ['f0', 'f_u']].tolist(), abs=5e-4)
    # the known subclasses of the sample (from the file names) add up to the class
    truth = t['truth-vehicle']
    assert sorted(r[0] for r in truth[1:]) == ['airplane', 'automobile', 'ship', 'truck']
    head = truth[0]  # ..., items, kept, then each model's recall of the group
    assert sum(int(r[head.index('items')]) for r in truth[1:]) == 240 and sum(int(r[head.index('kept')]) for r in truth[1:]) == 60
    # f_u trained for as many optimizer steps as f0, and the page says so
    assert 'as many optimizer steps as f0' in (out/'index.html').read_text()

def test_demo_kept_items_csv_is_a_training_set(demo):
    res, out = demo
    kept = pd.read_csv(out/'kept_items.csv')
    assert list(kept.columns) == ['path', 'label'] and len(kept) == 180
    assert kept.label.value_counts().to_dict() == {'vehicle': 60, 'cat': 60, 'frog': 60}
    assert all(Path(p).is_file() for p in kept.path)

# --- error paths of subclass_undersample: checked before any training ---

def _cli(capsys, *args):
    "Exit code and stderr of `subclass_undersample args`"
    try: code = subclass_undersample_cli([str(a) for a in args])
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err

def _one_error_line(err, prog='subclass_undersample'):
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines and lines[-1].startswith(f'{prog}: error: '), err
    assert 'Traceback' not in err, err
    return lines[-1]

@pytest.fixture
def small_data(tmp_path):
    "A folder per class: a 30 images (vehicles), b 10 images (cats)"
    for cls, src, n in (('a', 'vehicle', 30), ('b', 'cat', 10)):
        (tmp_path/cls).mkdir()
        for f in sorted((SAMPLE/'train'/src).glob('*.jpg'))[:n]: shutil.copy(f, tmp_path/cls/f.name)
    return tmp_path

ARGS = ('--arch', 'resnet18', '--no-pretrained', '--size', 32, '--epochs', 1, '--freeze-epochs', 0)

def test_missing_folder(capsys, tmp_path):
    code, err = _cli(capsys, tmp_path/'nope', '--n', 10, *ARGS)
    assert code == EXIT_DATA
    assert f"no folder {tmp_path/'nope'}" in _one_error_line(err)

def test_empty_class_folder(capsys, small_data):
    (small_data/'c').mkdir()
    code, err = _cli(capsys, small_data, '--n', 10, *ARGS)
    assert code == EXIT_DATA
    line = _one_error_line(err)
    assert "['c']" in line and 'hold no image files' in line

def test_unreadable_image(capsys, small_data):
    (small_data/'a'/'broken.jpg').write_bytes(b'this is not a JPEG')
    code, err = _cli(capsys, small_data, '--n', 10, *ARGS)
    assert code == EXIT_DATA
    line = _one_error_line(err)
    assert 'cannot be read' in line and str(small_data/'a'/'broken.jpg') in line

def test_n_too_large(capsys, small_data):
    code, err = _cli(capsys, small_data, '--n', 30, *ARGS)
    assert code == EXIT_DATA
    line = _one_error_line(err)
    assert 'n=30' in line and "'a': 24" in line and 'nothing to undersample' in line  # 30 images of a, 6 of them held out for validation

def test_n_names_an_unknown_class(capsys, small_data):
    code, err = _cli(capsys, small_data, '--n', 'dog=5', *ARGS)
    assert code == EXIT_DATA
    assert "['dog'] are not in the training vocab" in _one_error_line(err)

def test_missing_csv(capsys, tmp_path):
    code, err = _cli(capsys, '--csv', tmp_path/'labels.csv', '--n', 10, *ARGS)
    assert code == EXIT_DATA
    assert 'no CSV file' in _one_error_line(err)

@pytest.mark.parametrize('args, words', [
    (('--n', 10, '--arch', 'resnet5O'), 'unknown architecture'),
    (('--n', 'ten'), 'positive whole number'),
    (('--n', 0), 'positive whole number'),
    ((), 'the following arguments are required: --n'),
    (('--n', 'a=5', '--classes', 'a'), '--classes is for a single --n'),
    (('--n', 10, '--no-cache', '--refresh'), '--no-cache'),
    (('--n', 10, '--before-training', '--no-pretrained'), '--before-training clusters the pretrained weights'),
    (('--n', 10, '--fu-training', 'dro'), '--fu-training is about f_u'),
    (('--n', 10, '--csv', 'x.csv', '--layout', 'fisheries'), '--csv and --layout'),
    (('--n', 10, '--clusterer', 'dbscan'), "invalid choice: 'dbscan'"),
])
def test_bad_arguments(capsys, small_data, args, words):
    code, err = _cli(capsys, small_data, *args)
    assert code == EXIT_ARGS
    assert words in _one_error_line(err)

def test_clusterer_reaches_the_selection(capsys, small_data, monkeypatch):
    "--clusterer goes on to the pipeline (and from there to `subclass_undersample`); k-means, the paper's, without it"
    import fastai_subclass.cli as cli
    seen = []
    monkeypatch.setattr(cli, '_run_command', lambda prog, a, items_fn, recipe, **kwargs: seen.append(kwargs) or EXIT_OK)
    assert _cli(capsys, small_data, '--n', 10, '--clusterer', 'spectral')[0] == EXIT_OK
    assert _cli(capsys, small_data, '--n', 10)[0] == EXIT_OK
    assert [k['clusterer'] for k in seen] == ['spectral', 'kmeans']

def test_missing_weights_file(capsys, small_data, tmp_path):
    code, err = _cli(capsys, small_data, '--n', 10, '--arch', 'resnet18', '--weights-file', tmp_path/'resnet18.pth')
    assert code == EXIT_WEIGHTS
    assert f"--weights-file {tmp_path/'resnet18.pth'} does not exist" in _one_error_line(err)

def test_demo_bad_arguments(capsys):
    try: code = subclass_demo(['--epochs', '0'])
    except SystemExit as e: code = e.code
    assert code == EXIT_ARGS
    assert '--epochs must be at least 1' in _one_error_line(capsys.readouterr().err, 'subclass_demo')

# --- the feature cache: a rerun with the same seed extracts nothing ---

@pytest.fixture
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def test_rerun_reuses_the_cache_and_gives_the_same_selection(capsys, tmp_path, one_thread):
    args = (SAMPLE, '--n', 60, *ARGS, '--layer', 'pool', '--out', tmp_path/'out', '--quiet', '--num-workers', 0)
    code, err = _cli(capsys, *args)
    assert code == EXIT_OK, err
    cache = tmp_path/'out'/'feature_cache'
    files = {f.name: f.stat().st_mtime_ns for f in cache.glob('features-*.npz')}
    sel1 = (tmp_path/'out'/'selection.csv').read_text()
    assert len(files) == 2  # the vehicles' training and validation items
    settings = {r[0]: r[1] for r in html_tables((tmp_path/'out'/'index.html').read_text())['settings'][1:]}
    assert settings['feature_cache'] == 'extracted and cached'
    (tmp_path/'out'/'map_oldclass.png').write_bytes(b'a file of an earlier run')
    code, err = _cli(capsys, *args)  # a reused report folder is refused without --overwrite
    assert code == EXIT_ARGS and 'pass --overwrite' in _one_error_line(err)
    try: code = subclass_undersample_cli([str(a) for a in args] + ['--overwrite'])
    except SystemExit as e: code = e.code
    captured = capsys.readouterr()
    assert not (tmp_path/'out'/'map_oldclass.png').exists() and sorted(o.name for o in tmp_path.iterdir()) == ['out']  # no temporary or old folder left
    assert code == EXIT_OK, captured.err
    assert 'features: read from the cache' in captured.out
    assert {f.name: f.stat().st_mtime_ns for f in cache.glob('features-*.npz')} == files  # not written again
    assert (tmp_path/'out'/'selection.csv').read_text() == sel1  # the same seed, the same selection

def test_console_scripts_are_declared():
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    scripts = dict(s.split('=') for s in cfg['DEFAULT']['console_scripts'].split())
    assert scripts == {'subclass_undersample': 'fastai_subclass.cli:subclass_undersample_cli',
                       'subclass_demo': 'fastai_subclass.cli:subclass_demo'}

# --- everything is checked before any training ---

@pytest.fixture
def no_training(monkeypatch):
    "Any training fails the test"
    import fastai.learner
    def _fit(*a, **k): raise AssertionError('the command trained a model before it found the problem')
    monkeypatch.setattr(fastai.learner.Learner, 'fit', _fit)

@pytest.mark.parametrize('args, words', [
    (('--pct', 0), '--pct is a percentile'),
    (('--pct', 150), '--pct is a percentile'),
    (('--layer', 'nope'), "layer='nope' is neither"),
    (('--out', 'FILE'), 'is a file'),
    (('--out', 'FILE/report'), 'cannot write in'),
])
def test_argument_errors_before_training(capsys, small_data, tmp_path, no_training, args, words):
    (tmp_path/'FILE').write_text('not a folder')
    args = tuple(tmp_path/'FILE' if a == 'FILE' else tmp_path/'FILE'/'report' if a == 'FILE/report' else a for a in args)
    code, err = _cli(capsys, small_data, '--n', 10, *ARGS, '--out', tmp_path/'o', *args)
    assert code == EXIT_ARGS, err
    assert words in _one_error_line(err)

def test_a_class_too_small_to_cluster(capsys, small_data, no_training):
    (small_data/'c').mkdir()
    for f in sorted((SAMPLE/'train'/'frog').glob('*.jpg'))[:3]: shutil.copy(f, small_data/'c'/f.name)
    code, err = _cli(capsys, small_data, '--n', 1, '--classes', 'c', *ARGS)  # c: 2 training items, 1 validation
    assert code == EXIT_DATA
    assert "['c'] have c 2 training items: too few to cluster" in _one_error_line(err)

def test_bad_weights_file(capsys, small_data, tmp_path, no_training):
    (tmp_path/'resnet18.pth').write_bytes(b'not weights')
    code, err = _cli(capsys, small_data, '--n', 10, '--arch', 'resnet18', '--weights-file', tmp_path/'resnet18.pth')
    assert code == EXIT_WEIGHTS
    assert 'resnet18.pth is not a PyTorch weights file' in _one_error_line(err)

def test_ctrl_c_while_loader_workers_start(capsys, small_data, tmp_path):
    import os, signal, time
    def items():  # what a DataLoader does when its workers die of the Ctrl-C: another error in the main process
        try: os.kill(os.getpid(), signal.SIGINT); time.sleep(1)
        except KeyboardInterrupt: raise RuntimeError('DataLoader worker (pid 1234) exited unexpectedly') from None
    a = undersample_parser().parse_args([str(small_data), '--n', '10', '--out', str(tmp_path/'out')])
    code = _run_command('subclass_undersample', a, items, dict(arch='resnet18'), n=10)
    assert code == EXIT_INTERRUPTED
    assert 'interrupted' in capsys.readouterr().err

def test_presize_trains_on_copies_in_the_given_folder(capsys, tmp_path, one_thread):
    "--presize DIR: every image decoded and resized once into DIR/<size>px, and the run trains and selects on the copies"
    size = 24  # the sample's images are 32 px: the copies are smaller
    args = (SAMPLE, '--n', 60, *ARGS, '--size', size, '--layer', 'pool', '--out', tmp_path/'out', '--quiet', '--num-workers', 0,
            '--presize', tmp_path/'px')
    code, err = _cli(capsys, *args)
    assert code == EXIT_OK, err
    copies = sorted((tmp_path/'px'/f'{size}px').rglob('*.jpg'))
    assert len(copies) == len(list(SAMPLE.rglob('*.jpg')))
    from PIL import Image
    assert {Image.open(f).size for f in copies[:10]} == {(size, size)}
    kept = pd.read_csv(tmp_path/'out'/'kept_items.csv')
    assert kept.iloc[:, 0].astype(str).str.contains(f'px/{size}px/').all()

def test_before_training_clusters_the_weights_f0_starts_from(capsys, tmp_path, one_thread):
    "--before-training: the selection is made through the loaded weights file before f0 trains (body/pool only), f0's losses kept after"
    import torch, torchvision
    wfile = tmp_path/'resnet18.pth'
    torch.manual_seed(0); torch.save(torchvision.models.resnet18().state_dict(), wfile)
    args = (SAMPLE, '--n', 60, '--arch', 'resnet18', '--weights-file', wfile, '--size', 32, '--epochs', 1, '--freeze-epochs', 0,
            '--out', tmp_path/'out', '--quiet', '--num-workers', 0, '--train-fu', '--fu-training', 'dro', '--before-training')
    code, err = _cli(capsys, *args)
    assert code == EXIT_OK, err
    sel = pd.read_csv(tmp_path/'out'/'selection.csv')
    assert set(sel[sel['class'] == 'vehicle'].layer) <= {'body', 'pool'}  # the untrained head is not clustered
    assert (sel['class'] == 'vehicle').sum() == 240 and sel[sel['class'] == 'vehicle'].kept.sum() == 60
    assert 'the pretrained backbone, before training' in (tmp_path/'out'/'index.html').read_text()
    assert (tmp_path/'out'/'outliers.csv').exists()  # f0's losses were kept after its training (the report needs them)
    assert {'f0', 'f_u'} <= set(pd.read_csv(tmp_path/'out'/'metrics.csv').columns)  # f_u trained (balanced draws, group DRO)
    assert 'with group DRO over the subclasses' in (tmp_path/'out'/'index.html').read_text()
    code, err = _cli(capsys, *args[:-1], '--overwrite', '--before-training', '--layer', 'linear')
    assert code == EXIT_ARGS
    assert "'linear' is in the head" in _one_error_line(err)
