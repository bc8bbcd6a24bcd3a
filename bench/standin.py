"""Offline stand-ins for ImageNet weights: a torchvision ResNet18 with 1000 outputs trained on the CIFAR-10 *train* images.

No pretrained weights can be downloaded here, yet the paper fine-tunes f0 from ImageNet weights. Like ImageNet, the
stand-in has seen finer categories than a benchmark's labels (each CIFAR-10 class is its own output), on images disjoint
from every benchmark image (the benchmark of bench/discovery.py draws from the CIFAR-10 *test* images only). Its
state dict has the layout of torchvision's published weights (fc: 1000 x 512), so it loads through the real offline path,
`subclass_learner(dls, resnet18, weights_file=...)`.

    python bench/standin.py                                  # both stand-ins, cached in bench/out/standin/
    python bench/standin.py --name all --epochs 2            # a quick check
    python bench/standin.py --size 64 --out bench/out/standin-s64-e30   # trained on the images upsampled to 64 px
    python bench/standin.py --ssl 1 --out bench/out/standin-ssl1-e30      # plus SimCLR's contrastive loss on two views

`--ssl w` adds w times SimCLR's NT-Xent loss (Chen et al. 2020) on two strongly augmented views of each image, through a
projection head that is dropped before saving; the labels' cross-entropy is taken on both views. A stand-in trained on
7 labels only learns what tells those 7 apart; ImageNet's 1000 labels teach far more. The contrastive loss asks the
backbone to tell every image from every other, which is the nearest offline stand-in for that breadth.

Stand-ins (`--name`): `all` saw the 10 classes; `no-cat-deer-truck` never saw cat, deer or truck, the subclasses of
the benchmark's composition that a method reading back the stand-in's own labels cannot find.
A file that exists is reused (delete it, or pass --redo, to train again). Prints the validation accuracy (CIFAR-10 test
images of the classes it saw, used here only to report how good the stand-in is) and the time taken.
"""
import argparse, json, time
from pathlib import Path
import numpy as np, torch, torchvision
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent/'shared'/'data'/'cifar10'
OUT = ROOT/'bench'/'out'/'standin'
CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
STANDINS = {'all': CLASSES, 'no-cat-deer-truck': tuple(c for c in CLASSES if c not in ('cat', 'deer', 'truck'))}
# fastai's vision_learner normalizes with these for pretrained weights: the stand-in sees its inputs the same way
MEAN, STD = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]

def load_images(split:str, classes) -> tuple:
    "(uint8 N x 3 x 32 x 32 images, int64 labels) of `classes` in the CIFAR-10 `split` folder"
    xs, ys = [], []
    for i, c in enumerate(classes):
        for f in sorted((DATA/split/c).glob('*.jpg')):
            xs.append(np.asarray(Image.open(f).convert('RGB'))); ys.append(i)
    return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous(), torch.tensor(ys)

def augment(x:torch.Tensor, gen:torch.Generator) -> torch.Tensor:
    "Random 4-pixel shifts (reflection padding) and horizontal flips of a float batch"
    n, pad = len(x), 4
    xp = torch.nn.functional.pad(x, (pad,) * 4, mode='reflect')
    dx, dy = torch.randint(0, 2 * pad + 1, (2, n), generator=gen)
    out = torch.stack([xp[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out

LUMA = torch.tensor([0.299, 0.587, 0.114])[:, None, None]  # ITU-R 601 grey, as PIL's convert('L')

def grayscale(x:torch.Tensor) -> torch.Tensor: return (x * LUMA).sum(1, keepdim=True)

def strong_augment(x:torch.Tensor, gen:torch.Generator, size:int=32) -> torch.Tensor:
    "SimCLR's views of a uint8 batch at `size` px: random resized crops (area 0.2-1), flips, brightness/contrast/saturation 0.4 (p 0.8), grey (p 0.2); normalized"
    # not torchvision's RandomResizedCrop / ColorJitter / RandomGrayscale: they draw from the global RNG, one image (or
    # one set of parameters per batch) at a time; here every image's parameters come from `gen`, so the views (and the
    # cached stand-ins) are reproduced draw for draw
    n, src = len(x), x.shape[-1]
    u = torch.rand(n, 8, generator=gen)
    area, ratio = 0.2 + 0.8 * u[:, 0], torch.exp((u[:, 1] - 0.5) * 2 * np.log(4 / 3))
    w = (src * torch.sqrt(area * ratio)).round().clamp(8, src).long()
    h = (src * torch.sqrt(area / ratio)).round().clamp(8, src).long()
    top, left = ((src - h + 1) * u[:, 2]).long(), ((src - w + 1) * u[:, 3]).long()
    xf = x.float() / 255
    out = torch.cat([torch.nn.functional.interpolate(xf[i:i + 1, :, top[i]:top[i] + h[i], left[i]:left[i] + w[i]], size=(size, size),
                                                     mode='bilinear', align_corners=False) for i in range(n)])
    flip = u[:, 4] < 0.5
    out[flip] = out[flip].flip(-1)
    bright, contrast, sat = 0.6 + 0.8 * torch.rand(3, n, 1, 1, 1, generator=gen)
    mean = grayscale(out).mean((2, 3), keepdim=True) * bright  # the brightened image's mean grey
    j = (out * bright - mean) * contrast + mean
    grey = grayscale(j)
    j = grey + (j - grey) * sat
    out = torch.where((u[:, 5] < 0.8)[:, None, None, None], j, out).clamp(0, 1)
    out = torch.where((u[:, 6] < 0.2)[:, None, None, None], grayscale(out).expand_as(out), out)
    return (out - MEAN) / STD

def nt_xent(z1:torch.Tensor, z2:torch.Tensor, temperature:float=0.2) -> torch.Tensor:
    "SimCLR's loss: each view must pick its partner out of the batch's other 2n - 2 views"
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float('-inf'))
    n = len(z1)
    return torch.nn.functional.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))

def normalize(x:torch.Tensor, size:int=32) -> torch.Tensor:
    "Float, normalized as fastai does for pretrained weights; upsampled (bilinear) to `size` px where that is not 32"
    x = (x.float() / 255 - MEAN) / STD
    return x if size == x.shape[-1] else torch.nn.functional.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)

def accuracy(model, x, y, bs=500, size:int=32) -> float:
    model.eval()
    with torch.no_grad(): pred = torch.cat([model(normalize(x[i:i + bs], size)).argmax(1) for i in range(0, len(x), bs)])
    return float((pred == y).float().mean())

def train_standin(classes, epochs:int=30, bs:int=128, lr:float=2e-3, seed:int=0, threads:int=2, size:int=32, ssl:float=0.) -> tuple:
    "A ResNet18 (1000 outputs) trained on the CIFAR-10 train images of `classes`, seen at `size` px, plus `ssl` x SimCLR's loss; (model, facts)"
    torch.manual_seed(seed); torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    x, y = load_images('train', classes)
    xv, yv = load_images('test', classes)
    model = torchvision.models.resnet18(num_classes=1000)
    head = []  # SimCLR's projection head, trained with the model and not saved
    if ssl:
        body = torch.nn.Sequential(*list(model.children())[:-1], torch.nn.Flatten())  # the model up to its pooled 512 features
        head = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128))
    opt = torch.optim.AdamW([*model.parameters(), *(head.parameters() if ssl else [])], lr=lr, weight_decay=0.05)
    steps = epochs * (len(x) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25)
    t = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(len(x) // bs):
            b = perm[i * bs:(i + 1) * bs]
            if ssl:
                feats = body(torch.cat([strong_augment(x[b], gen, size), strong_augment(x[b], gen, size)]))
                loss = (torch.nn.functional.cross_entropy(model.fc(feats), y[b].repeat(2), label_smoothing=0.1) +
                        ssl * nt_xent(*head(feats).chunk(2)))
            else: loss = torch.nn.functional.cross_entropy(model(normalize(augment(x[b], gen), size)), y[b], label_smoothing=0.1)
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if epoch % 5 == 4 or epoch == epochs - 1:
            print(f"  epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, valid accuracy {accuracy(model, xv, yv, size=size):.3f}, "
                  f"{time.time() - t:.0f} s", flush=True)
    facts = dict(classes=list(classes), train_images=len(x), epochs=epochs, bs=bs, lr=lr, seed=seed, threads=threads, size=size, ssl=ssl,
                 valid_images=len(xv), valid_accuracy=round(accuracy(model, xv, yv, size=size), 4), train_s=round(time.time() - t))
    return model, facts

def standin_path(name:str, out=OUT) -> Path: return Path(out)/f'resnet18-cifar10-{name}.pth'

def make_standin(name:str, out=OUT, redo:bool=False, **kwargs) -> Path:
    "The weights file of the stand-in `name`, trained and saved (atomically) unless it exists"
    fn = standin_path(name, out)
    if fn.exists() and not redo: return fn
    print(f"training stand-in {name!r} on {STANDINS[name]}", flush=True)
    model, facts = train_standin(STANDINS[name], **kwargs)
    fn.parent.mkdir(parents=True, exist_ok=True)
    tmp = fn.with_suffix('.tmp')
    torch.save(model.state_dict(), tmp); tmp.replace(fn)
    fn.with_suffix('.json').write_text(json.dumps(facts, indent=1))
    print(f"  saved {fn} ({fn.stat().st_size / 2**20:.1f} MiB): {facts}", flush=True)
    return fn

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--name', nargs='+', default=list(STANDINS), choices=list(STANDINS))
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--size', type=int, default=32, help="the px the stand-in sees (the 32 px images upsampled)")
    p.add_argument('--ssl', type=float, default=0., help="weight of SimCLR's contrastive loss next to the labels' (0: labels only)")
    p.add_argument('--out', default=str(OUT))
    p.add_argument('--redo', action='store_true')
    a = p.parse_args(argv)
    for name in a.name: make_standin(name, a.out, a.redo, epochs=a.epochs, threads=a.threads, size=a.size, ssl=a.ssl)

if __name__ == '__main__': main()
