"""convae.features: the few-label classifiers of chapters 05 and 06 (NumPy only, no TensorFlow)."""
import numpy as np

from convae.features import labelled_sets, nearest_neighbour_accuracy, ridge_accuracy


def test_labelled_sets_draw_the_same_number_of_each_class_without_repeats():
    labels = np.repeat(np.arange(10), 30)
    sets = labelled_sets(labels, per_class=3, draws=4, seed=1)
    assert len(sets) == 4
    for rows in sets:
        assert len(set(rows.tolist())) == 30
        assert np.array_equal(np.bincount(labels[rows], minlength=10), np.full(10, 3))
    assert not np.array_equal(sets[0], sets[1])
    assert all(np.array_equal(a, b) for a, b in zip(sets, labelled_sets(labels, 3, 4, seed=1)))


def test_nearest_neighbour_takes_the_closest_training_point():
    train, train_labels = np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([3, 7])
    test = np.array([[1.0, 0.0], [9.0, 1.0], [4.9, 0.0]])
    assert nearest_neighbour_accuracy(train, train_labels, test, np.array([3, 7, 3])) == 1.0
    assert nearest_neighbour_accuracy(train, train_labels, test, np.array([3, 7, 7])) == 2 / 3


def brute_force_leave_one_out(a, labels, strength):
    """Refit without each row in turn (the primal form) and predict it."""
    hits = 0
    for i in range(len(a)):
        keep = np.arange(len(a)) != i
        weights = np.linalg.solve(a[keep].T @ a[keep] + strength * np.eye(a.shape[1]), a[keep].T @ np.eye(10)[labels[keep]])
        hits += np.argmax(a[i] @ weights) == labels[i]
    return hits / len(a)


def test_ridge_chooses_the_strength_brute_force_leave_one_out_would_choose():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 6))
    labels = np.repeat(np.arange(10), 4)
    features = centres[labels] + rng.normal(scale=0.8, size=(40, 6))
    test_labels = np.repeat(np.arange(10), 20)
    test = centres[test_labels] + rng.normal(scale=0.8, size=(200, 6))
    strengths = (0.01, 3.0, 300.0)
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-3
    a = np.c_[(features - mean) / scale, np.ones(40)]
    scores = [brute_force_leave_one_out(a, labels, s) for s in strengths]
    expected = max(s for s, score in zip(strengths, scores) if score == max(scores))
    accuracy, chosen = ridge_accuracy(features, np.arange(40), labels, test, test_labels, strengths)
    assert chosen == expected
    weights = np.linalg.solve(a.T @ a + chosen * np.eye(7), a.T @ np.eye(10)[labels])
    primal = np.mean(np.argmax(np.c_[(test - mean) / scale, np.ones(200)] @ weights, axis=1) == test_labels)
    assert np.isclose(accuracy, primal)
    assert accuracy > 0.3  # ten classes: chance is 0.1


def test_ridge_standardises_with_all_training_rows_not_only_the_labelled_ones():
    # the labelled rows have no spread in feature 1; all rows do, so it is not divided by ~0
    features = np.array([[0.0, 5.0], [1.0, 5.0], [0.0, -5.0], [1.0, -5.0]] * 5)
    labels = np.array([0, 1])
    accuracy, _ = ridge_accuracy(features, np.array([0, 1]), labels, np.array([[0.0, -5.0], [1.0, 5.0]]),
                                 np.array([0, 1]), strengths=(0.1,))
    assert accuracy == 1.0
