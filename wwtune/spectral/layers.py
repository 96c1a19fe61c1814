"""From what a user has (module, state_dict, checkpoint file, Hugging Face folder) to named weight matrices.

Every analyzable weight becomes a :class:`WeightSpec`: a name, a layer type, its shape in the layout
(out, in, *kernel) and a loader. Nothing is loaded until the loader is called, so a folder of sharded
safetensors is read tensor by tensor and memory stays bounded by the largest tensor.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import torch
from torch import nn

__all__ = ["FILE_SUFFIXES", "FileTensor", "RowBlock", "WeightSpec", "weight_specs"]

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
_CONV_TYPES = {3: "conv1d", 4: "conv2d", 5: "conv3d"}
# Wrappers that training scripts commonly save around the real state_dict.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")


@dataclass
class WeightSpec:
    """One analyzable weight: ``load()`` returns it as (out, in, *kernel), on CPU, original dtype."""

    name: str
    layer_type: str
    shape: tuple[int, ...]
    load: Callable[[], torch.Tensor]
    #: index of the owning module in ``model.named_modules()`` (WeightWatcher's layer_id); None: not a module
    layer_id: int | None = None
    #: WeightWatcher's ``name`` for a module's weight: the last part of the module path (None: the full name)
    short_name: str | None = None
    #: for one kernel position of an unpooled conv layer (WeightWatcher's ``pool=False``): the layer's rf
    slice_of_rf: int | None = None

    @property
    def rf(self) -> int:
        return int(math.prod(self.shape[2:])) if len(self.shape) > 2 else 1

    @property
    def N(self) -> int:  # noqa: N802 - WeightWatcher's name
        return max(self.shape[0], self.shape[1])

    @property
    def M(self) -> int:  # noqa: N802
        return min(self.shape[0], self.shape[1])

    @property
    def num_evals(self) -> int:
        return self.M * self.rf


def _const(t: torch.Tensor) -> Callable[[], torch.Tensor]:
    return lambda: t


@dataclass(frozen=True)
class FileTensor:
    """Loader of one tensor of a safetensors file, read on call; picklable (path and key only), so another
    process can read its own tensor where the file lies (``from_file`` is True)."""

    path: str
    key: str
    from_file: bool = True

    def __call__(self) -> torch.Tensor:
        with safetensors.safe_open(self.path, framework="pt") as f:
            return f.get_tensor(self.key)


@dataclass(frozen=True)
class RowBlock:
    """Rows ``[start, stop)`` of what ``load`` returns (one block of a packed q/k/v weight)."""

    load: Callable[[], torch.Tensor]
    start: int
    stop: int

    @property
    def from_file(self) -> bool:
        return bool(getattr(self.load, "from_file", False))

    def __call__(self) -> torch.Tensor:
        return self.load()[self.start : self.stop]


def _split_qkv(
    name: str, weight: torch.Tensor | None, shape: tuple[int, ...], load: Callable[[], torch.Tensor]
) -> list[WeightSpec]:
    """Split a packed (3E, E) in_proj weight into its Q, K, V blocks named ``<name>.q/.k/.v``."""
    if len(shape) != 2 or shape[0] % 3:
        return [WeightSpec(name, "dense", shape, load)]
    e = shape[0] // 3
    out = []
    for idx, part in enumerate("qkv"):
        out.append(
            WeightSpec(f"{name}.{part}", "dense", (e, shape[1]), RowBlock(load, idx * e, (idx + 1) * e))
        )
    return out


def _is_float(t: Any) -> bool:
    return (
        isinstance(t, torch.Tensor)
        and t.is_floating_point()
        and not isinstance(t, nn.parameter.UninitializedParameter)
    )


def _module_specs(model: nn.Module) -> list[WeightSpec]:
    specs: list[WeightSpec] = []
    for layer_id, (mname, mod) in enumerate(model.named_modules()):
        for spec in _one_module_specs(mname, mod):
            spec.layer_id = layer_id
            spec.short_name = mname.rsplit(".", 1)[-1] if mname else spec.name
            specs.append(spec)
    return specs


def _one_module_specs(mname: str, mod: nn.Module) -> list[WeightSpec]:
    specs: list[WeightSpec] = []
    if isinstance(mod, nn.MultiheadAttention):
        base = mname or "attn"
        if _is_float(mod.in_proj_weight):
            w = mod.in_proj_weight.detach()
            specs += _split_qkv(f"{base}.in_proj", w, tuple(w.shape), _const(w))
        else:
            for part in "qkv":
                w = getattr(mod, f"{part}_proj_weight", None)
                if _is_float(w):
                    w = w.detach()
                    specs.append(WeightSpec(f"{base}.in_proj.{part}", "dense", tuple(w.shape), _const(w)))
        return specs  # out_proj is a Linear submodule, visited on its own
    w = getattr(mod, "weight", None)
    if not _is_float(w):
        return specs
    w = w.detach()
    name = mname or "weight"
    if isinstance(mod, nn.Linear) and w.dim() == 2:
        specs.append(WeightSpec(name, "dense", tuple(w.shape), _const(w)))
    elif isinstance(mod, nn.Embedding) and w.dim() == 2:
        specs.append(WeightSpec(name, "embedding", tuple(w.shape), _const(w)))
    elif isinstance(mod, nn.modules.conv._ConvNd) and w.dim() in _CONV_TYPES:
        if mod.transposed:  # ConvTranspose stores (in, out, *k)
            shape = (w.shape[1], w.shape[0], *w.shape[2:])
            specs.append(WeightSpec(name, _CONV_TYPES[w.dim()], shape, _const(w.transpose(0, 1))))
        else:
            specs.append(WeightSpec(name, _CONV_TYPES[w.dim()], tuple(w.shape), _const(w)))
    elif type(mod).__name__ == "Conv1D" and w.dim() == 2:
        # Hugging Face GPT-2 style Conv1D stores (in, out); detected by name, transformers not imported.
        specs.append(WeightSpec(name, "dense", (w.shape[1], w.shape[0]), _const(w.t())))
    return specs


def _key_spec(key: str, shape: tuple[int, ...], load: Callable[[], torch.Tensor]) -> list[WeightSpec]:
    """Type a state-dict entry by its key and shape; [] for entries that are not layer weights."""
    leaf = key.rsplit(".", 1)[-1]
    if not leaf.endswith("weight") or len(shape) < 2 or len(shape) > 5 or min(shape) == 0:
        return []
    if leaf == "in_proj_weight":
        prefix = key[: -len("_weight")]
        return _split_qkv(prefix, None, shape, load)
    name = key[: -len(".weight")] if key.endswith(".weight") else key
    if leaf in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        name = key[: -len(leaf)] + "in_proj." + leaf[0]
    if len(shape) == 2:
        kind = "embedding" if "embed" in name.lower() else "dense"
        return [WeightSpec(name, kind, shape, load)]
    return [WeightSpec(name, _CONV_TYPES[len(shape)], shape, load)]


def _number_by_keys(specs: list[WeightSpec], keys: list[str]) -> list[WeightSpec]:
    """WeightWatcher's layer_id for a state_dict: its weight entries (any shape, norms included) numbered
    from 1 by module, in the order of the keys; a spec gets the number of the module its key names."""
    ids: dict[str, int] = {}
    for key in keys:
        if key.rsplit(".", 1)[-1].endswith("weight"):
            ids.setdefault(key.rsplit(".", 1)[0] if "." in key else "", len(ids) + 1)
    for s in specs:
        module = s.name.rsplit(".in_proj", 1)[0] if ".in_proj." in s.name else s.name
        s.layer_id = ids.get(module)
    return specs


def _state_dict_specs(sd: Mapping[str, Any], where: str = "the state_dict") -> list[WeightSpec]:
    specs: list[WeightSpec] = []
    skipped: list[tuple[str, str]] = []
    for key, t in sd.items():
        if _is_float(t):
            specs += _key_spec(str(key), tuple(t.shape), _const(t.detach()))
        elif isinstance(t, torch.Tensor) and _key_spec(str(key), tuple(t.shape), _const(t)):
            skipped.append((str(key), str(t.dtype).replace("torch.", "")))
    _log_skipped(skipped, where)
    return _number_by_keys(specs, [str(k) for k in sd])


def _log_skipped(skipped: list[tuple[str, str]], where: str) -> None:
    """Say which layer weights were left out because they are not floating point (int8, bool, ...)."""
    if not skipped:
        return
    shown = ", ".join(f"{key} ({dtype})" for key, dtype in skipped[:10])
    more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    logger.warning(
        "%s: skipped %d weight tensor(s) that are not floating point: %s%s; only float weights have a "
        "spectrum to analyse (dequantize a quantized model first).",
        where,
        len(skipped),
        shown,
        more,
    )


def _unwrap(obj: Any, where: str) -> nn.Module | Mapping[str, Any]:
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        for k in _WRAPPER_KEYS:
            if k in obj and isinstance(obj[k], (Mapping, nn.Module)):
                return _unwrap(obj[k], where)
        raise ValueError(
            f"{where} holds a dict without tensors (keys: {list(obj)[:8]}); expected a "
            f"state_dict, or a checkpoint wrapping one under one of {list(_WRAPPER_KEYS)}."
        )
    raise TypeError(f"{where} holds a {type(obj).__name__}, not a model or state_dict.")


#: how a file torch.save wrote begins: a zip archive (torch >= 1.6) or a pickle (the legacy format)
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


def _check_checkpoint_file(path: Path) -> None:
    """Refuse, naming the file, what is plainly not a checkpoint (before torch says something unhelpful)."""
    if not path.is_file():
        raise ValueError(
            f"{str(path)!r} is not a regular file (a device, a pipe or a socket?): not a PyTorch checkpoint."
        )
    if path.stat().st_size == 0:
        raise ValueError(
            f"{str(path)!r} is empty (0 bytes): not a PyTorch checkpoint; was its write interrupted?"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(_CHECKPOINT_MAGIC):
        raise ValueError(
            f"{str(path)!r} is not a PyTorch checkpoint: it begins with {head!r}, neither a "
            "zip archive (torch.save) nor a pickle (the legacy format)."
        )


def _torch_load(path: Path) -> Mapping[str, Any] | nn.Module:
    _check_checkpoint_file(path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # legacy (non-zip) format cannot be memory-mapped
            if "mmap" not in str(e):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised as a clear boundary error
        text = str(e)
        if "Weights only load failed" in text or "Unsupported global" in text:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" (e.g. {found.group(1)})" if found else ""
            raise ValueError(
                f"{str(path)!r} holds pickled Python objects{what}, not only tensors, and wwtune loads "
                "checkpoints weights-only (unpickling can run code). Save the weights with "
                "torch.save(model.state_dict(), path) or safetensors, or build the model in your own code "
                "and pass it to analyze()."
            ) from None
        first = text.splitlines()[0] if text else ""
        raise ValueError(
            f"cannot read {str(path)!r} as a PyTorch checkpoint: the file is damaged or truncated "
            f"({type(e).__name__}{': ' + first if first else ''})."
        ) from None
    return _unwrap(obj, repr(str(path)))


def _safetensors_specs(path: Path) -> list[WeightSpec]:
    specs: list[WeightSpec] = []
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            entries = [(k, tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()]
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"cannot read {str(path)!r} as safetensors ({type(e).__name__}: {e}).") from None
    skipped = [
        (k, str(d))
        for k, shape, d in entries
        if not str(d).upper().startswith(("F", "BF")) and _key_spec(k, shape, lambda: torch.empty(0))
    ]
    _log_skipped(skipped, repr(str(path)))
    for key, shape, dtype in entries:
        if str(dtype).upper().startswith(("F", "BF")):
            specs += _key_spec(key, shape, FileTensor(str(path), key))
    return _number_by_keys(specs, [k for k, _, _ in entries])


def _file_specs(path: Path) -> list[WeightSpec]:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _safetensors_specs(path)
    if suffix in (".pt", ".pth", ".bin"):
        obj = _torch_load(path)
        return _module_specs(obj) if isinstance(obj, nn.Module) else _state_dict_specs(obj, repr(str(path)))
    raise ValueError(
        f"unsupported file extension {suffix!r} for {str(path)!r}; supported: "
        f"{', '.join(FILE_SUFFIXES)} or a Hugging Face model folder."
    )


def _roots(folder: Path) -> list[Path]:
    """Where a model folder's weight files may live: the folder itself, and for a Hugging Face hub cache
    snapshot (``.../snapshots/<revision>``, whose files are links into the repository's ``blobs/``) that
    ``blobs/`` folder."""
    inside = folder.resolve()
    return [inside, inside.parent.parent / "blobs"] if inside.parent.name == "snapshots" else [inside]


def _outside(folder: Path, names: Sequence[str]) -> list[str]:
    """The entries of ``names`` whose file (links followed) lies outside ``folder`` (:func:`_roots`)."""
    roots = _roots(folder)
    return [n for n in names if not any((folder / n).resolve().is_relative_to(r) for r in roots)]


def _weight_map(index: Path) -> dict[str, str]:
    """The ``weight_map`` of a shard index file, checked: tensor name -> shard file name."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{str(index)!r} is not a valid shard index ({type(e).__name__}: {e}).") from None
    bad = (
        [f"weight_map is a {type(weight_map).__name__}"]
        if not isinstance(weight_map, dict)
        else [f"{k!r}: {v!r}" for k, v in weight_map.items() if not isinstance(v, str) or not v]
    )
    if bad:
        raise ValueError(
            f"{str(index)!r} is not a valid shard index: weight_map must map tensor names to shard file "
            f"names, but has {', '.join(bad[:3])}" + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        )
    return weight_map


def _folder_specs(folder: Path) -> list[WeightSpec]:
    """A Hugging Face folder: sharded or single safetensors preferred, else PyTorch .bin/.pt files."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            weight_map = _weight_map(index)
            shards = sorted(set(weight_map.values()))
            outside = _outside(folder, shards)
            if outside:
                raise ValueError(
                    f"{str(index)!r} lists shard(s) outside the model folder: {outside}; "
                    "shard entries must be file names inside the folder."
                )
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise FileNotFoundError(f"shards listed in {str(index)!r} are missing: {missing}")
            return _shard_specs(folder, shards, weight_map)
    files = sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" and p.is_file())
    if not files:
        files = sorted(
            p
            for p in folder.iterdir()
            if p.suffix in (".bin", ".pt", ".pth")
            and p.is_file()
            and not p.name.startswith(("training_args", "optimizer", "scheduler", "rng_state"))
        )
    if not files:
        raise FileNotFoundError(f"no weight files ({', '.join(FILE_SUFFIXES)}) in folder {str(folder)!r}.")
    outside = _outside(folder, [f.name for f in files])
    if outside:  # as a shard index naming such a file: a link out of the folder is refused, not followed
        raise ValueError(
            f"the model folder {str(folder)!r} holds weight file(s) that link outside it: {outside}; "
            "weight files must lie inside the folder."
        )
    return [s for f in files for s in _file_specs(f)]


def _shard_specs(folder: Path, shards: list[str], weight_map: Mapping[str, str]) -> list[WeightSpec]:
    """The weights of every readable shard; an unreadable one is reported (with the tensors it should
    hold) and the others are analysed. Raises only when no shard can be read."""
    specs: list[WeightSpec] = []
    broken: list[str] = []
    for shard in shards:
        try:
            specs += _file_specs(folder / shard)
        except ValueError as e:
            lost = sorted(k for k, v in weight_map.items() if v == shard)
            shown = ", ".join(lost[:8]) + (f" and {len(lost) - 8} more" if len(lost) > 8 else "")
            logger.warning(
                "shard %s is unreadable (%s); its %d tensor(s) are not analysed: %s",
                shard,
                e,
                len(lost),
                shown,
            )
            broken.append(f"{shard}: {e}")
    if broken and not specs:
        raise ValueError(f"no shard of {str(folder)!r} could be read: {'; '.join(broken)}")
    if len(shards) > 1:
        for s in specs:  # numbered again over all shards, in the order of their modules
            s.layer_id = None
    return specs


def weight_specs(source: Any) -> list[WeightSpec]:
    """All analyzable weights of ``source`` (nn.Module, state_dict, checkpoint file or HF folder).

    Raises:
        TypeError: ``source`` is none of the supported kinds.
        FileNotFoundError: a path that does not exist, or a folder without weight files.
        ValueError: an unsupported file extension or an unreadable file.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return _folder_specs(path)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {str(path)!r}")
        return _file_specs(path)
    if isinstance(source, nn.Module):
        return _module_specs(source)
    if isinstance(source, Mapping):
        obj = _unwrap(source, "the mapping passed to analyze()")
        return _module_specs(obj) if isinstance(obj, nn.Module) else _state_dict_specs(obj)
    kinds = f"an nn.Module, a state_dict, a checkpoint ({', '.join(FILE_SUFFIXES)}) or a Hugging Face folder"
    raise TypeError(f"analyze() needs {kinds}, but got {type(source).__name__}.")
