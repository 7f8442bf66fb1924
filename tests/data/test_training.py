"""The one training loop and the one cached-weights policy (gradlime_utils.data.training)."""
import warnings

import pytest
import torch
from torch import nn

from gradlime_utils.cache import atomic_torch_save
from gradlime_utils.data.training import fit, restore


def tiny(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 4, generator=g)
    return x, (x[:, 0] > 0).long()


def test_fit_is_the_seeded_adam_loop_it_replaced():
    """Bit for bit the loop the MNIST, shapes and GAD trainers each wrote before: Adam, a seeded order per epoch."""
    x, y = data()
    ours = fit(tiny(), len(x), lambda idx: (x[idx], y[idx]), epochs=3, lr=1e-2, batch_size=16, seed=7)
    ref = tiny()
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        ref.train()
        for idx in torch.randperm(len(x), generator=gen).split(16):
            opt.zero_grad()
            nn.functional.cross_entropy(ref(x[idx]), y[idx]).backward()
            opt.step()
    assert not ours.training
    for a, b in zip(ours.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    other = fit(tiny(), len(x), lambda idx: (x[idx], y[idx]), epochs=3, lr=1e-2, batch_size=16, seed=8)
    assert not torch.equal(other[0].weight, ours[0].weight)  # the order is what the seed decides
    loss_before = nn.functional.cross_entropy(tiny()(x), y)
    assert nn.functional.cross_entropy(ours(x), y) < loss_before


def test_fit_rejects_bad_counts():
    x, y = data()
    for kwargs, name in (({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"seed": -3}, "seed")):
        with pytest.raises(ValueError, match=name):
            fit(tiny(), len(x), lambda idx: (x[idx], y[idx]), **kwargs)


def test_restore_one_policy_for_missing_corrupt_non_finite_and_mismatched_weights(tmp_path):
    model = tiny()
    path = tmp_path / "w.pt"
    assert restore(tiny(), path) is None  # missing
    atomic_torch_save({"state_dict": model.state_dict(), "info": {"acc": 1.0}}, path)
    fresh = tiny(seed=5)
    assert restore(fresh, path, "state_dict")["info"] == {"acc": 1.0}
    assert torch.equal(fresh[0].weight, model[0].weight)
    assert restore(tiny(), path, "weights") is None and not path.exists()  # no such entry: removed
    atomic_torch_save(nn.Linear(3, 3).state_dict(), path)
    assert restore(tiny(), path) is None and not path.exists()  # another architecture: removed
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert restore(tiny(), path) is None
    assert not path.exists()
    bad = model.state_dict()
    bad["0.weight"] = bad["0.weight"].clone().fill_(float("nan"))
    atomic_torch_save(bad, path)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        assert restore(tiny(), path) is None
    assert not path.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atomic_torch_save(model.state_dict(), path)
        assert restore(tiny(seed=9), path) is not None
