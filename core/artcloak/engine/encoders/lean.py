"""Less memory for gradients through a frozen encoder, with the same arithmetic.

Autograd keeps every convolution's input to compute the *weight* gradient, and both the
input and the output of each GroupNorm + SiLU pair. A frozen encoder needs neither: the
gradient with respect to the image needs only the weights, and GroupNorm + SiLU can be
recomputed from its input in the backward pass (a cheap, memory-bound step). Of the six
full-size tensors a ResNet block keeps, two remain; the step costs one extra GroupNorm. The
backward steps call the kernels autograd calls, so the gradient is the same to the bit.
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
        return input_gradient(grad, ctx.conv, ctx.input_shape), None


def input_gradient(grad: Tensor, conv: nn.Conv2d, input_shape: torch.Size) -> Tensor:
    """The convolution's input gradient as the transposed convolution of ``grad``: the same
    arithmetic as autograd's, without ``torch.nn.grad.conv2d_input``'s stand-in input, which
    the CPU backward copies in full: one more full-size tensor and a slower kernel."""
    sizes = zip(input_shape[-2:], grad.shape[-2:], conv.kernel_size, conv.stride, conv.padding,
                conv.dilation, strict=True)  # fmt: skip
    # The input rows a strided convolution skipped at its end: conv_transpose2d's output padding.
    extra = [i - ((o - 1) * s - 2 * p + d * (k - 1) + 1) for i, o, k, s, p, d in sizes]
    return F.conv_transpose2d(grad, conv.weight.to(grad.dtype), None, conv.stride, conv.padding,
                              extra, conv.groups, conv.dilation)  # fmt: skip


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
        norm, groups = ctx.norm, ctx.norm.num_groups
        # The kernels autograd would call, one at a time, so that the recomputed GroupNorm output
        # is freed before its input gradient is made (a full-size SD VAE block at 512 px: four
        # full-size tensors at once instead of six).
        count, channels, pixels = x.shape[0], x.shape[1], x[0, 0].numel()
        aten = torch.ops.aten
        normed, mean, rstd = aten.native_group_norm(
            x, norm.weight, norm.bias, count, channels, pixels, groups, norm.eps
        )
        grad_normed = aten.silu_backward(grad, normed)
        del normed
        grad_input, _, _ = aten.native_group_norm_backward(
            grad_normed, x, mean, rstd, norm.weight, count, channels, pixels, groups,
            [True, False, False],
        )  # fmt: skip
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
