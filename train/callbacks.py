"""What watches fit(): the best checkpoint kept, each epoch timed, and a progress display within each epoch."""

import logging
import time
from pathlib import Path

import keras

from project.progress import Progress, duration

log = logging.getLogger("train")


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps exactly one file: the full model at the best validation accuracy so far.

    Whatever is being fitted (the head on cached features, the top of the base
    on cached activations, or the model on images), the saved model is the
    full image -> logits one.
    """

    def __init__(self, full_model: keras.Model, directory: Path, stem: str):
        super().__init__()
        self.full_model, self.directory, self.stem = full_model, Path(directory), stem
        self.best_accuracy, self.best_epoch = -1.0, 0
        self.best_path: Path | None = None  # None until an epoch ends
        self.best_weights: list | None = None

    def on_epoch_end(self, epoch, logs=None):
        accuracy = logs["val_accuracy"]
        if accuracy <= self.best_accuracy:
            return
        path = self.directory / f"{self.stem}_{epoch + 1:02d}_{accuracy:.3f}.h5"
        self.full_model.save(path)
        if self.best_path and self.best_path != path:
            self.best_path.unlink()
        self.best_accuracy, self.best_epoch, self.best_path = accuracy, epoch + 1, path
        self.best_weights = self.full_model.get_weights()
        log.info("epoch %d: new best val_accuracy %.3f -> %s", epoch + 1, accuracy, path.name)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = getattr(self, "seconds", [])  # one timer spans both phases

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self.started, 3))


class EpochProgress(keras.callbacks.Callback):
    """The progress display within each epoch (batches done, rate, time left), and a line when it ends with its
    figures and what is left of the phase: fit runs with verbose=0, as Keras' own display says neither."""

    def __init__(self, phase: str):
        super().__init__()
        self.phase = phase
        self.seconds: list[float] = []  # each epoch's, for the time left in the phase

    def on_epoch_begin(self, epoch, logs=None):
        last = self.params["epochs"]
        self.epoch = Progress(log, f"{self.phase}, epoch {epoch + 1} of {last}", self.params["steps"], "batches")

    def on_train_batch_end(self, batch, logs=None):
        self.epoch.advance()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.epoch.clock() - self.epoch.started)
        figures = ", ".join(f"{name} {value:.4f}" for name, value in (logs or {}).items())
        left = (self.params["epochs"] - epoch - 1) * sum(self.seconds) / len(self.seconds)
        log.info(
            "epoch %d: %s (%s; at most %s left in %s)",
            epoch + 1,
            figures,
            duration(self.seconds[-1]),
            duration(left),
            self.phase,
        )
