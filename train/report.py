"""Test-set evaluation and the plots of a run or a sweep."""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np


def evaluate(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class precision and recall, and the confusion matrix (rows: true class)."""
    predicted = logits.argmax(axis=1)
    n = len(classes)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for k, name in enumerate(classes):
        predicted_k, actual_k = confusion[:, k].sum(), confusion[k].sum()
        per_class[name] = {
            "precision": round(float(confusion[k, k] / predicted_k), 4) if predicted_k else None,
            "recall": round(float(confusion[k, k] / actual_k), 4) if actual_k else None,
            "support": int(actual_k),
        }
    return {
        "accuracy": round(float((predicted == labels).mean()), 4),
        "images": int(len(labels)),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def plot_curves(history: dict, path) -> None:
    """Train and validation accuracy and loss per epoch, as in the course's notebooks."""
    epochs = np.arange(1, len(history["accuracy"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
        ax.plot(epochs, history[metric], label=f"train {metric}")
        ax.plot(epochs, history[f"val_{metric}"], label=f"validation {metric}")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: list[list[int]], classes: list[str], path) -> None:
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(np.array(confusion)):
        ax.text(j, i, count, ha="center", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sweep(param: str, val_accuracy: dict, path) -> None:
    """One line of validation accuracy per epoch for each value, like the course's sweep plots."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for value, curve in val_accuracy.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=f"{param}={value}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
