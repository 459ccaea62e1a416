"""Convert VAE weights between the original SD ("LDM") key layout and diffusers'."""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor


def _is_original_layout(weights: Mapping[str, Tensor]) -> bool:
    return any(k.startswith(("encoder.down.", "encoder.mid.", "decoder.up.")) for k in weights)


_RESNET_RENAMES = {"nin_shortcut": "conv_shortcut"}
_ATTN_RENAMES = {
    "norm": "group_norm",
    "q": "to_q",
    "k": "to_k",
    "v": "to_v",
    "proj_out": "to_out.0",
}
_LEGACY_ATTN_RENAMES = {
    "query": "to_q",
    "key": "to_k",
    "value": "to_v",
    "proj_attn": "to_out.0",
}


def _original_to_diffusers(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original SD (LDM) VAE keys -> diffusers AutoencoderKL keys."""
    up_ids = [int(m.group(1)) for k in weights if (m := re.match(r"decoder\.up\.(\d+)\.", k))]
    n_up = max(up_ids) + 1 if up_ids else 0
    out: dict[str, Tensor] = {}
    for key, tensor in weights.items():
        new_key = key
        squeeze = False
        if m := re.fullmatch(r"(encoder\.quant_conv|decoder\.post_quant_conv)\.(\w+)", key):
            new_key = f"{m[1].split('.')[1]}.{m[2]}"  # BFL's FLUX.2 keeps these inside
        elif m := re.fullmatch(r"(encoder|decoder)\.norm_out\.(\w+)", key):
            new_key = f"{m[1]}.conv_norm_out.{m[2]}"
        elif m := re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(\w+)", key):
            layer = _RESNET_RENAMES.get(m[3], m[3])
            new_key = f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{layer}.{m[4]}"
        elif m := re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(\w+)", key):
            new_key = f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(\w+)", key):
            layer = _RESNET_RENAMES.get(m[3], m[3])
            new_key = f"decoder.up_blocks.{n_up - 1 - int(m[1])}.resnets.{m[2]}.{layer}.{m[4]}"
        elif m := re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(\w+)", key):
            new_key = f"decoder.up_blocks.{n_up - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid\.block_(\d+)\.(\w+)\.(\w+)", key):
            layer = _RESNET_RENAMES.get(m[3], m[3])
            new_key = f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{layer}.{m[4]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(\w+)\.(\w+)", key):
            layer = _ATTN_RENAMES.get(m[2], m[2])
            new_key = f"{m[1]}.mid_block.attentions.0.{layer}.{m[3]}"
            squeeze = m[2] != "norm"
        if squeeze and tensor.ndim > 2:
            tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
        out[new_key] = tensor
    return out


def _fix_legacy_diffusers(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Old diffusers attention names (query/key/value/proj_attn) -> current ones."""
    out: dict[str, Tensor] = {}
    for key, tensor in weights.items():
        m = re.fullmatch(r"(.*\.mid_block\.attentions\.0)\.(query|key|value|proj_attn)\.(\w+)", key)
        if m:
            key = f"{m[1]}.{_LEGACY_ATTN_RENAMES[m[2]]}.{m[3]}"
            if tensor.ndim > 2:
                tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
        out[key] = tensor
    return out
