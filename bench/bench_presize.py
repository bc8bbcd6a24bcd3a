"""Presized images against decoding the originals every epoch: the training loader's throughput before and after.

The paper's images are 2048x1365 JPEGs. This script makes `--n` such JPEGs from the shared CIFAR-10 images (upscaled,
with a little noise so that they do not compress unrealistically well), then times, each in the same way:

- `presize`: decoding and resizing every image once (shorter side `--size`) with `--workers` processes: the one-time cost;
- the training loader of the originals: one epoch of `ImageDataLoaders` with `Resize(--size)` at bs 25 (decode + resize +
  collate; the augmentations run on the GPU in the paper's setting, so they are left out here);
- the same loader over the presized copies.

    .venv/bin/python bench/bench_presize.py                  # 300 images, 224 px, 2 workers
    .venv/bin/python bench/bench_presize.py --n 1000 --workers 16

For the verdict, compare the loader's img/s with the training throughput of the GPU: the issue measured ResNet50 at
bs 25 with AMP on an H200 at 1,497 img/s; a loader below that leaves the GPU waiting (decode-bound).
"""
import argparse, os, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np
from PIL import Image
ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent/'shared'/'data'/'cifar10'/'train'

def make_large_jpegs(n:int, dest:Path, size=(2048, 1365), seed=0) -> list:
    "`n` JPEGs of `size` made from the shared CIFAR-10 images, in class folders"
    rng, srcs, out = np.random.default_rng(seed), sorted(DATA.glob('*/*.jpg')), []
    for i, s in enumerate(srcs[:: max(1, len(srcs) // n)][:n]):
        img = np.asarray(Image.open(s).convert('RGB').resize(size, Image.BICUBIC), dtype=np.float32)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        fn = dest/s.parent.name/f'{i:05d}.jpg'; fn.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(fn, quality=90)
        out.append(fn)
    return out

def loader_epoch(paths, size:int, workers:int) -> float:
    "img/s of one epoch of a fastai training loader (decode, Resize, collate) over `paths`"
    from fastai.vision.all import ImageDataLoaders, Resize, parent_label
    dls = ImageDataLoaders.from_path_func(paths[0].parents[1], paths, parent_label, valid_pct=0.001, seed=0, item_tfms=Resize(size),
                                          bs=25, num_workers=workers, device='cpu')
    t, m = time.time(), 0
    for xb, yb in dls.train: m += len(xb)
    return m / (time.time() - t)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=300); p.add_argument('--size', type=int, default=224)
    p.add_argument('--workers', type=int, default=os.cpu_count())
    a = p.parse_args(argv)
    import torch; torch.set_num_threads(1)
    from fastai_subclass.presize import presize
    tmp = Path(tempfile.mkdtemp())
    try:
        t = time.time(); paths = make_large_jpegs(a.n, tmp/'orig')
        mb = sum(f.stat().st_size for f in paths) / 2**20
        print(f"made {len(paths)} JPEGs of 2048x1365 ({mb / len(paths):.2f} MiB each) in {time.time() - t:.0f} s; {a.workers} workers, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        t = time.time(); small = presize(paths, a.size, tmp/'cache', max_workers=a.workers, progress=False); pre = time.time() - t
        print(f"presize (once):            {len(paths) / pre:7.1f} img/s ({pre:.1f} s; copies {sum(Path(f).stat().st_size for f in small) / 2**10 / len(small):.0f} KiB each)")
        t = time.time(); presize(paths, a.size, tmp/'cache', max_workers=a.workers, progress=False)
        print(f"presize again (all cached): {len(paths) / (time.time() - t):7.1f} img/s")
        before, after = loader_epoch(paths, a.size, a.workers), loader_epoch([Path(f) for f in small], a.size, a.workers)
        print(f"training loader, originals: {before:7.1f} img/s\ntraining loader, presized:  {after:7.1f} img/s  ({after / before:.1f}x)")
        print(f"per worker: {before / a.workers:.1f} -> {after / a.workers:.1f} img/s; to feed 1,497 img/s (ResNet50, bs 25, AMP, H200) "
              f"a loader needs {1497 / (before / a.workers):.0f} workers on the originals, {1497 / (after / a.workers):.0f} on the copies; "
              f"load average now {os.getloadavg()[0]:.1f}")
    finally: shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
