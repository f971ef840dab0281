#!/usr/bin/env python3
"""Streaming-inference speed of the PyTorch reference FlashDepth, on one CUDA GPU.

Runs the reference code (exported, unmodified, into an ignored folder; see README.md
next to this file) the way its own `eval.dummy_timing=true` inference path does:

* the model is built as the reference's inference set-up builds it, with batch size 1,
  the config's `hybrid_configs`, `training=False` and the config's `model` section as
  keyword arguments, from random weights (seed 0), then moved to CUDA and put in eval mode;
* the input is one fp32 tensor of shape (1, frames, 3, H, W) in ordinary (pageable) host
  memory, used for every item;
* each item is one call of the model's forward under bf16 autocast with the reference's
  own `print_time=True, dummy_timing=True` arguments. That forward walks the frames one by
  one (host-to-device copy of each frame inside the loop), synchronises the GPU before
  frame 5 and after the last frame, and logs the wall time between the two;
* fps = (frames - 5) / that wall time, which is the reference's own formula.

The reference needs a few packages that are not installed on the GPU image (xformers,
flash-attn, the compiled selective-scan extension of mamba_ssm) and one that changed its
API (transformers 5 dropped two class names the vendored mamba_ssm imports). Small
stand-ins for them are put into `sys.modules` before the reference is imported; they are
described in README.md and in `install_shims` below. Nothing in the reference tree is
edited.

Output: one JSON line per timed item (also appended to --out), a JSON error line for a
model that fails (the others still run), and a closing summary line.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SRC = REPO_ROOT / ".ref" / "FlashDepth"

# The reference's modules use relative imports that climb above `flashdepth/` (e.g. the
# model imports `..utils.helpers`), so the exported tree is mounted as one package.
REF_PACKAGE = "flashdepth_reference"

# The reference hard-codes 5 un-timed frames before its timed window.
REF_WARMUP_FRAMES = 5

MODELS = {
    "s": {"config": "configs/flashdepth-s", "hw": (518, 518), "name": "FlashDepth-S"},
    "l": {"config": "configs/flashdepth-l", "hw": (518, 518), "name": "FlashDepth-L"},
    "full": {"config": "configs/flashdepth", "hw": (1148, 2044), "name": "FlashDepth (Full, hybrid)"},
}
ALIASES = {
    "flashdepth-s": "s", "small": "s",
    "flashdepth-l": "l", "large": "l",
    "flashdepth": "full", "f": "full", "hybrid": "full",
}


def emit(record, out_file=None, stream=sys.stdout):
    line = json.dumps(record, separators=(", ", ": "))
    print(line, file=stream, flush=True)
    if out_file is not None:
        out_file.write(line + "\n")
        out_file.flush()


def note(msg):
    print(f"[time_reference] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Config: the reference reads its YAML through Hydra/OmegaConf, which are not on the GPU
# image. The model code needs both attribute access (`cfg.use_hybrid`) and mapping access
# (`cfg['teacher_resolution']`, `**cfg`), so nested dicts become this small dict subclass.
# --------------------------------------------------------------------------------------
class AttrDict(dict):
    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc

    def __setattr__(self, key, value):
        self[key] = value

    def __delattr__(self, key):
        try:
            del self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc


def to_attr(obj):
    if isinstance(obj, dict):
        return AttrDict((k, to_attr(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [to_attr(v) for v in obj]
    return obj


def load_config(src: Path, config_dir: str):
    import yaml

    path = src / config_dir / "config.yaml"
    with open(path, "r", encoding="utf-8") as fh:
        return to_attr(yaml.safe_load(fh))


# --------------------------------------------------------------------------------------
# Stand-ins, installed before the reference is imported.
# --------------------------------------------------------------------------------------
def _sdpa_tokens_major(q, k, v, attn_mask=None, dropout_p=0.0, scale=None, causal=False):
    """Attention for tensors laid out [batch, tokens, heads, head_dim] (the layout that
    xformers and flash-attn take and return), computed by torch's SDPA, which takes
    [batch, heads, tokens, head_dim]: transpose in, transpose back out."""
    import torch.nn.functional as F

    no_heads = q.dim() == 3  # xformers also accepts [batch, tokens, head_dim]
    if no_heads:
        q, k, v = q.unsqueeze(2), k.unsqueeze(2), v.unsqueeze(2)
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    extra = {}
    if scale is not None:
        extra["scale"] = scale
    if kh.shape[1] != qh.shape[1]:
        extra["enable_gqa"] = True
    out = F.scaled_dot_product_attention(
        qh, kh, vh, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=causal, **extra
    )
    out = out.transpose(1, 2)
    return out.squeeze(2) if no_heads else out


def _make_module(name, doc, is_package=False, **attrs):
    mod = types.ModuleType(name, doc)
    if is_package:
        mod.__path__ = []
    mod.__dict__.update(attrs)
    mod.__stand_in__ = True
    return mod


def install_shims(log=note):
    """Put stand-ins into sys.modules. Returns a list of what was installed."""
    import torch

    installed = []

    # 1) xformers: the reference's ViT attention (MemEffAttention) and the hybrid model's
    #    CrossAttention import memory_efficient_attention / unbind / fmha from
    #    xformers.ops. The previous reference timing had no xformers and used SDPA in its
    #    place; the stand-in is installed even where a real xformers exists, so that the
    #    method stays the same on any host. scaled_index_add / index_select_cat / SwiGLU
    #    are left out on purpose: the reference then takes its plain-torch paths for
    #    those (they only matter for nested-tensor inputs and training drop-path).
    class _BlockDiagonalMask:  # only used on the nested-tensor (list input) path
        @classmethod
        def from_seqlens(cls, *args, **kwargs):
            raise NotImplementedError("xformers stand-in: BlockDiagonalMask (nested tensors) is not supported")

    def memory_efficient_attention(query, key, value, attn_bias=None, p=0.0, scale=None, *args, **kwargs):
        if attn_bias is not None and not isinstance(attn_bias, torch.Tensor):
            raise NotImplementedError(
                f"xformers stand-in: attn_bias of type {type(attn_bias).__name__} is not supported"
            )
        return _sdpa_tokens_major(query, key, value, attn_mask=attn_bias, dropout_p=p, scale=scale)

    def unbind(x, dim=0):
        return torch.unbind(x, dim)

    fmha = _make_module(
        "xformers.ops.fmha",
        "stand-in",
        BlockDiagonalMask=_BlockDiagonalMask,
        memory_efficient_attention=memory_efficient_attention,
    )
    ops = _make_module(
        "xformers.ops",
        "stand-in: memory_efficient_attention via torch SDPA",
        is_package=True,
        memory_efficient_attention=memory_efficient_attention,
        unbind=unbind,
        fmha=fmha,
    )
    xformers = _make_module("xformers", "stand-in", is_package=True, ops=ops, __version__="0+sdpa-stand-in")
    sys.modules.update({"xformers": xformers, "xformers.ops": ops, "xformers.ops.fmha": fmha})
    installed.append("xformers.ops.{memory_efficient_attention,unbind,fmha} -> torch SDPA")

    # 2) flash_attn: CrossAttention (hybrid fusion) calls flash_attn_func(q, k, v) at
    #    module level import. Same layout as xformers. Only flash_attn_func is provided:
    #    the vendored mamba_ssm's optional flash_attn imports are inside try/except and
    #    then fall back by themselves.
    def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                        softcap=0.0, alibi_slopes=None, deterministic=False, return_attn_probs=False, **kwargs):
        if tuple(window_size) != (-1, -1) or softcap or alibi_slopes is not None or return_attn_probs:
            raise NotImplementedError("flash_attn stand-in: only plain (optionally causal) attention is supported")
        if causal and q.shape[1] != k.shape[1]:
            raise NotImplementedError("flash_attn stand-in: causal attention needs equal q/k lengths")
        return _sdpa_tokens_major(q, k, v, dropout_p=dropout_p, scale=softmax_scale, causal=causal)

    sys.modules["flash_attn"] = _make_module(
        "flash_attn", "stand-in: flash_attn_func via torch SDPA", flash_attn_func=flash_attn_func,
        __version__="0+sdpa-stand-in",
    )
    installed.append("flash_attn.flash_attn_func -> torch SDPA")

    # 3) selective_scan_cuda: mamba_ssm/__init__ imports ops/selective_scan_interface,
    #    which imports this compiled extension unconditionally. It serves Mamba (v1)
    #    only; FlashDepth uses Mamba2 (Triton SSD kernels), which never calls it.
    if importlib.util.find_spec("selective_scan_cuda") is None:
        def _unavailable(*args, **kwargs):
            raise RuntimeError("selective_scan_cuda stand-in: the Mamba-1 CUDA extension is not built here")

        sys.modules["selective_scan_cuda"] = _make_module(
            "selective_scan_cuda", "stand-in", fwd=_unavailable, bwd=_unavailable
        )
        installed.append("selective_scan_cuda (stub; Mamba-1 only, unused by Mamba2)")
    # causal_conv1d is NOT stubbed: every import of it in the vendored mamba_ssm is inside
    # try/except ImportError, and the vendored Mamba2 pins causal_conv1d_fn = None and
    # runs its depthwise conv with nn.Conv1d.

    # 4) transformers: mamba_ssm/__init__ -> models/mixer_seq_simple -> utils/generation
    #    imports GreedySearchDecoderOnlyOutput and SampleDecoderOnlyOutput, which
    #    transformers 5 removed (they were aliases of GenerateDecoderOnlyOutput). Add the
    #    aliases back where missing. They belong to the LM-generation helpers only.
    try:
        gen = importlib.import_module("transformers.generation")
        missing = [n for n in ("GreedySearchDecoderOnlyOutput", "SampleDecoderOnlyOutput") if not hasattr(gen, n)]
        if missing:
            target = getattr(gen, "GenerateDecoderOnlyOutput", None) or type("GenerateDecoderOnlyOutput", (), {})
            for n in missing:
                setattr(gen, n, target)
            installed.append("transformers.generation." + "/".join(missing) + " -> GenerateDecoderOnlyOutput alias")
        for n in ("TextStreamer",):
            if not hasattr(gen, n):
                setattr(gen, n, type(n, (), {}))
                installed.append(f"transformers.generation.{n} (placeholder)")
        tutils = importlib.import_module("transformers.utils")
        for n, v in (("WEIGHTS_NAME", "pytorch_model.bin"), ("CONFIG_NAME", "config.json")):
            if not hasattr(tutils, n):
                setattr(tutils, n, v)
                installed.append(f"transformers.utils.{n} (placeholder)")
        thub = importlib.import_module("transformers.utils.hub")
        if not hasattr(thub, "cached_file"):
            def cached_file(*args, **kwargs):
                raise RuntimeError("transformers stand-in: no hub access")
            thub.cached_file = cached_file
            installed.append("transformers.utils.hub.cached_file (placeholder)")
    except ImportError:
        placeholder = type("GenerateDecoderOnlyOutput", (), {})

        def cached_file(*args, **kwargs):
            raise RuntimeError("transformers stand-in: no hub access")

        gen = _make_module("transformers.generation", "stand-in", GreedySearchDecoderOnlyOutput=placeholder,
                           SampleDecoderOnlyOutput=placeholder, TextStreamer=type("TextStreamer", (), {}))
        hub = _make_module("transformers.utils.hub", "stand-in", cached_file=cached_file)
        tutils = _make_module("transformers.utils", "stand-in", is_package=True, WEIGHTS_NAME="pytorch_model.bin",
                              CONFIG_NAME="config.json", hub=hub)
        tf = _make_module("transformers", "stand-in", is_package=True, generation=gen, utils=tutils)
        sys.modules.update({"transformers": tf, "transformers.generation": gen,
                            "transformers.utils": tutils, "transformers.utils.hub": hub})
        installed.append("transformers (whole package stand-in; not installed)")

    # 5) huggingface_hub: Mamba2 subclasses PyTorchModelHubMixin (only for save/load
    #    helpers). It is on the GPU image; a plain base class stands in if it is not.
    if importlib.util.find_spec("huggingface_hub") is None:
        sys.modules["huggingface_hub"] = _make_module(
            "huggingface_hub", "stand-in", PyTorchModelHubMixin=type("PyTorchModelHubMixin", (), {})
        )
        installed.append("huggingface_hub.PyTorchModelHubMixin (plain base class; not installed)")

    for line in installed:
        log(f"stand-in: {line}")
    return installed


def mount_reference(src: Path):
    """Make the exported reference importable; return its model module."""
    src = src.resolve()
    if not (src / "flashdepth" / "model.py").is_file():
        raise FileNotFoundError(f"no reference tree at {src} (expected flashdepth/model.py there)")
    # `from mamba_ssm import Mamba2` must find the vendored copy (the reference installs
    # it with pip from mamba/); put it first so that no other mamba_ssm can win.
    mamba_dir = str(src / "mamba")
    if mamba_dir not in sys.path:
        sys.path.insert(0, mamba_dir)
    if str(src) not in sys.path:
        sys.path.append(str(src))
    pkg = types.ModuleType(REF_PACKAGE, "the exported reference tree, mounted as one package")
    pkg.__path__ = [str(src)]
    pkg.__file__ = None
    sys.modules[REF_PACKAGE] = pkg
    return importlib.import_module(REF_PACKAGE + ".flashdepth.model")


# --------------------------------------------------------------------------------------
# Timing hooks. Neither changes what the reference does:
# * the reference reads its clock through the `time` module name bound in its model
#   module; a pass-through object there keeps the two readings at full precision (the
#   logged line rounds the wall time to 10 ms);
# * a logging handler keeps the reference's own "wall time taken ...; fps ..." line.
# --------------------------------------------------------------------------------------
class ClockTap:
    def __init__(self, real_time_module):
        self._real = real_time_module
        self.stamps = []

    def time(self):
        t = self._real.time()
        self.stamps.append(t)
        return t

    def __getattr__(self, name):
        return getattr(self._real, name)


class LogTap(logging.Handler):
    PATTERN = re.compile(r"wall time taken:\s*([0-9.]+);\s*fps:\s*([0-9.]+);\s*num frames:\s*(\d+)")

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.hits = []

    def emit(self, record):
        try:
            m = self.PATTERN.search(record.getMessage())
        except Exception:  # noqa: BLE001 - a bad log record must not stop timing
            return
        if m:
            self.hits.append((float(m.group(1)), float(m.group(2)), int(m.group(3))))


def parse_hw(text):
    m = re.fullmatch(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected HxW, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_models(text):
    keys = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        key = ALIASES.get(part, part)
        if key not in MODELS:
            raise argparse.ArgumentTypeError(f"unknown model {part!r}; choose from {', '.join(MODELS)}")
        if key not in keys:
            keys.append(key)
    if not keys:
        raise argparse.ArgumentTypeError("no model given")
    return keys


def teacher_hw(h, w, teacher_res, patch=14):
    """The hybrid model's own rule for the teacher's input size (read from its forward)."""
    if h > teacher_res:
        tw = int((teacher_res / h) * w)
        return teacher_res, (tw // patch) * patch
    return h, w


def build_model(model_mod, cfg, device):
    import torch

    torch.manual_seed(0)
    model = model_mod.FlashDepth(batch_size=1, hybrid_configs=cfg.hybrid_configs, training=False, **cfg.model)
    return model.to(device).eval()


def run_model(key, args, model_mod, out_file, clock, logtap):
    import torch

    spec = MODELS[key]
    hw = args.hw.get(key) or spec["hw"]
    h, w = hw
    cfg = load_config(args.src, spec["config"])
    if key == "full" and args.teacher_res is not None:
        cfg.hybrid_configs.teacher_resolution = args.teacher_res
    hybrid = bool(cfg.hybrid_configs.get("use_hybrid"))
    t_hw = teacher_hw(h, w, cfg.hybrid_configs.teacher_resolution) if hybrid else None

    device = "cuda" if not args.build_only else ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    model = build_model(model_mod, cfg, device)
    if device == "cuda":
        torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    base = {
        "model": key,
        "name": spec["name"],
        "config": spec["config"],
        "hw": [h, w],
        "teacher_hw": list(t_hw) if t_hw else None,
        "params_m": round(params / 1e6, 2),
    }
    note(f"{key}: built {spec['name']} ({params / 1e6:.1f} M params) on {device} in {build_s:.1f} s")

    if args.build_only:
        emit(dict(base, build_only=True, build_s=round(build_s, 2)), out_file)
        del model
        return {"params_m": base["params_m"], "build_only": True}

    # The eval arguments of the reference's inference(), with dummy timing on. (Only
    # print_time and dummy_timing change what the forward does; the rest are passed
    # because the reference passes them.)
    ev = cfg.get("eval", AttrDict())
    training = cfg.get("training") or AttrDict()
    eval_args = {
        "save_depth_npy": ev.get("save_depth_npy", False),
        "save_vis_map": ev.get("save_vis_map", False),
        "out_video": ev.get("out_video", False),
        "out_mp4": ev.get("out_mp4", False),
        "use_mamba": cfg.model.use_mamba,
        "resolution": ev.get("save_res", 518),
        "print_time": True,
        "loss_type": training.get("loss_type", "l1"),
        "use_all_frames": True,
        "use_metrics": False,
        "dummy_timing": True,
    }
    gif_path = os.path.join(tempfile.gettempdir(), "flashdepth-reference-timing", f"{key}.gif")  # never written

    note(f"{key}: making input (1, {args.frames}, 3, {h}, {w}) fp32 in pageable host memory")
    video = torch.randn(1, args.frames, 3, h, w)  # one tensor for every item, as the reference

    results = []
    for item in range(args.items):
        clock.stamps.clear()
        logtap.hits.clear()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        c0 = time.perf_counter()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(video, gif_path=gif_path, **eval_args)
        torch.cuda.synchronize()
        call_s = time.perf_counter() - c0
        peak = torch.cuda.max_memory_allocated() / 2**30
        peak_reserved = torch.cuda.max_memory_reserved() / 2**30

        timed = args.frames - REF_WARMUP_FRAMES
        if len(clock.stamps) >= 2:
            wall = clock.stamps[-1] - clock.stamps[0]
        elif logtap.hits:
            wall = logtap.hits[-1][0]  # fall back to the logged (10 ms) value
        else:
            raise RuntimeError("the reference's timed window was not seen (no clock readings, no log line)")
        rec = dict(
            base,
            item=item,
            warmup=item == 0,
            frames=args.frames,
            frames_timed=timed,
            fps=round(timed / wall, 3),
            wall_s=round(wall, 4),
            logged_fps=logtap.hits[-1][1] if logtap.hits else None,
            call_s=round(call_s, 3),
            peak_gpu_gib=round(peak, 3),
            peak_gpu_reserved_gib=round(peak_reserved, 3),
        )
        if len(clock.stamps) != 2:
            rec["clock_readings"] = len(clock.stamps)
        emit(rec, out_file)
        results.append(rec)

    if args.profile:
        try:
            profile_model(key, args, model, eval_args, gif_path, h, w, base, out_file)
        except Exception as exc:  # noqa: BLE001 - the timed items above stand without the profile
            traceback.print_exc()
            emit(dict(base, profile=True, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500]), out_file)
    del video, model
    fps = [r["fps"] for r in results]
    later = fps[1:] if len(fps) > 1 else fps
    return {
        "params_m": base["params_m"],
        "hw": [h, w],
        "teacher_hw": base["teacher_hw"],
        "fps_items": fps,
        "fps_after_warmup_min": min(later),
        "fps_after_warmup_max": max(later),
        "fps_after_warmup_median": round(statistics.median(later), 3),
        "peak_gpu_gib": max(r["peak_gpu_gib"] for r in results),
    }


# Kernel families of the per-frame profile, by the CUDA kernel's name (first match wins).
KERNEL_FAMILIES = (
    ("attention", re.compile(r"flash|fmha|attention|sdpa|cudnn.*(mha|attn)", re.I)),
    ("conv", re.compile(r"conv|implicit_gemm|dgrad|wgrad|winograd|xmma_fprop|fprop", re.I)),
    ("gemm", re.compile(r"gemm|cutlass|sm90_xmma|nvjet|cublas|matmul", re.I)),
    ("mamba (triton)", re.compile(r"_chunk|_state|_bmm|ssd|selective|causal_conv", re.I)),
    ("norm", re.compile(r"norm", re.I)),
    ("resize", re.compile(r"upsample|interp|bilinear|bicubic", re.I)),
)


def kernel_family(name):
    for family, pattern in KERNEL_FAMILIES:
        if pattern.search(name):
            return family
    return "elementwise / other"


def profile_model(key, args, model, eval_args, gif_path, h, w, base, out_file):
    """One more forward of `args.profile` frames under torch.profiler (CUDA kernels only): GPU time per frame by
    kernel and by family (attention, gemm, conv, ...), printed as a table and emitted as one JSON line; every kernel
    in launch order goes to <--out>.<model>.kernels.json when --out is given."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    frames = args.profile
    video = torch.randn(1, frames, 3, h, w)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(video, gif_path=gif_path, **eval_args)
        torch.cuda.synchronize()
    kernels = []
    for evt in prof.events():
        if evt.device_type != torch.autograd.DeviceType.CUDA:
            continue
        dur = evt.time_range.elapsed_us()
        if dur <= 0:
            continue
        kernels.append((evt.time_range.start, evt.name, dur))
    kernels.sort()
    by_name, by_family = {}, {}
    for _, name, dur in kernels:
        count, total = by_name.get(name, (0, 0.0))
        by_name[name] = (count + 1, total + dur)
        fam = kernel_family(name)
        by_family[fam] = by_family.get(fam, 0.0) + dur
    total_ms = sum(d for _, _, d in kernels) / 1e3 / frames
    span_ms = (kernels[-1][0] + kernels[-1][2] - kernels[0][0]) / 1e3 / frames if kernels else 0.0
    top = sorted(by_name.items(), key=lambda kv: -kv[1][1])[: args.profile_top]
    note(f"{key}: profile of {frames} frames: {total_ms:.2f} ms of kernels per frame in a {span_ms:.2f} ms span")
    for fam, us in sorted(by_family.items(), key=lambda kv: -kv[1]):
        print(f"  {fam:<22} {us / 1e3 / frames:8.3f} ms/frame", flush=True)
    for name, (count, us) in top:
        print(f"  {us / 1e3 / frames:8.3f} ms/frame {count / frames:7.1f} calls/frame  {name[:140]}", flush=True)
    emit(dict(base, profile=True, profiled_frames=frames, kernel_ms_per_frame=round(total_ms, 3),
              span_ms_per_frame=round(span_ms, 3),
              families_ms_per_frame={f: round(us / 1e3 / frames, 3) for f, us in by_family.items()},
              top=[{"name": n[:300], "calls_per_frame": round(c / frames, 2), "ms_per_frame": round(us / 1e3 / frames, 4),
                    "family": kernel_family(n)} for n, (c, us) in top]), out_file)
    if args.out is not None:
        path = args.out.with_name(f"{args.out.stem}.{key}.kernels.json")
        t0 = kernels[0][0] if kernels else 0
        with open(path, "w", encoding="utf-8") as fh:
            json.dump([{"start_us": round(s - t0, 1), "us": round(d, 2), "name": n[:300]} for s, n, d in kernels], fh)
        note(f"{key}: {len(kernels)} kernels in launch order -> {path}")
    del video


def self_test(model_mod=None):
    """CPU check of the attention stand-ins against plain softmax attention."""
    import torch

    torch.manual_seed(0)
    failures = []

    def ref_attn(q, k, v, scale=None):  # [B, N, H, D]
        qh, kh, vh = (t.transpose(1, 2).float() for t in (q, k, v))
        s = scale if scale is not None else qh.shape[-1] ** -0.5
        a = torch.softmax((qh @ kh.transpose(-1, -2)) * s, dim=-1)
        return (a @ vh).transpose(1, 2)

    xops = sys.modules["xformers.ops"]
    fa = sys.modules["flash_attn"]
    q, k, v = torch.randn(2, 37, 3, 16), torch.randn(2, 53, 3, 16), torch.randn(2, 53, 3, 16)
    checks = {
        "memory_efficient_attention": (xops.memory_efficient_attention(q, k, v), ref_attn(q, k, v)),
        "memory_efficient_attention(scale)": (xops.memory_efficient_attention(q, k, v, scale=0.3),
                                              ref_attn(q, k, v, 0.3)),
        "flash_attn_func": (fa.flash_attn_func(q, k, v), ref_attn(q, k, v)),
        "flash_attn_func(softmax_scale)": (fa.flash_attn_func(q, k, v, softmax_scale=0.2), ref_attn(q, k, v, 0.2)),
    }
    for name, (got, want) in checks.items():
        err = (got.float() - want).abs().max().item()
        ok = got.shape == want.shape and err < 1e-4
        print(f"self-test {name}: shape {tuple(got.shape)} max|err| {err:.2e} {'ok' if ok else 'FAIL'}", flush=True)
        if not ok:
            failures.append(name)

    if model_mod is not None:
        # The reference's own attention classes: its xformers path (stand-in) against its
        # plain-torch path, with the same weights.
        attn_mod = sys.modules[REF_PACKAGE + ".flashdepth.dinov2_layers.attention"]
        plain = attn_mod.Attention(48, num_heads=3, qkv_bias=True)
        meff = attn_mod.MemEffAttention(48, num_heads=3, qkv_bias=True)
        meff.load_state_dict(plain.state_dict())
        x = torch.randn(2, 29, 48)
        with torch.no_grad():
            err = (meff(x) - plain(x)).abs().max().item()
        ok = err < 1e-4
        print(f"self-test reference MemEffAttention vs Attention: max|err| {err:.2e} {'ok' if ok else 'FAIL'}",
              flush=True)
        if not ok:
            failures.append("MemEffAttention")
        ca = attn_mod.CrossAttention(48, num_heads=3, qkv_bias=True)
        x, ctx = torch.randn(2, 29, 48), torch.randn(2, 41, 48)
        with torch.no_grad():
            got = ca(x, ctx)
            qq = ca.q(x).reshape(2, 29, 3, 16)
            kv = ca.kv(ctx).reshape(2, 41, 2, 3, 16)
            want = ca.proj(ref_attn(qq, kv[:, :, 0], kv[:, :, 1]).reshape(2, 29, 48))
        err = (got - want).abs().max().item()
        ok = err < 1e-4
        print(f"self-test reference CrossAttention (flash_attn path): max|err| {err:.2e} {'ok' if ok else 'FAIL'}",
              flush=True)
        if not ok:
            failures.append("CrossAttention")
    return failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=parse_models, default=parse_models("s,l,full"),
                    help="comma list of s, l, full (default: s,l,full)")
    ap.add_argument("--items", type=int, default=3, help="forward calls per model; item 0 includes warm-up (default 3)")
    ap.add_argument("--frames", type=int, default=105,
                    help=f"frames per item (default 105); frames {REF_WARMUP_FRAMES}..N-1 are timed")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON lines to this file (appended)")
    ap.add_argument("--src", type=Path, default=None,
                    help=f"exported reference tree (default: <repo>/.ref/FlashDepth)")
    ap.add_argument("--hw-s", type=parse_hw, default=None, help="input HxW for s (default 518x518)")
    ap.add_argument("--hw-l", type=parse_hw, default=None, help="input HxW for l (default 518x518)")
    ap.add_argument("--hw-full", type=parse_hw, default=None, help="input HxW for full (default 1148x2044)")
    ap.add_argument("--teacher-res", type=int, default=None,
                    help="override hybrid_configs.teacher_resolution for full (config: 490)")
    ap.add_argument("--profile", type=int, default=0, metavar="FRAMES",
                    help="after the timed items, one more forward of FRAMES frames (> 5) under torch.profiler: "
                         "GPU time per frame by kernel and kernel family (default 0: off)")
    ap.add_argument("--profile-top", type=int, default=40, help="kernels listed in the profile (default 40)")
    ap.add_argument("--build-only", action="store_true",
                    help="import and build the models (on CPU if there is no GPU), no timing")
    ap.add_argument("--self-test", action="store_true",
                    help="check the attention stand-ins against plain attention on CPU, then exit")
    args = ap.parse_args(argv)

    if args.frames <= REF_WARMUP_FRAMES:
        ap.error(f"--frames must be more than {REF_WARMUP_FRAMES} (the reference's un-timed frames)")
    if args.profile and args.profile <= REF_WARMUP_FRAMES:
        ap.error(f"--profile must be more than {REF_WARMUP_FRAMES} frames (the reference's forward syncs at frame 5)")
    if args.items < 1:
        ap.error("--items must be at least 1")
    if args.src is None:
        args.src = DEFAULT_SRC
    elif not args.src.is_absolute() and not args.src.exists() and (REPO_ROOT / args.src).exists():
        args.src = REPO_ROOT / args.src
    args.hw = {"s": args.hw_s, "l": args.hw_l, "full": args.hw_full}

    os.environ.setdefault("MPLBACKEND", "Agg")  # the reference's helpers import matplotlib
    # The reference configures the root logger at INFO (utils/logging_config.py); same here.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s", force=True)
    logtap = LogTap()
    logging.getLogger().addHandler(logtap)

    import torch

    out_file = None
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        out_file = open(args.out, "a", encoding="utf-8")

    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "src": str(args.src),
    }
    try:
        import triton  # noqa: F401

        env["triton"] = triton.__version__
    except Exception:  # noqa: BLE001
        env["triton"] = None

    shims = install_shims()
    try:
        model_mod = mount_reference(args.src)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        msg = f"{type(exc).__name__}: {exc}"
        for key in args.models:
            emit({"model": key, "error": f"reference import failed: {msg}"}, out_file)
        emit({"summary": True, "env": env, "stand_ins": shims, "results": {},
              "errors": {k: msg for k in args.models}}, out_file)
        return 2

    if args.self_test:
        failures = self_test(model_mod)
        print(json.dumps({"self_test": "ok" if not failures else "FAIL", "failures": failures}), flush=True)
        return 1 if failures else 0

    if not args.build_only and not torch.cuda.is_available():
        note("no CUDA device: timing needs a GPU (use --build-only or --self-test here)")
        return 2

    # The reference's forward reads its clock through this name; see ClockTap.
    clock = ClockTap(time)
    model_mod.time = clock

    results, errors = {}, {}
    for key in args.models:
        try:
            results[key] = run_model(key, args, model_mod, out_file, clock, logtap)
        except Exception as exc:  # noqa: BLE001 - one model failing must not stop the others
            traceback.print_exc()
            errors[key] = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            emit({"model": key, "error": errors[key]}, out_file)
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    emit({"summary": True, "env": env, "stand_ins": shims, "items": args.items, "frames": args.frames,
          "results": results, "errors": errors}, out_file)
    if out_file is not None:
        out_file.close()
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
