"""The memory-lean backward pass of frozen encoders gives the same gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from artcloak.engine.encoders.lean import FrozenConv2d, input_gradient, make_lean
from artcloak.engine.encoders.model import VaeEncoder
from artcloak.testing import make_tiny_vae


def _encoder(lean: bool) -> VaeEncoder:
    vae = make_tiny_vae(seed=3)
    encoder = VaeEncoder(copy.deepcopy(vae), source="tiny", family="sd1", train_resolution=64)
    if lean:
        assert make_lean(encoder.vae.encoder) > 0
    return encoder


def _gradient(encoder: VaeEncoder, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = image.clone().requires_grad_(True)
    latent = encoder(x)
    (grad,) = torch.autograd.grad(latent.pow(2).sum(), x)
    return latent.detach(), grad


def test_lean_encoder_gives_the_same_latents_and_gradients():
    image = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    plain_latent, plain_grad = _gradient(_encoder(False), image)
    lean_latent, lean_grad = _gradient(_encoder(True), image)
    assert torch.allclose(plain_latent, lean_latent, atol=1e-6)
    assert float((plain_grad - lean_grad).abs().max()) < 1e-4 * float(plain_grad.abs().max())
    assert plain_grad.abs().sum() > 0


def test_lean_layers_behave_normally_without_gradients():
    encoder = _encoder(True)
    assert any(isinstance(m, FrozenConv2d) for m in encoder.modules())
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(encoder(image), _encoder(False)(image), atol=1e-6)


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_lean_gradient_is_autograds_to_the_bit(factor):
    """The same to the bit, whatever the ResNet blocks' output scale (every VAE's is 1)."""
    image = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    plain, lean = _encoder(False), _encoder(True)
    for encoder in (plain, lean):
        blocks = [m for m in encoder.modules() if hasattr(m, "output_scale_factor")]
        assert blocks
        for block in blocks:
            block.output_scale_factor = factor
    plain_latent, plain_grad = _gradient(plain, image)
    lean_latent, lean_grad = _gradient(lean, image)
    assert torch.equal(plain_latent, lean_latent) and torch.equal(plain_grad, lean_grad)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "groups", "size"),
    [(3, 1, 1, 1, 1, (17, 16)), (3, 2, 1, 1, 1, (16, 15)), (3, 2, 0, 1, 1, (17, 18)),
     (4, 2, 1, 1, 2, (16, 16)), (3, 1, 2, 2, 1, (13, 11)), (1, 1, 0, 1, 1, (9, 8))],
)  # fmt: skip
def test_input_gradient_matches_autograd_for_strided_and_odd_convolutions(
    kernel, stride, padding, dilation, groups, size
):
    generator = torch.Generator().manual_seed(2)
    conv = torch.nn.Conv2d(4, 6, kernel, stride, padding, dilation, groups).requires_grad_(False)
    x = torch.rand(2, 4, *size, generator=generator).requires_grad_(True)
    output = conv(x)
    grad = torch.rand(output.shape, generator=generator)
    (expected,) = torch.autograd.grad(output, x, grad)
    got = input_gradient(grad, conv, x.shape)
    assert got.shape == x.shape
    assert torch.allclose(got, expected, atol=1e-6)
