"""The rewrites that benchmarks/bench_train.py times against the library's one-channel
convolutions compute what the library does: the table's verdicts rest on it."""

import pytest
import torch

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("bench_train")


def test_every_rewrite_of_a_one_channel_convolution_equals_the_library(bench):
    layers = bench.one_channel_convs()
    assert len(layers) == 3
    for layer, (tensors, grad, variants) in layers.items():
        names = list(variants)
        assert len(names) >= 2, layer
        expected_out = variants[names[0]]()  # the library's own path comes first
        expected = torch.autograd.grad(expected_out, tensors, grad)
        for name in names[1:]:
            out = variants[name]()
            torch.testing.assert_close(out, expected_out, rtol=1e-5, atol=1e-5, msg=name)
            for got, want in zip(torch.autograd.grad(out, tensors, grad), expected, strict=True):
                # weight gradients sum 25,088 terms: float rounding scales with their size
                scale = want.abs().max().item()
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_the_comparison_catches_a_wrong_rewrite(bench):
    """The check above can fail: the same convolution with its taps flipped differs."""
    tensors, _, variants = bench.one_channel_convs()["G's last (16 -> 1, 3x3)"]
    x, weight, bias = tensors
    flipped = torch.nn.functional.conv2d(x, weight.flip(-1), bias, 1, 1)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(
            flipped, variants["library, channels-last"](), rtol=1e-5, atol=1e-5
        )
