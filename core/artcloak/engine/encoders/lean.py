"""Less memory for gradients through a frozen encoder, with the same arithmetic.

Autograd keeps every convolution's input to compute the *weight* gradient, and both the
input and the output of each GroupNorm + SiLU pair. A frozen encoder needs neither: the
gradient with respect to the image needs only the weights, and GroupNorm + SiLU can be
recomputed from its input in the backward pass (a cheap, memory-bound step). Of the six
full-size tensors a ResNet block keeps, two remain; the step costs one extra GroupNorm.
"""

from __future__ import annotations

import types

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class _FrozenConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, conv: nn.Conv2d) -> Tensor:
        ctx.conv = conv
        ctx.input_shape = x.shape
        return F.conv2d(
            x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups
        )

    @staticmethod
    def backward(ctx, grad: Tensor):
        conv = ctx.conv
        grad_input = torch.nn.grad.conv2d_input(
            ctx.input_shape, conv.weight.to(grad.dtype), grad, conv.stride, conv.padding,
            conv.dilation, conv.groups,
        )  # fmt: skip
        return grad_input, None


class FrozenConv2d(nn.Conv2d):
    """A Conv2d whose backward gives the input gradient only and keeps no activation."""

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled() or not x.requires_grad or torch.is_autocast_enabled():
            return super().forward(x)
        return _FrozenConvFunction.apply(x, self)


class _GroupNormSiLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, norm: nn.GroupNorm) -> Tensor:
        ctx.norm = norm
        ctx.save_for_backward(x)
        return F.silu(F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps))

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        norm = ctx.norm
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            y = F.silu(F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps))
            (grad_input,) = torch.autograd.grad(y, x, grad)
        return grad_input, None


def group_norm_silu(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    if not torch.is_grad_enabled() or not x.requires_grad or torch.is_autocast_enabled():
        return F.silu(norm(x))
    return _GroupNormSiLUFunction.apply(x, norm)


def _lean_resnet_forward(block, input_tensor: Tensor, temb=None, *args, **kwargs) -> Tensor:
    hidden = block.conv1(group_norm_silu(input_tensor, block.norm1))
    hidden = block.conv2(group_norm_silu(hidden, block.norm2))
    shortcut = input_tensor if block.conv_shortcut is None else block.conv_shortcut(input_tensor)
    return (shortcut + hidden) / block.output_scale_factor


def _plain_resnet(block: nn.Module) -> bool:
    """A ResNet block of the shape VAE encoders use: no time embedding, no resampling."""
    return (
        type(block).__name__ == "ResnetBlock2D"
        and getattr(block, "upsample", None) is None
        and getattr(block, "downsample", None) is None
        and getattr(block, "time_emb_proj", None) is None
        and isinstance(getattr(block, "norm1", None), nn.GroupNorm)
        and isinstance(getattr(block, "nonlinearity", None), nn.SiLU)
    )


def make_lean(module: nn.Module) -> int:
    """Make a frozen encoder keep less for its backward pass, in place; returns how many
    layers changed. Only for modules whose parameters never need gradients."""
    changed = 0
    for child in module.modules():
        if type(child) is nn.Conv2d and child.padding_mode == "zeros":
            child.__class__ = FrozenConv2d
            changed += 1
        elif _plain_resnet(child):
            child.forward = types.MethodType(_lean_resnet_forward, child)
            changed += 1
    return changed
