"""The rate-distortion training loop with exact resume.

Loss (per batch): ``lambda * 255**2 * MSE(x, x_hat) + bpp`` where bpp is the model's estimated
rate ``sum(-log2 likelihoods) / pixels`` and x, x_hat are float RGB in 0..1. A variable-rate model
(one with gain vectors per level, nn.models.GainedContextHyperprior) has no single lambda: each
batch draws a level uniformly from codecs.learned.LAMBDAS and trains with that level's gains and
lambda; its fixed-crop losses are the means over the levels (each level's kept beside them).

A checkpoint (one file, written atomically every ``checkpoint_minutes``) holds the config, the
model, the Adam state, the step, the elapsed time, the numpy and torch RNG states and the loss
history, so ``resume=True`` continues exactly where it stopped. It also lists the runs ("stages")
that made it: steps, learning rate, lambda and the weights the first one started from; exported
recipes and model cards show them.

Every ``eval_every`` steps, and where each run starts and ends, the loop also measures the loss
on a fixed set of crops (drawn once from the training data with their own seed) through the
rounded latents the decoder will see:
unlike the running train loss, which moves with the crops each step happens to draw, that curve
shows what more steps buy. The evaluation uses no random numbers, so resuming stays exact.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..heap import retained_heap
from ..interrupt import grad_mode_restored, sigterm_as_interrupt


@dataclass
class TrainConfig:
    model: str
    data: str
    lmbda: float | None  # None for a variable-rate model, which trains every level of LAMBDAS
    steps: int
    out: str
    N: int = 64
    M: int = 96
    refine: int = 0  # channels of the Refiner that ends g_s (nn.models.Refiner); 0: none
    groups: tuple | None = None  # a context model's channel groups (nn.models.check_groups); None: the default
    batch: int = 8
    crop: int = 128
    lr: float = 5e-4
    threads: int = 2
    seed: int = 0
    resume: bool = False
    init: str | None = None
    init_refiner: str | None = None  # take the Refiner alone from these weights (another level's)
    init_gains: str | None = None  # a variable-rate model's gain tables from these weights (not the rule of thumb)
    level_weights: tuple | None = None  # a variable-rate model: how often each level is drawn (None: uniformly)
    checkpoint_minutes: float = 5.0
    time_limit_minutes: float | None = None
    clip: float = 1.0
    quant: str = "noise"  # the latent g_s trains on: "noise" or "round" (entropy.quantize)
    freeze: str = ""  # what stays fixed (FREEZE_MODES)
    eval_every: int = 500  # steps between losses on the fixed crops (0: never)
    eval_crops: int = 8
    progress: bool = True
    device: str = "cpu"  # where the model trains: "cpu" or "cuda" (DEVICES)
    crops: str | None = None  # a crops pack (train.crops): batches are cut on the device from it, not from data
    bf16: bool = False  # g_a's and g_s's bodies under bfloat16 autocast (train.accel)
    compile: bool = False  # torch.compile the training step's model
    pieces: bool = False  # out is a folder of checkpoint pieces (train.pieces), not one file
    extra: dict = field(default_factory=dict)


#: what ``--freeze`` can hold fixed: "" (nothing); "transforms" (g_a and g_s: the distortion
#: then does not depend on the trained weights, so the loss is the rate alone and g_s is skipped);
#: "all-but-synthesis" (everything but g_s: the encoder, and so every file's bytes, stay as they
#: were and the loss is the distortion alone; with ``quant="round"`` g_s learns to decode the
#: rounded latents it will really see, which a model trained on noisy ones never did);
#: "all-but-refiner" (everything but g_s's Refiner, nn.models.Refiner: a post-filter network
#: learns to clean up what the decoder gives, also with ``quant="round"``)
FREEZE_MODES = ("", "transforms", "all-but-synthesis", "all-but-refiner")

#: learning-rate warm-up (linear, in steps) of a run resumed from a checkpoint whose optimizer
#: state was dropped to fit (train.pieces): Adam's moments start again from zero
WARMUP_STEPS = 200

#: a variable-rate model's gain vectors train at this multiple of the learning rate: they are few
#: and start from a rule of thumb (GainedContextHyperprior.init_gains), the transforms from trained weights
GAIN_LR_SCALE = 10.0

#: where ``--device`` can train. Checkpoints hold CPU tensors either way, so a run can resume on
#: the other; resuming is exact on the CPU (CUDA kernels may not be deterministic)
DEVICES = ("cpu", "cuda")


def rd_loss(out: dict, x, lmbda: float) -> dict:
    """{"loss", "mse", "bpp"} (torch scalars) of a model's forward output against x (B,3,H,W);
    an output without x_hat (frozen transforms) gives mse None and the rate as the loss."""
    import torch

    b, _, h, w = x.shape
    bits = sum(-torch.log2(v).sum() for v in out["likelihoods"].values())
    bpp = bits / (b * h * w)
    if out["x_hat"] is None:
        return {"loss": bpp, "mse": None, "bpp": bpp}
    mse = torch.mean((out["x_hat"] - x) ** 2)
    return {"loss": lmbda * 255**2 * mse + bpp, "mse": mse, "bpp": bpp}


def to_tensor(batch: np.ndarray):
    """uint8 B x H x W x 3 -> float B x 3 x H x W in 0..1 (channels_last memory)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last)


def save_checkpoint(path: str | Path, state: dict) -> None:
    import torch

    from ..fileio import write_atomic

    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(path, buf.getvalue(), force=True)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint file, or a folder of checkpoint pieces (train.pieces), as a dict."""
    import torch

    from ..errors import CorruptDataError, UsageError
    from .pieces import is_pieces, read_pieces

    if is_pieces(path):
        ck = read_pieces(path)
        if not isinstance(ck, dict) or not {"config", "model"} <= ck.keys():
            raise CorruptDataError(f"{path} is not an mlcompress training checkpoint")
        return ck
    if not Path(path).is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # zip, pickle and torch errors alike: nothing a checkpoint can be read from
        raise CorruptDataError(f"{path} is not a readable training checkpoint ({type(exc).__name__})") from None
    if not isinstance(ck, dict) or not {"config", "model"} <= ck.keys() or not isinstance(ck["config"], dict):
        raise CorruptDataError(f"{path} is not an mlcompress training checkpoint")
    return ck


def load_model(path: str | Path):
    """A model from a checkpoint (.pt) or an exported weights file (.safetensors)."""
    return _load_with_step(path)[0]


def model_from_checkpoint(ck: dict):
    """The model a loaded checkpoint (:func:`load_checkpoint`) holds."""
    from ..nn.models import build

    cfg = ck["config"]
    model = build(cfg["model"], cfg["N"], cfg["M"], cfg.get("refine", 0), cfg.get("groups"))
    model.load_state_dict(ck["model"])
    return model


def _load_with_step(path: str | Path):
    """(model, training step or None for a .safetensors file) of a checkpoint or weights file."""
    if str(path).endswith(".safetensors"):
        from ..weights import load_weights

        return load_weights(path)[0], None
    ck = load_checkpoint(path)
    return model_from_checkpoint(ck), ck.get("step")


def _weights_provenance(path: str | Path) -> dict:
    """For a start from an exported weights file: its SHA-256 and the recipe beside it, so the
    record says what made the starting weights even after a new export replaces that file."""
    import json

    from ..codecs.learned import weights_hash

    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    out = {"sha256": weights_hash(path).hex()}
    recipe = path.with_suffix(".json")
    if recipe.is_file():
        out["recipe"] = json.loads(recipe.read_text())
    return out


def init_from(model, src, log=print) -> None:
    """Start ``model`` from ``src``'s weights: all of them for the same architecture (wider
    transforms or latent, a larger N or M, by function-preserving widening: nn.widen), otherwise
    every tensor whose name and shape match (e.g. a factorized model takes a hyperprior's g_a and
    g_s, as in transfer between architectures); raises UsageError when nothing matches."""
    from ..errors import UsageError

    wider = all(getattr(model, k, 0) >= getattr(src, k, 0) for k in "NM") and any(
        getattr(model, k, 0) > getattr(src, k, 0) for k in "NM")
    if type(src) is type(model) and wider and src.refine == model.refine:
        from ..nn.widen import widen

        try:
            widen(src, model)
        except ValueError as e:
            raise UsageError(f"--init: {e}") from None
        log(f"init: {type(src).__name__} widened from N={src.N}, M={src.M} to N={model.N}, M={model.M} "
            "(decodes as before)")
        return
    if type(src) is type(model):
        refiner = f"g_s.{len(src.g_s)}."  # a Refiner the source lacks starts fresh (as the identity)
        state, fresh = src.state_dict(), (refiner,)
        regroup = getattr(src, "groups", None) != getattr(model, "groups", None)
        if regroup:  # other channel groups: the context nets start afresh (at zero: the hyperprior)
            state, fresh = {k: v for k, v in state.items() if not k.startswith("ctx.")}, (refiner, "ctx.")
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError:
            missing, unexpected = ["(shapes)"], []
        if unexpected or any(not k.startswith(fresh) for k in missing):
            raise UsageError(f"--init: the weights' shapes do not fit {type(model).__name__} with "
                             f"N={getattr(model, 'N', '?')}, M={getattr(model, 'M', '?')}, "
                             f"refine={getattr(model, 'refine', 0)}")
        if regroup:
            log(f"init: channel groups {','.join(map(str, model.groups))} instead of "
                f"{','.join(map(str, src.groups))}: new context nets (at zero, so coding as the hyperprior)")
        if any(k.startswith(refiner) for k in missing):
            log(f"init: all of {type(src).__name__}'s weights; a new Refiner of {model.refine} channels")
        return
    own = model.state_dict()
    shared = {k: v for k, v in src.state_dict().items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith(("g_a.", "g_s.")) for k in shared):
        raise UsageError(f"--init: {type(src).__name__} shares no transform weights with {type(model).__name__}")
    model.load_state_dict(shared, strict=False)
    log(f"init: {len(shared)} of {len(own)} tensors from {type(src).__name__}")


def check_config(cfg: TrainConfig) -> None:
    """Raise UsageError, naming the option, for a value no run can use (before any work is done
    or any file written)."""
    import torch

    from ..entropy.quantize import QUANT_MODES
    from ..errors import UsageError, require_at_least, require_positive
    from ..nn.models import MODELS

    if cfg.quant not in QUANT_MODES:
        raise UsageError(f"quant must be one of {', '.join(QUANT_MODES)}, not {cfg.quant!r}")
    if cfg.device not in DEVICES:
        raise UsageError(f"device must be one of {', '.join(DEVICES)}, not {cfg.device!r}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to this torch")
    if cfg.crops is not None and not Path(cfg.crops).is_file():
        raise UsageError(f"--crops {cfg.crops} does not exist (make it with `mlcompress crops`)")
    if cfg.pieces and Path(cfg.out).is_file():
        raise UsageError(f"--pieces: {cfg.out} is a file; pieces go into a folder")
    if cfg.freeze not in FREEZE_MODES:
        raise UsageError(f"freeze must be one of {', '.join(m for m in FREEZE_MODES if m)}, not {cfg.freeze!r}")
    if cfg.freeze.startswith("all-but-") and cfg.quant != "round":
        raise UsageError(f"--freeze {cfg.freeze} trains on the decoder's rounded latents: use --quant round")
    if cfg.freeze == "all-but-refiner" and not cfg.refine:
        raise UsageError("--freeze all-but-refiner needs a Refiner to train: give --refine CHANNELS")
    if cfg.model not in MODELS:
        raise UsageError(f"unknown model {cfg.model!r}; trainable: {', '.join(sorted(MODELS))}")
    if variable_rate(cfg.model):
        if cfg.lmbda is not None:
            raise UsageError(f"{cfg.model} trains every lambda of its levels (one per batch): give no --lambda")
        levels = MODELS[cfg.model].LEVELS
        w = cfg.level_weights
        if w is not None and (len(w) != levels or not all(math.isfinite(v) and v >= 0 for v in w) or not sum(w) > 0):
            raise UsageError(f"--level-weights: {levels} numbers >= 0, not all 0 (one per level), "
                             f"got {','.join(map(str, w))}")
    else:
        require_positive("--lambda", cfg.lmbda)
        if cfg.level_weights is not None:
            raise UsageError(f"--level-weights: {cfg.model} has one lambda (only a variable-rate model has levels)")
        if cfg.init_gains is not None:
            raise UsageError(f"--init-gains: {cfg.model} has no gain tables (only a variable-rate model has)")
    for flag, value in (("--checkpoint-minutes", cfg.checkpoint_minutes),
                        ("--time-limit", cfg.time_limit_minutes), ("clip", cfg.clip)):
        require_positive(flag, value)
    if not (math.isfinite(cfg.lr) and cfg.lr >= 0):  # 0 copies --init (and --init-refiner) unchanged
        raise UsageError(f"--lr must be a number >= 0, got {cfg.lr}")
    for flag, value, least in (("--steps", cfg.steps, 1), ("--N", cfg.N, 1), ("--M", cfg.M, 1),
                               ("--refine", cfg.refine, 0), ("--batch", cfg.batch, 1), ("--threads", cfg.threads, 1),
                               ("--seed", cfg.seed, 0), ("--eval-every", cfg.eval_every, 0),
                               ("eval_crops", cfg.eval_crops, 1)):
        require_at_least(flag, value, least)
    multiple = MODELS[cfg.model].multiple
    if cfg.crop < multiple or cfg.crop % multiple:
        raise UsageError(f"--crop must be a multiple of {multiple} for {cfg.model} (its latents are 1/{multiple} "
                         f"of the side), got {cfg.crop}")
    if cfg.groups is not None and not hasattr(MODELS[cfg.model], "SLICES"):
        raise UsageError(f"--groups: {cfg.model} has no channel groups (hyperprior-ctx and hyperprior-ctx-vr have)")
    if hasattr(MODELS[cfg.model], "SLICES"):
        from ..nn.models import check_groups

        try:
            check_groups(cfg.M, cfg.groups)
        except ValueError as e:
            raise UsageError(f"{'--M' if cfg.groups is None else '--groups'}: {e}") from None


def variable_rate(model_name: str) -> bool:
    """Whether the architecture trains every level at once (gain vectors per level)."""
    from ..nn.models import MODELS

    return hasattr(MODELS.get(model_name), "LEVELS")


def _lambdas(cfg: TrainConfig) -> tuple:
    """The lambdas a step draws from: the levels' (codecs.learned.LAMBDAS) for a variable-rate
    model, else (cfg.lmbda,)."""
    if not variable_rate(cfg.model):
        return (cfg.lmbda,)
    from ..codecs.learned import LAMBDAS

    return LAMBDAS


def _source_lambda(path: str | Path) -> float | None:
    """The lambda the weights or checkpoint at ``path`` were trained with (None: not one)."""
    if str(path).endswith(".safetensors"):
        from ..weights import read_safetensors

        value = read_safetensors(path)[1].get("lambda")
    else:
        value = load_checkpoint(path)["config"].get("lmbda")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def train(cfg: TrainConfig, log=print) -> dict:
    """Train (or resume) according to ``cfg``; returns the final checkpoint state's summary."""
    import torch

    from ..errors import UsageError
    from ..nn.models import build
    from .data import CropSampler

    check_config(cfg)
    if cfg.groups is not None:  # one form (a tuple) in the checkpoint and in comparisons with it
        cfg = replace(cfg, groups=tuple(cfg.groups))
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if cfg.resume and out.exists():
        ck = load_checkpoint(out)
        saved = ck["config"]
        for key in ("model", "N", "M", "refine", "groups"):
            if saved.get(key, 0 if key != "groups" else None) != getattr(cfg, key):
                raise UsageError(f"--resume: checkpoint has {key}={saved.get(key)}, asked for {getattr(cfg, key)}")
        if cfg.init is None:  # where the checkpoint's weights first came from stays part of its record
            cfg = replace(cfg, init=saved.get("init"))
    else:
        ck = None
        if out.exists():
            raise UsageError(f"{out} exists (use --resume to continue it)")

    torch.manual_seed(cfg.seed)
    model = build(cfg.model, cfg.N, cfg.M, cfg.refine, cfg.groups)
    init = None
    if ck is None and cfg.init:
        src, init_step = _load_with_step(cfg.init)
        init_from(model, src, log)
        if hasattr(model, "init_gains") and type(src) is not type(model) and not cfg.init_gains:
            lam = _source_lambda(cfg.init)
            if lam is None:
                raise UsageError(f"--init: {cfg.init} does not say which lambda it was trained with")
            model.init_gains(_lambdas(cfg), lam)
            log(f"init: gains of every level from lambda {lam} (1 at that lambda, sqrt(lambda_l / {lam}) elsewhere)")
        init = {"path": str(cfg.init), "step": init_step, **_weights_provenance(cfg.init)}
    if ck is None and cfg.init_refiner:
        src, src_step = _load_with_step(cfg.init_refiner)
        if not cfg.refine or getattr(src, "refine", 0) != cfg.refine:
            raise UsageError(f"--init-refiner: {cfg.init_refiner} has no Refiner of {cfg.refine} channels "
                             f"(it has {getattr(src, 'refine', 0) or 'none'})")
        model.g_s[-1].load_state_dict(src.g_s[-1].state_dict())
        log(f"init: the Refiner from {cfg.init_refiner}")
        init = {**(init or {"path": None, "step": None}),
                "refiner": {"path": str(cfg.init_refiner), "step": src_step, **_weights_provenance(cfg.init_refiner)}}
    if ck is None and cfg.init_gains:
        src, src_step = _load_with_step(cfg.init_gains)
        if type(src) is not type(model) or src.M != model.M:
            raise UsageError(f"--init-gains: {cfg.init_gains} is not a {cfg.model} model with M={model.M}")
        with torch.no_grad():
            model.log_gain.copy_(src.log_gain)
            model.log_inverse_gain.copy_(src.log_inverse_gain)
        log(f"init: every level's gains from {cfg.init_gains}")
        init = {**(init or {"path": None, "step": None}),
                "gains": {"path": str(cfg.init_gains), "step": src_step, **_weights_provenance(cfg.init_gains)}}
    stages = (ck.get("stages") or [_legacy_stage(ck)]) if ck is not None else []
    model.train_quant = cfg.quant
    if cfg.freeze == "transforms":
        model.g_a.requires_grad_(False)
        model.g_s.requires_grad_(False)
        model.synthesis_in_training = False
    elif cfg.freeze.startswith("all-but-"):
        model.requires_grad_(False)
        (model.g_s if cfg.freeze == "all-but-synthesis" else model.g_s[-1]).requires_grad_(True)
    model = model.to(device=cfg.device, memory_format=torch.channels_last).train()
    if cfg.device == "cuda":
        torch.backends.cudnn.benchmark = True  # one crop size: pick the fastest kernels once
    if cfg.bf16:
        from .accel import bf16_transforms

        bf16_transforms(model, torch.device(cfg.device).type)
    fwd = torch.compile(model) if cfg.compile else model  # the training step's; evaluation uses model
    params = [p for p in model.parameters() if p.requires_grad]
    gains = [p for n, p in model.named_parameters() if p.requires_grad and "gain" in n]
    groups = [{"params": [p for p in params if all(p is not g for g in gains)], "lr_scale": 1.0}]
    if gains:
        groups.append({"params": gains, "lr_scale": GAIN_LR_SCALE})
    opt = torch.optim.Adam(groups, lr=cfg.lr, fused=cfg.device == "cuda")
    for g in opt.param_groups:
        g["lr"] = cfg.lr * g["lr_scale"]
    lambdas = _lambdas(cfg)
    draw = None if cfg.level_weights is None else np.asarray(cfg.level_weights, float) / sum(cfg.level_weights)
    rng = np.random.default_rng(cfg.seed)
    step, elapsed, history = 0, 0.0, []
    warm_from = None  # the step where a fresh optimizer's learning-rate warm-up began
    if ck is not None:
        model.load_state_dict(ck["model"])
        if ck.get("optimizer") is not None:
            opt.load_state_dict(ck["optimizer"])
            warm_from = ck.get("warmup_from")
        else:  # dropped to fit the pieces: Adam starts again, its step sizes warmed up
            warm_from = ck["step"]
            log(f"optimizer state was dropped: Adam starts afresh, lr warmed up over {WARMUP_STEPS} steps")
        for g in opt.param_groups:
            g["lr"] = cfg.lr * g.get("lr_scale", 1.0)
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        if cfg.device == "cuda" and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        step, elapsed, history = ck["step"], ck["elapsed"], ck["history"]

    if cfg.crops:  # a uint8 tensor on the device, crops cut there (train.crops)
        from .crops import DeviceCrops

        data = DeviceCrops(cfg.crops, cfg.crop, cfg.device, cfg.seed)
        if ck is not None and ck.get("crops_rng") is not None and not data.set_rng_state(ck["crops_rng"]):
            log("crops: the checkpoint's crop generators were another device's; they start from --seed")
        fixed = data.fixed(cfg.eval_crops, cfg.crop) if cfg.eval_every else None
    else:
        data = CropSampler(cfg.data, cfg.crop)
        fixed = to_tensor(data.batch(np.random.default_rng(FIXED_CROPS_SEED), cfg.eval_crops)) if cfg.eval_every else None
    if fixed is not None:
        fixed = fixed.to(cfg.device)
    evals = ck.get("evals", []) if ck is not None else []
    if fixed is not None and (not evals or evals[-1]["step"] != step):  # where this run starts from
        evals.append({"step": step, **fixed_crop_loss(model, fixed, lambdas)})
        if not cfg.progress:
            _log_eval(log, evals[-1])
    cfg_dict = asdict(cfg)
    stages.append({"from_step": step, "to_step": step, "lr": cfg.lr,
                   **({"lambda": cfg.lmbda} if len(lambdas) == 1 else
                      {"lambdas": list(lambdas), "gain_lr_scale": GAIN_LR_SCALE,
                       **({"level_weights": list(cfg.level_weights)} if draw is not None else {})}),
                   "batch": cfg.batch,
                   "crop": cfg.crop, "threads": cfg.threads, "seed": cfg.seed,
                   "quant": cfg.quant, "freeze": cfg.freeze, "init": init,
                   **{k: v for k, v in (("device", cfg.device), ("crops", cfg.crops), ("bf16", cfg.bf16),
                                        ("compile", cfg.compile)) if v not in (None, False, "cpu")},
                   **({"optimizer": f"fresh, lr warmed up from step {warm_from}"}
                      if ck is not None and ck.get("optimizer") is None else {})})

    def state():
        stages[-1]["to_step"] = step
        return {
            "stages": stages,
            "config": cfg_dict, "model": _to_cpu(model.state_dict()), "optimizer": _to_cpu(opt.state_dict()),
            "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if cfg.device == "cuda" else None,
            "step": step, "elapsed": elapsed, "history": history, "data_images": len(data),
            "evals": evals, "warmup_from": warm_from,
            "crops_rng": data.rng_state() if cfg.crops else None,
        }

    def save():
        if cfg.pieces:
            from .pieces import write_pieces

            write_pieces(out, state())
        else:
            save_checkpoint(out, state())

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, mininterval=10, dynamic_ncols=False, ascii=True)
    start = time.monotonic()
    run_start_elapsed = elapsed
    last_ck = start
    acc = {"loss": 0.0, "mse": 0.0, "bpp": 0.0, "n": 0}
    skipped = 0
    with sigterm_as_interrupt(), grad_mode_restored(), retained_heap():
        try:
            while step < cfg.steps:
                if cfg.time_limit_minutes is not None and time.monotonic() - start > 60 * cfg.time_limit_minutes:
                    break
                if cfg.crops:
                    x = data.batch(cfg.batch)
                else:
                    x = to_tensor(data.batch(rng, cfg.batch)).to(cfg.device, non_blocking=True)
                lmbda = lambdas[0]
                if len(lambdas) > 1:  # a variable-rate model: this batch's level
                    level = int(rng.integers(len(lambdas)) if draw is None else rng.choice(len(lambdas), p=draw))
                    model.quality, lmbda = level + 1, lambdas[level]
                res = rd_loss(fwd(x), x, lmbda)
                opt.zero_grad(set_to_none=True)
                res["loss"].backward()
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip or float("inf"))
                if not torch.isfinite(norm):  # skip a non-finite step instead of poisoning the weights
                    skipped += 1
                    if skipped > 100:
                        raise FloatingPointError("training diverged: 100 non-finite gradients")
                    continue
                if warm_from is not None and step - warm_from < WARMUP_STEPS:
                    for g in opt.param_groups:
                        g["lr"] = cfg.lr * g.get("lr_scale", 1.0) * (step - warm_from + 1) / WARMUP_STEPS
                opt.step()
                step += 1
                now = {k: float(res[k].detach()) if res[k] is not None else math.nan for k in ("loss", "mse", "bpp")}
                for k, v in now.items():
                    acc[k] += v
                acc["n"] += 1
                elapsed = run_start_elapsed + time.monotonic() - start
                if step % 50 == 0 or step == cfg.steps:
                    n = acc["n"]
                    row = {"step": step, "elapsed": round(elapsed, 1), "loss": acc["loss"] / n,
                           "bpp": acc["bpp"] / n, "psnr": _psnr(acc["mse"] / n)}
                    history.append(row)
                    acc = {"loss": 0.0, "mse": 0.0, "bpp": 0.0, "n": 0}
                    if bar is None:
                        log(f"step {step} loss {row['loss']:.4f} bpp {row['bpp']:.4f} psnr {_db(row['psnr'])}")
                if fixed is not None and step % cfg.eval_every == 0:
                    evals.append({"step": step, **fixed_crop_loss(model, fixed, lambdas)})
                    if bar is None:
                        _log_eval(log, evals[-1])
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        bar.set_postfix(loss=f"{now['loss']:.3f}", bpp=f"{now['bpp']:.3f}",
                                        psnr=_db(_psnr(now["mse"])), refresh=False)
                if time.monotonic() - last_ck > 60 * cfg.checkpoint_minutes:
                    save()
                    last_ck = time.monotonic()
            if fixed is not None and evals[-1]["step"] != step:  # where this run ends (steps or time limit)
                evals.append({"step": step, **fixed_crop_loss(model, fixed, lambdas)})
                if bar is None:
                    _log_eval(log, evals[-1])
        finally:
            if bar is not None:
                bar.close()
            if step > 0:
                save()
    return {"step": step, "elapsed": elapsed, "last": history[-1] if history else None}


def _to_cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU (itself where all are)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


#: seed of the fixed evaluation crops, apart from the training seed so every run sees the same ones
FIXED_CROPS_SEED = 20181116


def fixed_crop_loss(model, x, lmbda) -> dict:
    """{"loss", "bpp", "psnr"} (floats) of ``model`` on the batch ``x`` through rounded latents
    (eval mode), leaving the model in training mode. ``lmbda``: one lambda, or a variable-rate
    model's lambdas of levels 1, 2, ...: then the means over the levels, and "levels" with each
    level's numbers."""
    import torch

    if isinstance(lmbda, (tuple, list)) and len(lmbda) == 1:
        lmbda = lmbda[0]
    if isinstance(lmbda, (tuple, list)):
        levels = []
        for i, lam in enumerate(lmbda):
            model.quality = i + 1
            levels.append({"quality": i + 1, **fixed_crop_loss(model, x, lam)})
        mean = {k: round(sum(v[k] for v in levels) / len(levels), 5) for k in ("loss", "bpp", "psnr")}
        return {**mean, "levels": levels}
    model.eval()
    try:
        with torch.no_grad():
            res = rd_loss(model(x), x, lmbda)
    finally:
        model.train()
    return {"loss": round(float(res["loss"]), 5), "bpp": round(float(res["bpp"]), 5),
            "psnr": round(_psnr(res["mse"]), 4)}


def _log_eval(log, e: dict) -> None:
    log(f"step {e['step']} fixed crops: loss {e['loss']:.4f} bpp {e['bpp']:.4f} psnr {e['psnr']:.2f}")


def _legacy_stage(ck: dict) -> dict:
    """The one stage entry for a checkpoint written before stages were recorded."""
    cfg = ck["config"]
    return {"from_step": 0, "to_step": ck["step"], "lr": cfg["lr"], "lambda": cfg["lmbda"], "batch": cfg["batch"],
            "crop": cfg["crop"], "threads": cfg["threads"], "seed": cfg["seed"],
            "init": {"path": cfg["init"], "step": None} if cfg.get("init") else None,
            "note": "runs before stages were recorded, with the settings of the last of them"}


def _psnr(mse) -> float | None:
    """PSNR (dB) of an MSE on 0..1 pixels (float or torch scalar); None where the distortion was
    not computed (frozen transforms: None or NaN)."""
    from ..metrics import psnr_from_mse

    mse = None if mse is None else float(mse)
    return None if mse is None or math.isnan(mse) else psnr_from_mse(mse * 255**2)


def _db(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"
