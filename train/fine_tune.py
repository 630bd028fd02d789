"""Fine-tuning: the top of the base and the head trained together, the one recipe every measurement shares.

make train runs it after the head's epochs (train.py); bench.training and bench.fine_tune time its epochs. So
a change of recipe (what unfreezes, the rate and its decay, when to stop) reaches every figure.
"""

import keras

from train import model as models
from train.callbacks import EpochProgress
from train.config import TrainConfig
from train.inputs import MixedBatches


def fine_tune(config: TrainConfig, net: models.Models, train, val, callbacks=(), initial_epoch: int = 0) -> dict:
    """Unfreeze the base from config's first trainable layer and fit net.trainable for config.fine_tune_epochs
    epochs (numbered from initial_epoch): Adam at fine_tune_lr, cosine-decayed over those epochs to
    fine_tune_lr_floor of it, stopped after fine_tune_patience epochs without a better validation accuracy; the
    training batches mixed up where config.mixup is set (inputs.MixedBatches). Returns fit's history."""
    if config.first_trainable is None:
        raise ValueError("the configuration fine-tunes nothing (fine_tune_from is None)")
    models.unfreeze_from(net.base, config.first_trainable)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.fine_tune_lr, len(train) * config.fine_tune_epochs, alpha=config.fine_tune_lr_floor
    )
    models.compile_for_training(net.trainable, schedule, config.label_smoothing)
    return net.trainable.fit(
        MixedBatches(train, config.mixup, config.seed) if config.mixup else train,
        validation_data=val,
        initial_epoch=initial_epoch,
        epochs=initial_epoch + config.fine_tune_epochs,
        verbose=0,
        callbacks=[*callbacks, *patience(config), EpochProgress("fine-tuning")],
    ).history


def patience(config: TrainConfig) -> list[keras.callbacks.Callback]:
    """Fine-tuning's stop once validation accuracy has not improved for fine_tune_patience epochs."""
    if not config.fine_tune_patience:
        return []
    return [keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.fine_tune_patience)]
