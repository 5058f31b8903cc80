"""Each merge method equals its formula, on hand-made tensors (through judgeforge's own binding code).

The in-memory merger is the code path under test: it binds weights, base and parameters to
mergekit's kernels exactly as a written merge does (tests/test_merge_fast.py checks the two agree).
"""

from __future__ import annotations

import pytest
import torch

from judgeforge.errors import UserError
from judgeforge.merge.fast_linear import linear_combine
from judgeforge.merge.inmemory import InMemoryMerger


class Toy(torch.nn.Module):
    def __init__(self, n: int = 64):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4, n))
        self.v = torch.nn.Parameter(torch.zeros(n))


def _experts(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    base = {"w": torch.randn(4, n, generator=g), "v": torch.randn(n, generator=g)}
    a = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    b = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    return a, b, base


@pytest.fixture
def toy():
    a, b, base = _experts()
    model = Toy()
    return InMemoryMerger(a, b, base=base, model=model, device="cpu"), model, a, b, base


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_linear_is_the_weighted_mean(toy):
    m, model, a, b, _ = toy
    m.apply(0.3)
    for k, v in _state(model).items():
        torch.testing.assert_close(v, 0.3 * a[k] + 0.7 * b[k], rtol=0, atol=1e-6)
    m.apply(weights=[2.0, 6.0])  # normalised: divided by the sum
    for k, v in _state(model).items():
        torch.testing.assert_close(v, (2 * a[k] + 6 * b[k]) / 8, rtol=0, atol=1e-6)
    m.apply(weights=[2.0, 6.0], normalize=False)
    for k, v in _state(model).items():
        torch.testing.assert_close(v, 2 * a[k] + 6 * b[k], rtol=0, atol=1e-5)


def test_task_arithmetic_with_weights_summing_to_one_equals_linear(toy):
    m, model, a, b, base = toy
    m.apply(weights=[0.3, 0.7], method="task_arithmetic")
    ta = _state(model)
    m.apply(0.3)
    lin = _state(model)
    for k in ta:
        torch.testing.assert_close(ta[k], lin[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(
            ta[k], base[k] + 0.3 * (a[k] - base[k]) + 0.7 * (b[k] - base[k]), rtol=0, atol=1e-6
        )
    m.apply(weights=[0.3, 0.7], method="task_arithmetic", **{"lambda": 2.0})
    for k, v in _state(model).items():
        torch.testing.assert_close(
            v, base[k] + 2.0 * (0.3 * (a[k] - base[k]) + 0.7 * (b[k] - base[k])), rtol=0, atol=1e-5
        )


@pytest.mark.parametrize("dare, plain", [("dare_linear", "task_arithmetic"), ("dare_ties", "ties")])
def test_dare_with_density_one_equals_its_undropped_counterpart(toy, dare, plain):
    m, model, *_ = toy
    m.apply(weights=[0.4, 0.6], method=dare, density=1.0, normalize=True, seed=1)
    with_dare = _state(model)
    m.apply(weights=[0.4, 0.6], method=plain, density=1.0, normalize=True)
    for k, v in _state(model).items():
        assert torch.equal(with_dare[k], v), k


def test_slerp_returns_the_endpoints(toy):
    m, model, a, b, _ = toy
    m.apply(1.0, "slerp")  # alpha = weight of expert A -> t = 0
    for k, v in _state(model).items():
        torch.testing.assert_close(v, a[k], rtol=0, atol=1e-6)
    m.apply(0.0, "slerp")  # t = 1
    for k, v in _state(model).items():
        torch.testing.assert_close(v, b[k], rtol=0, atol=1e-6)
    m.apply(0.5, "slerp")  # in between: not the endpoints, and norm-preserving rather than linear
    mid = _state(model)["v"]
    assert not torch.allclose(mid, a["v"]) and not torch.allclose(mid, b["v"])


def test_ties_sign_election_on_a_worked_example():
    base = {"v": torch.zeros(4)}
    a = {"v": torch.tensor([1.0, -2.0, 3.0, 0.1])}
    b = {"v": torch.tensor([-1.0, -1.0, 1.0, 0.2])}

    class V(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.v = torch.nn.Parameter(torch.zeros(4))

    model = V()
    InMemoryMerger(a, b, base=base, model=model, device="cpu").apply(
        weights=[1.0, 1.0], method="ties", density=1.0
    )
    # elected signs (sum of deltas): +, -, +, +; the disagreeing entry (b[0] = -1) is dropped,
    # then each entry is divided by the weight of the models that agree with the elected sign.
    torch.testing.assert_close(model.v.detach(), torch.tensor([1.0, -1.5, 2.0, 0.15]), rtol=0, atol=1e-6)


def test_dare_drops_and_rescales_the_task_vector():
    n = 20000
    g = torch.Generator().manual_seed(3)
    base = {"v": torch.zeros(n)}
    a = {"v": torch.randn(n, generator=g)}
    b = {"v": torch.zeros(n)}  # b's task vector is empty: the merge is a's dropped + rescaled one

    class V(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.v = torch.nn.Parameter(torch.zeros(n))

    model = V()
    m = InMemoryMerger(a, b, base=base, model=model, device="cpu")
    # DARE's p = 0.1 drop rate is mergekit's density = 1 - p = 0.9 (the fraction KEPT)
    m.apply(weights=[1.0, 1.0], method="dare_linear", density=0.9, seed=5)
    out = model.v.detach().clone()
    kept = out != 0
    assert 0.88 < kept.float().mean().item() < 0.92
    scale = a["v"].abs().sum() / (a["v"] * kept).abs().sum()  # mergekit rescales to the task vector's L1 norm
    torch.testing.assert_close(out[kept], a["v"][kept] * scale, rtol=1e-5, atol=1e-6)
    assert abs(scale.item() - 1 / 0.9) < 0.02  # ~ 1 / (1 - p), the DARE paper's rescale
    m.apply(weights=[1.0, 1.0], method="dare_linear", density=0.9, seed=5)
    assert torch.equal(model.v.detach(), out)  # same seed, same mask
    m.apply(weights=[1.0, 1.0], method="dare_linear", density=0.9, seed=6)
    assert not torch.equal(model.v.detach(), out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("normalize", [True, False])
def test_linear_kernel_is_bitwise_mergekits(dtype, normalize):
    from mergekit.merge_methods import merge_tensors

    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(64, 96, generator=g).to(dtype) for _ in range(3)]
    w = [0.3, 0.7, 0.1]
    ours = linear_combine(xs, w, normalize=normalize)
    theirs = merge_tensors(xs, "linear", parameters={"weight": w, "normalize": normalize})
    assert ours.dtype == theirs.dtype == dtype
    assert torch.equal(ours, theirs)


def test_in_memory_mistakes_are_one_line_errors(toy):
    m, *_ = toy
    with pytest.raises(UserError, match="no parameter 'densty'"):
        m.apply(0.5, "dare_linear", densty=0.5)
    with pytest.raises(UserError, match="sum to zero"):
        m.apply(weights=[1.0, -1.0])
    with pytest.raises(UserError, match="unknown merge method 'lnear'.*did you mean 'linear'"):
        m.apply(0.5, "lnear")
    bad = {"w": torch.zeros(4, 3), "v": torch.zeros(64)}
    with pytest.raises(UserError, match=r"tensor 'w' has shape \[4, 3\] in expert_b but \[4, 64\]"):
        InMemoryMerger(_experts()[0], bad, model=Toy(), device="cpu")
    with pytest.raises(UserError, match="expert_b has no tensor 'v'"):
        InMemoryMerger(_experts()[0], {"w": torch.zeros(4, 64)}, model=Toy(), device="cpu")
