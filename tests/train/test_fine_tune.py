"""fine_tune: the recipe make train and the benches share, on Xception's top at 71x71 (random weights) fed
random activations at the cut: what unfreezes, the rate's cosine decay to its floor, patience, and the loss's
label smoothing (the head's phase too)."""

from dataclasses import replace

import keras
import numpy as np
import pytest

from train import model as models
from train.config import parse_args
from train.fine_tune import fine_tune
from train.inputs import EpochBatches, MixedBatches, one_hot
from train.train import fit_phases

pytestmark = pytest.mark.tensorflow


def tiny_setup(*flags: str):
    """(config, model, training batches, validation batches): 16 random rows of the cut's activations."""
    keras.utils.set_random_seed(0)
    config = parse_args(["--preset", "cpu", "--weights", "none", "--size", "71", "--fine-tune-epochs", "2", *flags])
    net = models.build(config.backbone_entry, config, 3)
    rows = np.random.default_rng(0).standard_normal((16, *net.trainable.input_shape[1:]), np.float32)
    targets = one_hot(np.arange(16) % 3, 3)
    batches = [EpochBatches(lambda idx, _: rows[idx], targets, 8, 0, shuffle=s) for s in (True, False)]
    return config, net, *batches


@pytest.fixture
def tiny():
    return tiny_setup()


def test_the_top_trains_from_the_cut_at_a_rate_decayed_to_its_floor(tiny):
    config, net, train, val = tiny
    history = fine_tune(config, net, train, val)
    assert len(history["val_accuracy"]) == config.fine_tune_epochs
    first = [layer.name for layer in net.base.layers].index(config.first_trainable)
    for k, layer in enumerate(net.base.layers):
        assert layer.trainable == (k >= first and not isinstance(layer, keras.layers.BatchNormalization))
    optimizer = net.trainable.optimizer
    assert int(optimizer.iterations) == len(train) * config.fine_tune_epochs
    floor = config.fine_tune_lr * config.fine_tune_lr_floor
    assert float(optimizer.learning_rate) == pytest.approx(floor, rel=1e-5)  # cosine decay over the epochs


def test_fine_tuning_stops_after_its_patience(tiny):
    """A rate of 0 never improves on the first epoch: patience 1 stops it after the second."""
    config, net, train, val = tiny
    still = replace(config, fine_tune_lr=0.0, fine_tune_epochs=5, fine_tune_patience=1)
    assert len(fine_tune(still, net, train, val, initial_epoch=3)["val_accuracy"]) == 2


def test_a_configuration_without_a_cut_is_refused(tiny):
    config, net, train, val = tiny
    with pytest.raises(ValueError, match="fine-tunes nothing"):
        fine_tune(replace(config, fine_tune_from=None), net, train, val)


def smoothed_cross_entropy(logits: np.ndarray, targets: np.ndarray, smoothing: float) -> float:
    """The mean cross-entropy of softmax(logits) against the targets smoothed: 1 - s + s/n for the true class."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    smoothed = targets * (1 - smoothing) + smoothing / targets.shape[1]
    return float(-(smoothed * log_p).sum(1).mean())


@pytest.mark.parametrize("phase", ["head", "fine-tuning"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_each_phase_minimises_cross_entropy_on_targets_smoothed_by_the_setting(tiny, phase, smoothing):
    config, net, train, val = tiny
    config = replace(config, label_smoothing=smoothing, head_epochs=1, fine_tune_epochs=1)
    if phase == "head":
        history = fit_phases(replace(config, fine_tune_epochs=0), net, train, val, callbacks=[], best=None)
    else:
        history = fine_tune(config, net, train, val)
    logits = np.concatenate([net.trainable.predict(val[k][0], verbose=0) for k in range(len(val))])
    targets = np.concatenate([val[k][1] for k in range(len(val))])
    assert history["val_loss"][-1] == pytest.approx(smoothed_cross_entropy(logits, targets, smoothing), rel=1e-4)


def test_with_mixup_fine_tuning_trains_on_the_mixed_batches():
    """At a rate of 0 and without dropout the weights stay: the training loss is the loss on the mixed batches."""
    config, net, train, val = tiny_setup("--dropout", "0", "--mixup", "0.4", "--fine-tune-lr", "0")
    history = fine_tune(replace(config, fine_tune_epochs=1), net, train, val)
    _, _, fresh, _ = tiny_setup()  # the same rows, shuffled alike, at epoch 0
    mixed = MixedBatches(fresh, 0.4, config.seed)
    batches = [mixed[k] for k in range(len(mixed))]
    logits = np.concatenate([net.trainable.predict(x, verbose=0) for x, _ in batches])
    targets = np.concatenate([y for _, y in batches])
    assert targets.max(1).min() < 0.9  # really mixed
    assert history["loss"][0] == pytest.approx(smoothed_cross_entropy(logits, targets, 0.0), rel=1e-4)
