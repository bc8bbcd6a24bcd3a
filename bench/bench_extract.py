"""Feature-extraction throughput against plain `learn.get_preds`, and the peak memory of extraction (issue #3).

Goal: one `extract_features` pass for all three candidate layers (body, pool, linear) costs at most 1.3x one
`get_preds` pass over the same items on a CPU (on a GPU: at least 0.8x get_preds' throughput).

Images: the shipped sample's JPEGs resized to `--size` and written once as JPEGs to a temp folder (480 distinct
files), repeated to `--n` items, so every item is a real JPEG decoded and resized by fastai's usual pipeline. The
model is a `vision_learner` with random weights (`pretrained=False`): speed and memory do not depend on the weights.

Every measurement runs in its own fresh Python process: the same start for each, and a peak memory of its own.
In it, after a warm-up of two batches, it times one pass over the items and reports:

- images/s, and the load average of the machine before and after (other processes make CPU times noisy);
- `peak`: the peak extra resident memory of the pass over the memory in use when it started (Linux
  `/proc/self/status` VmHWM, reset just before the pass through `/proc/self/clear_refs`), and the bytes of the
  returned arrays; on CUDA also the peak GPU memory the pass allocated (`torch.cuda.max_memory_allocated`).

Measurements: `get_preds` (the baseline), `all` (extract_features, all three layers), `body`, `pool`, `linear` (one
layer each). `model`: a diagnostic without the data loader, on a random batch already on the device: forward alone,
then forward with the library's per-batch writes (`FeatureStore.write`, as `extract_features` makes them for --n) of
all three layers; it shows whether the writes (device-to-host copies) or the loader bound the pass.

    .venv/bin/python bench/bench_extract.py --n 300 --threads 1                  # CPU throughput, every measurement
    .venv/bin/python bench/bench_extract.py --n 2000 --measure get_preds,all     # CPU peak memory at N = 2,000
    python bench/bench_extract.py --device cuda --fp16 --n 20000 --bs 256        # a GPU (bench/gpu_check.sh)
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

MiB = 2**20
MEASURES = ('get_preds', 'all', 'body', 'pool', 'linear', 'model')

def _status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key): return int(line.split()[1]) * 1024
    return 0

def _reset_peak():
    "Reset VmHWM to the current RSS; False where the kernel does not allow it"
    try:
        with open('/proc/self/clear_refs', 'w') as f: f.write('5')
        return True
    except OSError: return False

def load(): return [round(x, 2) for x in os.getloadavg()]

def cpu_seconds():
    "CPU seconds of this process and its finished children (DataLoader workers): a cost less noisy than wall time on a shared machine"
    return time.process_time() + sum(getattr(resource.getrusage(resource.RUSAGE_CHILDREN), a) for a in ('ru_utime', 'ru_stime'))

def write_images(folder, size):
    "The sample's JPEGs resized to `size` x `size`, written under `folder`/<class>/: the distinct files"
    from PIL import Image
    import fastai_subclass
    sample = Path(fastai_subclass.__file__).parent/'data'/'sample'
    files = []
    for o in sorted(sample.glob('*/*/*.jpg')):
        dest = Path(folder)/o.parent.name/f'{o.parent.parent.name}_{o.name}'
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.open(o).convert('RGB').resize((size, size), Image.BICUBIC).save(dest, quality=90)
        files.append(dest)
    return files

def make_learner(args, files):
    "A `vision_learner` with random weights on DataLoaders of the distinct files (for the vocab and the transforms)"
    import torch
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, parent_label
    import torchvision.models as tvm
    arch = getattr(tvm, args.arch, None) or args.arch  # a torchvision name, else a timm name
    dls = ImageDataLoaders.from_lists(files[0].parent.parent, files, [parent_label(o) for o in files], valid_pct=0.2, seed=0,
                                      item_tfms=Resize(args.size), bs=args.bs, num_workers=args.workers, device=torch.device(args.device))
    learn = vision_learner(dls, arch, pretrained=False)
    if args.fp16: learn.to_fp16()
    return learn

def _sync(device):
    import torch
    if device.startswith('cuda'): torch.cuda.synchronize()

def run_model_diagnostic(args, learn):
    "Forward alone vs forward with the library's writes of all three layers, on a random batch already on the device"
    import torch
    from fastai_subclass.features import candidate_layers, FeatureStore, sparse_projection, MAX_FEATURE_BYTES
    model, dev = learn.model.eval(), torch.device(args.device)
    x = torch.randn(args.bs, 3, args.size, args.size, device=dev)
    ac = torch.autocast('cuda', dtype=torch.float16) if args.fp16 and dev.type == 'cuda' else torch.autocast('cpu', enabled=False)
    mods, outs = candidate_layers(model), {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: outs.__setitem__(k, o.detach().clone())) for k, m in mods.items()]
    with torch.no_grad(), ac: model(x)
    for h in hooks: h.remove()
    # the stores extract_features would make for --n items: exact while within the budget, smallest first, else projected
    stores, budget = {}, MAX_FEATURE_BYTES
    for k, o in sorted(outs.items(), key=lambda kv: kv[1][0].numel()):
        dim = o[0].numel(); exact = args.n * dim * 4 <= budget
        if exact: budget -= args.n * dim * 4
        stores[k] = FeatureStore(args.bs, dim, None if exact else sparse_projection(dim, min(4096, dim), 42, dev))
    iters = max(2, args.n // args.bs)
    def timed(hooked):
        hs = [m.register_forward_hook(lambda m, i, o, k=k: stores[k].write(0, o)) for k, m in mods.items()] if hooked else []
        try:
            with torch.no_grad(), ac:
                model(x); _sync(args.device)
                t = time.perf_counter()
                for _ in range(iters): model(x)
                _sync(args.device)
                return iters * args.bs / (time.perf_counter() - t)
        finally:
            for h in hs: h.remove()
    plain, hooked = timed(False), timed(True)
    return dict(plain_ips=plain, hooked_ips=hooked, ratio=plain / hooked, iters=iters,
                projected=[k for k, s in stores.items() if not s.exact])

def run_one(args):
    "One measurement in this (fresh) process; prints one JSON line"
    import numpy as np, torch
    if args.threads: torch.set_num_threads(args.threads)
    from fastai_subclass.features import extract_features
    files = sorted(Path(args.images).glob('*/*.jpg'))
    items = [files[i % len(files)] for i in range(args.n)]
    learn = make_learner(args, files)
    res = dict(measure=args.one, n=args.n, size=args.size, arch=args.arch, bs=args.bs, device=args.device, fp16=args.fp16,
               threads=torch.get_num_threads(), workers=args.workers)
    if args.one == 'model':
        res['load_before'] = load(); res.update(run_model_diagnostic(args, learn)); res['load_after'] = load()
        print('RESULT ' + json.dumps(res), flush=True); return
    def run(its):
        if args.one == 'get_preds':
            with learn.no_bar(), learn.no_logging(): return learn.get_preds(dl=learn.dls.test_dl(its, bs=args.bs))[0].numpy()
        return extract_features(learn, its, layer='auto' if args.one == 'all' else args.one, bs=args.bs, progress=False)
    run(items[:2 * args.bs])  # warm-up: allocator, cuDNN autotuning, file cache
    _sync(args.device)
    if args.device.startswith('cuda'): torch.cuda.reset_peak_memory_stats()
    rss0, reset = _status('VmRSS'), _reset_peak()
    hwm0 = _status('VmHWM')
    res['load_before'] = load()
    t, c = time.perf_counter(), cpu_seconds()
    out = run(items)
    _sync(args.device)
    secs, cpu = time.perf_counter() - t, cpu_seconds() - c
    res['load_after'] = load()
    peak = _status('VmHWM') - (rss0 if reset else hwm0)
    arrays = out.values() if isinstance(out, dict) else [out]
    res.update(secs=secs, cpu_s=cpu, ips=args.n / secs, peak_rss_mib=peak / MiB, hwm_reset=reset, rss_before_mib=rss0 / MiB,
               array_mib=sum(a.nbytes for a in arrays) / MiB, shapes={k: list(v.shape) for k, v in out.items()} if isinstance(out, dict) else list(out.shape))
    if args.device.startswith('cuda'): res['peak_gpu_mib'] = torch.cuda.max_memory_allocated() / MiB
    print('RESULT ' + json.dumps(res), flush=True)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=2000, help='items per pass')
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--arch', default='resnet50', help='a torchvision model name (or a timm name)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--fp16', action='store_true', help='learn.to_fp16() (mixed precision; on CUDA)')
    p.add_argument('--threads', type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument('--workers', type=int, default=None, help='DataLoader workers (default: 0 on CPU, min(16, cores) on CUDA)')
    p.add_argument('--measure', default=','.join(MEASURES), help=f'comma-separated, of {MEASURES}')
    p.add_argument('--images', default=None, help='a folder of JPEGs already at --size (default: made in a temp folder)')
    p.add_argument('--json', default=None, help='also write the results to this file')
    p.add_argument('--one', default=None, help=argparse.SUPPRESS)  # internal: run one measurement in this process
    args = p.parse_args()
    if args.workers is None: args.workers = 0 if args.device == 'cpu' else min(16, os.cpu_count() or 1)
    if args.one: return run_one(args)
    measures = [m for m in args.measure.split(',') if m]
    bad = [m for m in measures if m not in MEASURES]
    if bad: p.error(f'unknown measure(s) {bad}; choose from {MEASURES}')
    tmp = None
    if args.images is None:
        tmp = tempfile.mkdtemp(prefix='bench_extract_'); args.images = tmp
        t = time.perf_counter(); files = write_images(tmp, args.size)
        print(f'{len(files)} distinct {args.size}px JPEGs written in {time.perf_counter() - t:.1f}s, repeated to {args.n} items', flush=True)
    print(f'arch {args.arch}, size {args.size}, n {args.n}, bs {args.bs}, device {args.device}, fp16 {args.fp16}, '
          f'threads {args.threads or "default"}, workers {args.workers}; load average {load()}', flush=True)
    results = {}
    try:
        for m in measures:
            cmd = [sys.executable, __file__, '--one', m] + [a for k, v in vars(args).items() if k not in ('one', 'measure', 'json')
                                                          for a in ((f'--{k}',) if v is True else () if v is False or v is None else (f'--{k}', str(v)))]
            out = subprocess.run(cmd, capture_output=True, text=True)
            lines = [l for l in out.stdout.splitlines() if l.startswith('RESULT ')]
            if out.returncode or not lines:
                print(f'{m}: failed (exit {out.returncode})\n{out.stderr[-3000:]}', flush=True); continue
            r = results[m] = json.loads(lines[-1][7:])
            if m == 'model':
                print(f"model only ({r['iters']} batches of {args.bs}, random input on {args.device}): forward {r['plain_ips']:.1f} img/s, "
                      f"with the writes of all three layers {r['hooked_ips']:.1f} img/s (x{r['ratio']:.2f} time; projected: {r['projected'] or 'none'}); "
                      f"load {r['load_before']} -> {r['load_after']}", flush=True)
                continue
            gpu = f", peak GPU {r['peak_gpu_mib']:.0f} MiB" if 'peak_gpu_mib' in r else ''
            print(f"{m:>9}: {r['secs']:7.1f}s {r['ips']:8.1f} img/s {r['cpu_s']:7.1f} CPU-s  peak +{r['peak_rss_mib']:.0f} MiB RSS{'' if r['hwm_reset'] else ' (HWM not reset)'}"
                  f" (arrays {r['array_mib']:.1f} MiB{gpu}) shapes {r['shapes']}; load {r['load_before']} -> {r['load_after']}", flush=True)
    finally:
        if tmp: shutil.rmtree(tmp, ignore_errors=True)
    if 'get_preds' in results and 'all' in results:
        g, a = results['get_preds'], results['all']
        ratio, cpu_ratio = a['secs'] / g['secs'], a['cpu_s'] / g['cpu_s']
        print(f"all three layers / get_preds: x{ratio:.2f} wall time ({a['ips'] / g['ips']:.2f}x get_preds' throughput), "
              f"x{cpu_ratio:.2f} CPU time; goal on CPU: at most x1.3; on GPU: at least 0.8x throughput", flush=True)
        results['ratio_all_over_get_preds'], results['cpu_ratio_all_over_get_preds'] = ratio, cpu_ratio
    if args.json: Path(args.json).write_text(json.dumps(results, indent=1))

if __name__ == '__main__': main()
