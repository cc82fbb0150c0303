"""ActivationHooks: any nn.Module, hooks always removed, outputs of every shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aqi.activations import ActivationHooks, SpanMask

from ..conftest import hook_count


class TupleBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.lin(x), None


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([TupleBlock(), TupleBlock(), TupleBlock()])
        self.head = nn.Linear(4, 2)
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, b in enumerate(self.blocks):
            x = b(x)[0]
            if self.fail and i == 1:
                raise RuntimeError("boom in forward")
        return self.head(x)


def test_plain_module_tuple_outputs_and_2d_outputs():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 5, 4)
    with ActivationHooks(net, ["blocks.0", "head"], pooling=["mean", "max"]) as h:
        out = h.run(x)
    expected = net.blocks[0](x)[0]
    torch.testing.assert_close(out["blocks.0"]["mean"], expected.mean(1))
    torch.testing.assert_close(out["blocks.0"]["max"], expected.amax(1))
    assert out["head"]["mean"].shape == (2, 2)
    assert hook_count(net) == 0


def test_heuristic_finds_blocks_of_non_hf_module():
    net = Net()
    with ActivationHooks(net, "blocks") as h:
        assert h.layer_names == ["blocks.0", "blocks.1", "blocks.2"]
        assert hook_count(net) == 3
    assert hook_count(net) == 0


def test_span_mask_restricts_pooling():
    net = Net().eval()
    x = torch.randn(2, 5, 4)
    span = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with ActivationHooks(net, [0], pooling=["mean", "last", "first"]) as h:
        out = h.run(x, span=span)
    full = net.blocks[0](x)[0]
    torch.testing.assert_close(out["blocks.0"]["mean"][0], full[0, 1:3].mean(0))
    torch.testing.assert_close(out["blocks.0"]["last"][0], full[0, 2])
    torch.testing.assert_close(out["blocks.0"]["first"][1], full[1, 0])


def test_hooks_removed_after_exception_in_forward():
    net = Net()
    net.fail = True
    with pytest.raises(RuntimeError, match="boom"), ActivationHooks(net, "blocks") as h:
        h.run(torch.randn(1, 3, 4))
    assert hook_count(net) == 0


def test_hooks_removed_after_bad_layer_name():
    net = Net()
    with pytest.raises(ValueError, match=r"layer 'block.1' not found; did you mean 'blocks.1'"):
        ActivationHooks(net, ["blocks.0", "block.1"])
    assert hook_count(net) == 0


def test_hooks_removed_when_registration_fails_half_way(monkeypatch):
    net = Net()
    real = nn.Module.register_forward_hook
    seen = []

    def flaky(self, hook, *a, **k):
        seen.append(self)
        if len(seen) == 3:
            raise RuntimeError("registration failed")
        return real(self, hook, *a, **k)

    hooks = ActivationHooks(net, "blocks")
    monkeypatch.setattr(nn.Module, "register_forward_hook", flaky)
    with pytest.raises(RuntimeError, match="registration failed"), hooks:
        pass
    monkeypatch.undo()
    assert len(seen) == 3 and hook_count(net) == 0


def test_early_exit_stops_forward_after_deepest_layer():
    net = Net()
    ran = []
    net.head.register_forward_hook(lambda *a: ran.append(1))
    with ActivationHooks(net, [0, 1], early_exit=True) as h:
        out = h.run(torch.randn(1, 3, 4))
    assert sorted(out) == ["blocks.0", "blocks.1"] and ran == []


def test_layer_not_run_is_an_error():
    net = Net()
    net.extra = nn.Linear(4, 4)  # never called by forward
    with ActivationHooks(net, ["extra"]) as h, pytest.raises(RuntimeError, match="did not run"):
        h.run(torch.randn(1, 2, 4))


def test_shared_module_called_twice_is_an_error():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(self.lin(x))

    net = Twice()
    with ActivationHooks(net, ["lin"]) as h, pytest.raises(RuntimeError, match="ran twice"):
        h.run(torch.randn(1, 2, 4))
    assert hook_count(net) == 0


def test_span_mask_rejects_empty_rows():
    with pytest.raises(ValueError, match=r"rows \[1\] select no token"):
        SpanMask(torch.tensor([[True, False], [False, False]]))


def test_run_with_output_returns_the_model_output_too():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(3, 5, 4)
    with ActivationHooks(net, ["0"], pooling="mean") as hooks:
        out, pooled = hooks.run_with_output(x)
        assert torch.equal(out, net(x))
        assert torch.equal(pooled["0"]["mean"], hooks.run(x)["0"]["mean"])
    with ActivationHooks(net, ["0"], pooling="mean", early_exit=True) as hooks:
        out, pooled = hooks.run_with_output(x)
    assert out is None and sorted(pooled) == ["0"]
    assert hook_count(net) == 0
