"""A distributed run on 2 CPU processes (gloo): each process extracts its share of the features, the gathered features
equal those of one process to the bit, and the selection made by the first process is the single-process one on every
process. (f_u's distributed training is fastai's `distrib_ctx`, whose DistributedDL broadcasts its seed as a CUDA
tensor: it needs GPUs, and is not tested here.)"""
import os, socket
import numpy as np, pytest, torch
from fastai_subclass.datasets import load_items, sample_path
from fastai_subclass.train import item_dataloaders, learner_like, fit_recipe
from fastai_subclass.features import extract_features
from fastai_subclass.select import subclass_undersample

RECIPE = dict(arch='resnet18', pretrained=False, size=32, bs=25, epochs=1, freeze_epochs=0, lr=0.01, aug=False)
SELECT = dict(ks=range(2, 5), seed=0, progress=False, check=False)

def _dls(): return item_dataloaders(load_items(sample_path()), RECIPE, num_workers=0)

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _worker(rank, world, tmp, port):
    "One process of the run: features, selection and a distributed f_u, written to `tmp`"
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world)
    try:
        from fastai_subclass.distributed import distributed_subclass_undersample
        dls = _dls()
        f0 = learner_like(dls, RECIPE, torch.load(tmp/'f0.pth'))
        seen = []  # the items this process runs through the model
        hook = f0.model.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
        feats = extract_features(f0, dls.train_ds.items, progress=False)
        hook.remove()
        sel = distributed_subclass_undersample(f0, 60, cache_dir=tmp/'cache', **SELECT)
        # an error of the selection (made by the first process only) reaches every process instead of leaving them waiting
        try: distributed_subclass_undersample(f0, 60, strategy='nope', cache_dir=tmp/'cache', **SELECT)
        except ValueError as e: (tmp/f'error{rank}.txt').write_text(str(e))
        np.savez(tmp/f'rank{rank}.npz', kept=np.array(sel.kept_keys, dtype=str), seen=sum(seen), **{f'feat_{k}': v for k, v in feats.items()})
    finally: torch.distributed.destroy_process_group()

@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")
def test_two_processes_match_one(tmp_path):
    torch.manual_seed(0)
    dls = _dls()
    f0 = learner_like(dls, RECIPE)
    with f0.no_bar(), f0.no_logging(): fit_recipe(f0, RECIPE)
    torch.save(f0.model.state_dict(), tmp_path/'f0.pth')
    torch.multiprocessing.spawn(_worker, (2, tmp_path, _free_port()), nprocs=2)
    one = extract_features(f0, dls.train_ds.items, progress=False)
    kept = subclass_undersample(f0, 60, **SELECT).kept_keys
    ranks = [np.load(tmp_path/f'rank{r}.npz') for r in range(2)]
    for r in ranks:
        for k, v in one.items(): assert np.array_equal(r[f'feat_{k}'], v), k  # to the bit
        assert list(r['kept']) == kept  # the single-process selection, on every process
    assert all('strategy must be one of' in (tmp_path/f'error{r}.txt').read_text() for r in range(2))
    assert [int(r['seen']) for r in ranks] == [len(dls.train_ds) // 2] * 2  # each process ran its half
    # written once, by the first process: the vehicles' training items (extracted by both), their validation items (by the first)
    assert len(list((tmp_path/'cache').glob('features-*.npz'))) == 2
