"""Checkpoint files as transformers writes them: find, read, write. No model knowledge here.

Reading never runs code: safetensors, or a legacy `pytorch_model.bin` through
`torch.load(..., weights_only=True)`. Every failure names the file and what to do.
"""

import json
import os
import re

import numpy as np
from transformers.utils import cached_file

SAFE_WEIGHTS, SAFE_INDEX = "model.safetensors", "model.safetensors.index.json"
TORCH_WEIGHTS, TORCH_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
_SEARCH_ORDER = (SAFE_WEIGHTS, SAFE_INDEX, TORCH_WEIGHTS, TORCH_INDEX)


def check_readable(path):
    """A PermissionError naming `path` if it exists but this process may not read it (or list it, for a
    folder): otherwise an unlistable folder reads as an empty one and an unreadable file as a corrupt one."""
    if not os.path.exists(path):
        return
    mode = os.R_OK | (os.X_OK if os.path.isdir(path) else 0)
    if not os.access(path, mode):
        raise PermissionError(f"{path}: permission denied (this process may not read it); fix its permissions "
                              "(e.g. chmod -R a+rX) or copy the checkpoint somewhere readable")


def _find(name_or_path, filename, hub):
    return cached_file(name_or_path, filename, _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False, **hub)


def resolve_checkpoint_files(name_or_path, hub):
    """The weight files of a folder or cached hub repo, safetensors first; shards via their index."""
    if os.path.isdir(name_or_path):
        check_readable(name_or_path)
    for filename in _SEARCH_ORDER:
        path = _find(name_or_path, filename, hub)
        if path is None:
            continue
        if not filename.endswith(".json"):
            return [path]
        try:
            with open(path, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as err:
            raise OSError(f"{path} is not a valid shard index (a JSON object with a 'weight_map'): {err}; "
                          "re-save the checkpoint or download it again") from err
        files = []
        for shard in shards:
            shard_path = _find(name_or_path, shard, hub)
            if shard_path is None:
                raise OSError(f"{path} lists the shard {shard!r}, which is missing next to it; "
                              "download or copy every shard of the checkpoint")
            files.append(shard_path)
        return files
    where = ("in that folder" if os.path.isdir(name_or_path) else
             "in the Hugging Face cache (this machine loads offline: download it once where there is "
             "network, e.g. `hf download <id>`, or pass a local folder)")
    raise OSError(f"no weights for {str(name_or_path)!r}: looked for {', '.join(_SEARCH_ORDER)} {where}")


def read_checkpoint(path):
    """name → numpy array (bfloat16 stays ml_dtypes.bfloat16; callers cast)."""
    check_readable(path)  # else reported as a corrupt file
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    return _read_torch_pickle(path)


def _read_safetensors(path):
    from safetensors import safe_open
    try:
        with safe_open(path, framework="numpy") as f:
            return {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt headers
        raise OSError(f"{path} is not a readable safetensors file ({err}); it may be truncated or corrupt: "
                      "download or save the checkpoint again") from err


def _read_torch_pickle(path):
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise OSError(f"{path} could not be read with torch.load(weights_only=True) ({err}); BF never unpickles "
                      "code, so a corrupt file or one that needs arbitrary objects is refused: re-save it "
                      "as safetensors with transformers' save_pretrained") from err
    if not isinstance(state, dict):
        raise OSError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    out = {}
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):  # e.g. a training checkpoint {"state_dict": ..., "epoch": 3}
            raise OSError(f"{path} is not a state dict of tensors: its entry {key!r} is a {type(tensor).__name__}; "
                          "save model.state_dict() itself, or the model with save_pretrained")
        if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.float()  # numpy has no bfloat16; BF casts to its own dtype anyway
        out[key] = tensor.detach().cpu().numpy()
    return out


def _bytes(size):
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?B)\s*", str(size).upper())
    if not match:
        raise ValueError(f"max_shard_size must be an int (bytes) or like '500MB' / '5GB', got {size!r}")
    return int(match.group(1)) * {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}[match.group(2)]


def write_checkpoint(tensors, folder, safe_serialization=True, max_shard_size="5GB"):
    """Write name → numpy array as one file, or shards plus an index when over max_shard_size."""
    limit = _bytes(max_shard_size)
    shards, current, size = [], {}, 0
    for name, array in tensors.items():
        if current and size + array.nbytes > limit:
            shards.append(current)
            current, size = {}, 0
        current[name] = np.ascontiguousarray(array)
        size += array.nbytes
    shards.append(current)
    single, index = (SAFE_WEIGHTS, SAFE_INDEX) if safe_serialization else (TORCH_WEIGHTS, TORCH_INDEX)
    stem, ext = single.rsplit(".", 1)
    names = [single] if len(shards) == 1 else [f"{stem}-{i + 1:05d}-of-{len(shards):05d}.{ext}"
                                               for i in range(len(shards))]
    for stale in _SEARCH_ORDER:  # a stale file of the other layout would be loaded first
        if os.path.exists(os.path.join(folder, stale)):
            os.remove(os.path.join(folder, stale))
    for name, shard in zip(names, shards):
        _write_one(shard, os.path.join(folder, name), safe_serialization)
    if len(shards) > 1:
        weight_map = {key: name for name, shard in zip(names, shards) for key in shard}
        total = sum(a.nbytes for a in tensors.values())
        with open(os.path.join(folder, index), "w", encoding="utf-8") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def _write_one(shard, path, safe_serialization):
    if safe_serialization:
        from safetensors.numpy import save_file
        save_file(shard, path, metadata={"format": "pt"})
    else:
        import torch
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in shard.items()}, path)  # a writable copy
