"""Value supports: h and its exact inverse, two-hot targets, expectations."""
import numpy as np
import pytest
import torch

from ezero_async.learner.support import EPS, Support, h, h_inv


def test_h_matches_formula_and_inverse_is_exact():
    x = torch.linspace(-300.0, 300.0, 100_001, dtype=torch.float64)
    expected = torch.sign(x) * (torch.sqrt(x.abs() + 1) - 1) + 0.001 * x
    assert torch.allclose(h(x), expected, atol=1e-12, rtol=0)
    assert (h_inv(h(x)) - x).abs().max().item() < 1e-9
    x32 = x.float()
    assert (h_inv(h(x32)) - x32).abs().max().item() < 1e-4
    assert h(x32).dtype == torch.float32 and h_inv(x32).dtype == torch.float32


@pytest.mark.parametrize("size", [300, 10])
def test_two_hot_round_trip_and_edges(size):
    support = Support(size)
    edge = h_inv(torch.tensor([float(size)], dtype=torch.float64)).item()
    x = torch.cat([torch.linspace(-min(300.0, edge), min(300.0, edge), 20_001, dtype=torch.float64),
                   torch.tensor([edge, -edge], dtype=torch.float64)])
    phi = support.two_hot(x)
    assert phi.shape == (x.shape[0], 2 * size + 1) and phi.dtype == torch.float32
    assert torch.allclose(phi.sum(1), torch.ones(x.shape[0]), atol=1e-6)
    assert (phi >= 0).all() and ((phi > 0).sum(1) <= 2).all()
    back = support.scalar_from_probs(phi.double())
    assert (back.double() - x).abs().max().item() < 1e-4 * max(1.0, edge / 300.0)
    # At the edges all mass sits on the outermost bin.
    assert phi[-2, -1].item() == pytest.approx(1.0) and phi[-1, 0].item() == pytest.approx(1.0)


def test_two_hot_clamps_beyond_the_support():
    support = Support(10)
    edge = h_inv(torch.tensor(10.0, dtype=torch.float64)).item()
    phi = support.two_hot(torch.tensor([edge * 5, -edge * 5, 1e9], dtype=torch.float64))
    assert phi[0, -1] == 1.0 and phi[1, 0] == 1.0 and phi[2, -1] == 1.0


def test_two_hot_splits_between_neighbouring_bins():
    support = Support(5)
    x = h_inv(torch.tensor([2.25], dtype=torch.float64))  # h(x) = 2.25 -> bins 2 and 3
    phi = support.two_hot(x)[0].numpy()
    expected = np.zeros(11, dtype=np.float32)
    expected[5 + 2], expected[5 + 3] = 0.75, 0.25
    np.testing.assert_allclose(phi, expected, atol=1e-6)


def test_scalar_from_logits_on_uniform_and_peaked_logits():
    support = Support(300)
    zero = support.scalar_from_logits(torch.zeros(3, 601))
    assert zero.dtype == torch.float32 and torch.all(zero.abs() < 1e-4)
    logits = torch.full((1, 601), -1e4)
    logits[0, 300 + 7] = 0.0
    assert support.scalar_from_logits(logits).item() == pytest.approx(h_inv(torch.tensor(7.0)).item(), abs=1e-4)
    with pytest.raises(ValueError):
        support.scalar_from_logits(torch.zeros(2, 600))


def test_h_inv_in_place_keeps_the_formula_bit_for_bit():
    y = torch.randn(10_000, dtype=torch.float64) * 40.0
    root = (torch.sqrt(1.0 + 4.0 * EPS * (y.abs() + 1.0 + EPS)) - 1.0) / (2.0 * EPS)
    formula = torch.sign(y) * (root * root - 1.0)
    before = y.clone()
    assert torch.equal(h_inv(y), formula)
    assert torch.equal(y, before)  # the input is not modified


def test_scalars_from_logits_in_one_pass_equal_one_at_a_time():
    support = Support(30)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 61, generator=generator) * 3, torch.randn(7, 61, generator=generator) * 3
    together = support.scalars_from_logits(a, b)
    assert [t.shape for t in together] == [(4,), (7,)]
    assert torch.equal(together[0], support.scalar_from_logits(a))
    assert torch.equal(together[1], support.scalar_from_logits(b))


def test_value_mean_readout_reads_a_spread_of_targets_at_its_mean():
    """Two states' worth of targets, 50 and 250, on one input: the reference's readout h_inv(mean
    bin) gives 131.5 (Jensen: h_inv is convex), 'value_mean' gives their mean within a bin's
    linear interpolation; on one target both return it."""
    reference, unbiased = Support(30), Support(30, "value_mean")
    phi = reference.two_hot(torch.tensor([50.0, 250.0], dtype=torch.float64))
    mixed = 0.5 * phi[:1] + 0.5 * phi[1:]
    assert reference.scalar_from_probs(mixed).item() == pytest.approx(131.5, abs=0.1)
    assert unbiased.scalar_from_probs(mixed).item() == pytest.approx(150.0, rel=2e-3)
    x = torch.linspace(-200.0, 200.0, 4001, dtype=torch.float64)
    exact = unbiased.scalar_from_probs(unbiased.two_hot(x)).double()
    # The chord over one bin lies above h_inv, never below: by at most 0.25 near 0, where a bin
    # spans 0..3, and 0.25 % from 100 on.
    assert torch.all((exact - x) * torch.sign(x) >= -1e-4)
    assert torch.all((exact - x).abs() <= 0.3)
    assert torch.all((exact - x).abs()[x.abs() >= 100] <= 2.5e-3 * x.abs()[x.abs() >= 100])


def test_readout_is_checked_and_reaches_the_model():
    with pytest.raises(ValueError, match="readout"):
        Support(10, "median")
    from ezero_async.config.sections import ModelConfig
    from ezero_async.errors import ConfigError
    from ezero_async.learner.model import build_model
    with pytest.raises(ConfigError, match="model.value_readout"):
        ModelConfig(value_readout="median").check()
    model = build_model(ModelConfig(kind="mlp", value_readout="value_mean", support_size=10), (4,), 1, 2, 5)
    assert model.support.readout == "value_mean"
