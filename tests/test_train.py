"""Trainer: gradients through whole models, determinism, resume, and the train CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from edgecnn.errors import ShapeError
from edgecnn.model import build
from edgecnn.model.layers import Conv2D, Dense, Flatten, MaxPool2D, Subsampling
from edgecnn.model.sequential import Sequential
from edgecnn.reference.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from edgecnn.train.optim import lr_at
from edgecnn.train.trainer import TrainConfig, train


def _loss(model, x, y):
    loss, _ = softmax_cross_entropy_forward(model.forward(x), y)
    return float(loss)


@pytest.mark.parametrize("arch", ["lenet5", "lenet5-classic"])
def test_model_gradients_match_finite_differences(arch):
    """Whole-network float64 gradients, C3's connection table and S2/S4 included."""
    rng = np.random.default_rng(0)
    model = build(arch).init_params(3, dtype=np.float64)
    x = rng.uniform(0, 1, (3, 32, 32, 1))
    y = np.array([1, 7, 3])
    loss, cache = softmax_cross_entropy_forward(model.forward(x, train=True), y)
    model.backward(softmax_cross_entropy_backward(cache))
    grads = dict(model.named_grads())
    for key, p in model.named_params():
        g = grads[key]
        flat = p.reshape(-1)
        picks = rng.choice(flat.size, size=min(6, flat.size), replace=False)
        for i in picks:
            old = flat[i]
            flat[i] = old + 1e-6
            lp = _loss(model, x, y)
            flat[i] = old - 1e-6
            lm = _loss(model, x, y)
            flat[i] = old
            num = (lp - lm) / 2e-6
            assert abs(num - g.reshape(-1)[i]) <= 1e-6 + 1e-4 * abs(num), (key, i, num, g.reshape(-1)[i])
    if arch == "lenet5-classic":
        c3 = model.layers[2]
        assert np.all(grads["C3/w"][np.broadcast_to(c3.mask(), grads["C3/w"].shape) == 0] == 0)


def _tiny_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = np.zeros((n, 12, 12, 1), np.float32)
    for i, c in enumerate(y):  # a learnable pattern: a bright square whose position encodes the class
        x[i, (c // 5) * 6:(c // 5) * 6 + 4, (c % 5) * 2:(c % 5) * 2 + 3] = 1.0
    x += rng.normal(0, 0.1, x.shape).astype(np.float32)
    return x, y


def _tiny_model(seed=0):
    return Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Subsampling(1, activation="tanh"),
                       Flatten(), Dense(10)], (12, 12, 1)).init_params(seed)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_training_learns(optimizer):
    x, y = _tiny_data()
    model = _tiny_model()
    before = _loss(model, x, y)
    state = train(model, (x, y), (x, y), TrainConfig(epochs=4, batch_size=32, optimizer=optimizer,
                                                       lr=0.01 if optimizer == "adam" else 0.1), progress=False)
    assert _loss(model, x, y) < 0.5 * before
    assert state.history[-1]["test_accuracy"] > 0.8


def test_same_seed_same_weights_bit_for_bit():
    x, y = _tiny_data()
    cfg = TrainConfig(epochs=2, batch_size=32, augment_shift=1, weight_decay=1e-4, seed=5)
    a, b = _tiny_model(5), _tiny_model(5)
    train(a, (x, y), (x, y), cfg, progress=False)
    train(b, (x, y), (x, y), cfg, progress=False)
    for (_, p), (_, q) in zip(a.named_params(), b.named_params()):
        assert p.tobytes() == q.tobytes()
    c = _tiny_model(6)
    train(c, (x, y), (x, y), TrainConfig(epochs=2, batch_size=32, augment_shift=1, seed=6), progress=False)
    assert any(p.tobytes() != q.tobytes() for (_, p), (_, q) in zip(a.named_params(), c.named_params()))


def test_resume_matches_uninterrupted_run():
    x, y = _tiny_data()
    cfg = TrainConfig(epochs=3, batch_size=32, seed=1)
    full = _tiny_model(1)
    train(full, (x, y), (x, y), cfg, progress=False)

    saved = {}

    def stop_after_first(model, state, opt):
        if state.epoch == 1:
            saved["params"] = {k: v.copy() for k, v in model.named_params()}
            saved["opt"] = {k: np.array(v, copy=True) for k, v in opt.state().items()}
            raise KeyboardInterrupt

    part = _tiny_model(1)
    with pytest.raises(KeyboardInterrupt):
        train(part, (x, y), (x, y), cfg, progress=False, on_epoch=stop_after_first)
    resumed = _tiny_model(1)
    resumed.load_state_dict(saved["params"])
    from edgecnn.train.trainer import TrainState

    train(resumed, (x, y), (x, y), cfg, state=TrainState(epoch=1), opt_state=saved["opt"], progress=False)
    for (_, p), (_, q) in zip(full.named_params(), resumed.named_params()):
        assert p.tobytes() == q.tobytes()


def test_train_rejects_bad_shapes():
    x, y = _tiny_data(32)
    with pytest.raises(ShapeError):
        train(_tiny_model(), (x[:, :10], y), (x, y), TrainConfig(epochs=1), progress=False)
    with pytest.raises(ShapeError):
        train(_tiny_model(), (x, y[:5]), (x, y), TrainConfig(epochs=1), progress=False)
    with pytest.raises(ShapeError):
        train(_tiny_model(), (x, y + 10), (x, y), TrainConfig(epochs=1), progress=False)


def test_cosine_schedule_decays():
    lrs = [lr_at("cosine", 1e-3, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] < 1e-4 and all(a >= b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.slow
def test_train_cli_json_and_resume(tmp_path, mnist_root):
    out = tmp_path / "m.npz"
    args = ["train", "--arch", "lenet5", "--data", mnist_root, "--epochs", "1", "--limit", "2000",
            "--out", out, "--json"]
    rc, stdout, err = run_cli(*args)
    assert rc == 0, err
    doc = json.loads(stdout)
    assert doc["arch"] == "lenet5" and doc["epochs"] == 1 and doc["out"] == str(out)
    assert 0.5 < doc["test_accuracy"] <= 1.0 and doc["seconds"] > 0
    args[args.index("--epochs") + 1] = "2"
    rc, stdout, err = run_cli(*args, "--resume")
    assert rc == 0, err
    assert json.loads(stdout)["epochs"] == 2


@pytest.mark.parametrize("args,needle", [
    (["--arch", "lenet9"], "unknown architecture"),
    (["--arch", "lenet5", "--dataset", "no-such-set"], "no-such-set"),
])
def test_train_cli_bad_input(tmp_path, mnist_root, args, needle):
    rc, _, err = run_cli("train", *args, "--data", mnist_root, "--out", tmp_path / "m.npz")
    assert_clean_error(rc, err, needle)
    assert not (tmp_path / "m.npz").exists()


def _tiny_graph(seed=0, channels=1):
    """A residual block with BatchNorm: the graph case of everything above."""
    from edgecnn.model import GraphBuilder
    from edgecnn.model.merge_layers import Add
    from edgecnn.model.norm_layers import BatchNorm

    g = GraphBuilder((12, 12, channels))
    x = g.add(Conv2D(8, 3, padding="same", name="stem"), g.input)
    x = g.add(BatchNorm(name="stem_bn", activation="relu"), x)
    y = g.add(Conv2D(8, 3, stride=2, padding="same", name="c1"), x)
    y = g.add(BatchNorm(name="c1_bn", activation="relu"), y)
    s = g.add(Conv2D(8, 1, stride=2, name="short"), x)
    x = g.add(Add(name="add", activation="relu"), y, s)
    x = g.add(Flatten(name="flat"), x)  # the classes are positions, which global pooling would erase
    g.add(Dense(10, name="fc"), x)
    return g.build().init_params(seed)


def test_graph_with_batchnorm_trains_deterministically_and_resumes(tmp_path):
    from edgecnn.model.checkpoint import load_checkpoint, save_checkpoint
    from edgecnn.train.trainer import TrainState

    x, y = _tiny_data()
    x = np.repeat(x, 3, axis=3)  # colour input
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, seed=2)
    a, b = _tiny_graph(2, 3), _tiny_graph(2, 3)
    state = train(a, (x, y), (x, y), cfg, progress=False)
    assert state.history[-1]["test_accuracy"] > 0.8  # measured in eval mode, running statistics
    assert not np.array_equal(a.node("stem_bn").layer.buffers["mean"], np.zeros(8))

    def stop_after_first(model, state, opt):
        if state.epoch == 1:
            save_checkpoint(tmp_path / "g.npz", model, {"epoch": 1}, opt.state())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(b, (x, y), (x, y), cfg, progress=False, on_epoch=stop_after_first)
    resumed, saved, opt_state = load_checkpoint(tmp_path / "g.npz", with_state=True)
    train(resumed, (x, y), (x, y), cfg, state=TrainState(epoch=saved["epoch"]), opt_state=opt_state, progress=False)
    for (k, p), (_, q) in zip(list(a.named_params()) + list(a.named_buffers()),
                              list(resumed.named_params()) + list(resumed.named_buffers())):
        assert p.tobytes() == q.tobytes(), k


@pytest.mark.slow  # evaluates resnet8 on all 10,000 test images
def test_train_cli_resnet8_takes_the_dataset_shape(tmp_path, mnist_root):
    from edgecnn.model.checkpoint import load_checkpoint

    out = tmp_path / "r.npz"
    rc, stdout, err = run_cli("train", "--arch", "resnet8", "--data", mnist_root, "--epochs", "1", "--limit", "256",
                              "--out", out, "--json")
    assert rc == 0, err
    model = load_checkpoint(out)
    assert model.arch == "resnet8" and model.input_shape == (28, 28, 1)


def test_resnet8_weights_do_not_depend_on_the_thread_count():
    """GEMM chunks, BN chunks and elementwise spans are fixed by the shapes: 1 or 2 threads, same weights."""
    import numba

    rng = np.random.default_rng(5)
    x = rng.random((40, 12, 12, 1), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    cfg = TrainConfig(epochs=1, batch_size=16, seed=3)
    weights = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            model = build("resnet8", input_shape=(12, 12, 1), classes=10).init_params(3)
            train(model, (x, y), (x[:0], y[:0]), cfg, progress=False)
            weights.append([p.tobytes() for _, p in list(model.named_params()) + list(model.named_buffers())])
    finally:
        numba.set_num_threads(before)
    assert weights[0] == weights[1]
