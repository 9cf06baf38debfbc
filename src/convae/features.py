"""Judging a representation by what a classifier makes of it when only a few images are labelled
(chapters 05 and 06: pixels, PCA codes, autoencoder and denoiser codes, each fitted without labels).

Two classifiers, because they can rank the same representations differently:

- :func:`nearest_neighbour_accuracy`, the 1-nearest-neighbour rule with Euclidean distance. It needs
  no training, but it weighs every dimension by its scale in the representation.
- :func:`ridge_accuracy`, a linear classifier: ridge regression onto one-hot labels, on features
  standardised with the statistics of *all* training images (no labels needed for that), its
  strength chosen per labelled set by leave-one-out on the labelled images alone.

Both are written here in NumPy on purpose: scikit-learn is not in the course's pins, and the ridge
classifier's closed form fits a hundred labelled images in a millisecond, so twenty draws of the
labelled set cost nothing. Neither is an exercise's answer.
"""
from __future__ import annotations

import numpy as np

#: the ridge strengths tried by leave-one-out (on standardised features with a column of ones)
RIDGE_STRENGTHS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def labelled_sets(labels, per_class: int, draws: int, seed: int) -> list[np.ndarray]:
    """``draws`` random choices of ``per_class`` indices of every class in ``labels``."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    return [np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes])
            for _ in range(draws)]


def nearest_neighbour_accuracy(train_features, train_labels, test_features, test_labels) -> float:
    """Test accuracy of the 1-nearest-neighbour rule (squared Euclidean distance, one matrix product)."""
    train_features, test_features = np.asarray(train_features), np.asarray(test_features)
    distances = (np.sum(test_features**2, axis=1)[:, None] - 2 * test_features @ train_features.T
                 + np.sum(train_features**2, axis=1)[None, :])
    return float(np.mean(np.asarray(train_labels)[np.argmin(distances, axis=1)] == test_labels))


def ridge_accuracy(all_train_features, labelled, labels, test_features, test_labels,
                   strengths=RIDGE_STRENGTHS) -> tuple[float, float]:
    """Test accuracy of a ridge classifier trained on the rows ``labelled`` of ``all_train_features``
    with labels ``labels`` (integers 0..9); return ``(accuracy, chosen strength)``.

    Every feature is standardised with the mean and standard deviation of all training rows
    (unsupervised), a column of ones is appended, and the weights minimise
    ``|A W - Y|^2 + strength * |W|^2`` with ``Y`` one-hot. In the dual form ``W = A^T (A A^T +
    strength I)^-1 Y`` only an n × n system is solved (n = number of labelled images), whatever the
    number of features. The strength is the one whose leave-one-out predictions on the labelled
    images are most often right (ties: the stronger): with ``H = K (K + strength I)^-1`` the
    leave-one-out residual of row i is the fitted residual divided by ``1 - H_ii``, no refit needed.
    """
    features = np.asarray(all_train_features)
    mean, scale = features.mean(axis=0, dtype=np.float64), features.std(axis=0, dtype=np.float64) + 1e-3

    def design(rows):
        return np.c_[(np.asarray(rows, dtype=np.float64) - mean) / scale, np.ones(len(rows))]

    a = design(features[labelled])
    labels = np.asarray(labels)
    targets = np.eye(10)[labels]
    gram = a @ a.T
    best_score, best_strength = -1.0, None
    for strength in strengths:
        hat = gram @ np.linalg.inv(gram + strength * np.eye(len(gram)))
        leave_one_out = targets - (targets - hat @ targets) / (1 - np.diag(hat))[:, None]
        score = float(np.mean(np.argmax(leave_one_out, axis=1) == labels))
        if score >= best_score:
            best_score, best_strength = score, strength
    weights = a.T @ np.linalg.solve(gram + best_strength * np.eye(len(gram)), targets)
    predicted = np.argmax(design(test_features) @ weights, axis=1)
    return float(np.mean(predicted == np.asarray(test_labels))), float(best_strength)
