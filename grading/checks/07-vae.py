"""Hidden checks of chapter 07 (see convae.judge): fresh inputs, and the VAE encoder judged by training.

The reference answers are the author's functions in solutions/07-vae/07-vae.ipynb.

``build_encoder`` returns a model with built-in layers only, [z_mean, z_log_var]; the judge gets its
own copy, rebuilt from the saved config and weights, checks it against the same specification as the
visible test cell (:func:`convae.specs.vae_encoder_spec`, :func:`convae.vae.encoder_problems`), then
**trains a VAE made of that copy and the judge's own decoder and sampling** here, briefly, on a fixed
seeded subset of MNIST, and the VAE must reach a held-out −ELBO below a threshold that an encoder
which carries no information (a posterior equal to the prior) cannot reach. See NELBO_THRESHOLD.
"""
import functools

import numpy as np

from convae.judge import Exercise, exactly
from convae.specs import vae_encoder_spec

#: fixed, so every submission is trained on the same images with the same seed (6 x 63 = 378 steps)
TRAIN_IMAGES, HELD_OUT_IMAGES, EPOCHS, BATCH_SIZE, LEARNING_RATE, SEED = 2_000, 500, 6, 32, 2e-3, 7
#: held-out −ELBO (nats per image, Bernoulli summed over 784 continuous pixels, one sample, a fixed
#: noise seed) a VAE of the student's encoder and the judge's decoder must reach after that
#: training. Measured on this subset (2026-12-02, TF backend, 2 cores, about 5 s of training each):
#:   specified 784-512-256-(d, d):       d=2 175.9, d=16 142.4
#:   smaller valid 784-64-(d, d):        d=2 176.6, d=16 145.9
#:   valid 784-256-128-(d, d):           d=2 174.4, d=16 143.5
#:   broken, zero-initialised hidden layer:  d=2 206.8, d=16 208.3 (fails)
#:   an encoder that ignores its input (posterior = prior): 206.8 / 208.3 — the decoder then
#:   learns the mean digit only. (With 3 epochs of batch 64 the margin was 10 nats at d=2: too thin.)
NELBO_THRESHOLD = 195.0
IGNORES_INPUT_NELBO = 207
#: latent sizes the hidden check asks build_encoder for
LATENT_DIMS = (2, 5, 10, 16)


# ---------------------------------------------------------------- the judge's VAE around the student's encoder

@functools.lru_cache(maxsize=1)
def training_subset():
    """The same 2,000 training and 500 held-out MNIST images (x/255, flattened) for every submission."""
    from convae.data import fixed_pixels

    return fixed_pixels(TRAIN_IMAGES, HELD_OUT_IMAGES, SEED)


def held_out_nelbo(encoder) -> float:
    """Train a VAE of ``encoder`` (the judge's copy) and a fixed decoder; its held-out −ELBO in nats."""
    import keras
    from keras import layers, ops

    class JudgeSampling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(SEED)

        def call(self, inputs):
            mean, log_var = inputs
            self.add_loss(ops.mean(-0.5 * ops.sum(1 + log_var - ops.square(mean) - ops.exp(log_var), axis=1)))
            return mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=self.seed_generator)

    x, x_held = training_subset()
    latent_dim = int(encoder.outputs[0].shape[-1])
    keras.utils.set_random_seed(SEED)
    decoder = keras.Sequential([keras.Input((latent_dim,)), layers.Dense(256, activation="relu"),
                                layers.Dense(784, activation="sigmoid")])
    inputs = keras.Input((784,))
    mean, log_var = encoder(inputs)
    vae = keras.Model(inputs, decoder(JudgeSampling()([mean, log_var])))
    vae.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                loss=lambda x_true, x_hat: 784 * keras.losses.binary_crossentropy(x_true, x_hat))
    vae.fit(x, x, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=0, shuffle=True)
    # −ELBO of the held-out images: one sample each, computed here in NumPy from the outputs
    mean, log_var = (keras.ops.convert_to_numpy(t).astype(np.float64) for t in encoder.predict(x_held, verbose=0))
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(log_var))):
        return float("inf")
    eps = np.random.default_rng(SEED).normal(size=mean.shape)
    z = (mean + np.exp(0.5 * np.clip(log_var, -30, 30)) * eps).astype("float32")
    x_hat = np.clip(keras.ops.convert_to_numpy(decoder.predict(z, verbose=0)).astype(np.float64), 1e-7, 1 - 1e-7)
    nll = -np.sum(x_held * np.log(x_hat) + (1 - x_held) * np.log(1 - x_hat), axis=1)
    kl = -0.5 * np.sum(1 + log_var - mean**2 - np.exp(np.clip(log_var, -30, 30)), axis=1)
    return float(np.mean(nll + kl))


def judge_encoder(model, reference, call, args):
    from convae.vae import encoder_problems

    spec = vae_encoder_spec(int(args[0]))
    problem = encoder_problems(model, spec)
    if problem:
        return problem
    nelbo = held_out_nelbo(model)
    if not nelbo <= NELBO_THRESHOLD:
        return (f"{spec.call} builds an encoder that does not learn: a VAE made of a copy of it and the grader's "
                f"own decoder, trained for {EPOCHS} epochs on {TRAIN_IMAGES:,} MNIST digits (Adam, learning rate "
                f"{LEARNING_RATE}, Bernoulli loss summed over pixels + KL), reaches a −ELBO of {nelbo:.1f} nats on "
                f"{HELD_OUT_IMAGES} other digits; the threshold is {NELBO_THRESHOLD:.0f}, and an encoder that "
                f"ignores its input scores about {IGNORES_INPUT_NELBO}. Look at the activations (ReLU in the hidden layer), any "
                "initialisers or constraints you set, and whether z_mean and z_log_var are computed from the "
                "hidden layer.")
    return None


# ---------------------------------------------------------------- cases for the NumPy exercises

def gaussian_cases(rng):
    cases = []
    for n, d in ((1, 1), (3, 2), (5, 20), (int(rng.integers(1, 8)), int(rng.integers(1, 30)))):
        cases.append((rng.normal(scale=2, size=(n, d)), rng.normal(scale=1.5, size=(n, d))))
    cases.append((np.zeros((2, 4)), np.zeros((2, 4))))  # the prior itself: 0
    return cases


def reparameterise_cases(rng):
    cases = []
    for n, d in ((1, 1), (4, 2), (int(rng.integers(1, 8)), int(rng.integers(1, 30)))):
        cases.append((rng.normal(size=(n, d)), rng.normal(scale=1.5, size=(n, d)), rng.normal(size=(n, d))))
    cases.append((np.zeros((3, 2)), np.zeros((3, 2)), rng.normal(size=(3, 2))))  # unit variance: eps itself
    cases.append((rng.normal(size=(2, 3)), np.full((2, 3), np.log(4.0)), rng.normal(size=(2, 3))))  # std 2
    return cases


def nll_cases(rng):
    cases = []
    for n, d in ((2, 784), (3, 5), (int(rng.integers(1, 6)), int(rng.integers(1, 50)))):
        cases.append((rng.uniform(size=(n, d)), rng.uniform(0.01, 0.99, size=(n, d))))
    x = rng.integers(0, 2, size=(4, 10)).astype(float)
    cases.append((x, x.copy()))  # exact 0s and 1s predicted exactly: the clip must keep it finite
    cases.append((x, 1 - x))  # exactly wrong: finite thanks to the clip, about 16.1 nats a pixel
    return cases


def log_weight_cases(rng):
    cases = []
    for n, k in ((1, 1), (3, 5), (int(rng.integers(1, 6)), int(rng.integers(2, 200)))):
        cases.append((rng.normal(loc=-100, scale=3, size=(n, k)),))
    cases.append((rng.normal(loc=-800, scale=5, size=(2, 50)),))  # exp() underflows to 0: log-sum-exp is needed
    cases.append((np.full((2, 4), 3.0),))  # equal weights: the value itself
    return cases


def frechet_cases(rng):
    cases = []
    for n, d in ((200, 1), (300, 3), (int(rng.integers(50, 200)), int(rng.integers(2, 12)))):
        a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        b = rng.normal(loc=rng.normal(size=d), size=(int(rng.integers(50, 200)), d)) @ rng.normal(size=(d, d))
        cases.append((a, b))
    a = rng.normal(size=(100, 4))
    cases.append((a, a.copy()))  # the same features: 0
    return cases


def active_cases(rng):
    cases = []
    for n, d in ((50, 4), (200, 10), (int(rng.integers(20, 100)), int(rng.integers(1, 30)))):
        scales = np.where(rng.uniform(size=d) < 0.5, rng.uniform(0.2, 2, size=d), rng.uniform(0, 0.05, size=d))
        cases.append((rng.normal(size=(n, d)) * scales + rng.normal(size=d) * 3, 0.01))
    cases.append((np.tile(rng.normal(size=(1, 6)), (10, 1)), 0.01))  # every mean the same: none active
    means = rng.normal(size=(400, 3)) * np.array([0.5, 0.2, 0.05])
    cases.append((means, 0.1))  # another threshold: only the first (variance 0.25) counts
    return cases


def condition_cases(rng):
    cases = []
    for n in (1, 5, int(rng.integers(2, 30))):
        cases.append((rng.uniform(size=(n, 784)).astype("float32"), rng.integers(0, 10, size=n)))
    cases.append((rng.uniform(size=(3, 28, 28)), np.array([9, 0, 3])))  # images not yet flattened
    return cases


EXERCISES = {
    "kl_divergence": Exercise(draw=gaussian_cases, kind="f", atol=1e-8),
    "reparameterise": Exercise(draw=reparameterise_cases, kind="f", atol=1e-8),
    "bernoulli_nll": Exercise(draw=nll_cases, kind="f", atol=1e-6),
    "log_mean_exp": Exercise(draw=log_weight_cases, kind="f", atol=1e-8),
    "frechet_distance": Exercise(draw=frechet_cases, atol=1e-6),
    "active_units": Exercise(draw=active_cases, judge=exactly),
    "condition": Exercise(draw=condition_cases, kind="f", atol=1e-7),
    # the judge ignores the author's model: the trusted side builds none (and imports no Keras)
    "build_encoder": Exercise(draw=lambda rng: [(int(rng.choice(LATENT_DIMS)),)], judge=judge_encoder,
                              needs_reference=False, max_params=vae_encoder_spec(max(LATENT_DIMS)).max_params),
}


# ---------------------------------------------------------------- known-wrong answers
# Common slips, each with a phrase its hidden check must answer it with (tests/test_wrong_answers.py).

def kl_divergence_sign_flipped(mean, log_var):  # the "- 0.5" dropped: a negative divergence
    mean, log_var = np.asarray(mean, float), np.asarray(log_var, float)
    return 0.5 * np.sum(1 + log_var - mean**2 - np.exp(log_var), axis=1)


def kl_divergence_log_var_read_as_variance(mean, log_var):  # the second argument treated as σ²
    mean, var = np.asarray(mean, float), np.abs(np.asarray(log_var, float)) + 1e-12
    return -0.5 * np.sum(1 + np.log(var) - mean**2 - var, axis=1)


def kl_divergence_mean_over_dimensions(mean, log_var):
    mean, log_var = np.asarray(mean, float), np.asarray(log_var, float)
    return -0.5 * np.mean(1 + log_var - mean**2 - np.exp(log_var), axis=1)


def reparameterise_with_variance(mean, log_var, eps):  # exp(log_var) is σ², not σ
    return np.asarray(mean, float) + np.exp(np.asarray(log_var, float)) * np.asarray(eps, float)


def reparameterise_log_var_as_std(mean, log_var, eps):
    return np.asarray(mean, float) + np.asarray(log_var, float) * np.asarray(eps, float)


def bernoulli_nll_mean_over_pixels(x, x_hat):
    p = np.clip(np.asarray(x_hat, float), 1e-7, 1 - 1e-7)
    x = np.asarray(x, float)
    return -np.mean(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)


def bernoulli_nll_unclipped(x, x_hat):
    p, x = np.asarray(x_hat, float), np.asarray(x, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)


def log_mean_exp_naive(log_weights):  # exp() underflows for log weights near -800
    with np.errstate(divide="ignore"):
        return np.log(np.mean(np.exp(np.asarray(log_weights, float)), axis=1))


def log_mean_exp_is_the_elbo(log_weights):  # the mean of the log weights: the k-sample average ELBO
    return np.mean(np.asarray(log_weights, float), axis=1)


def log_mean_exp_log_sum_exp(log_weights):  # forgot the 1/k
    w = np.asarray(log_weights, float)
    top = w.max(axis=1, keepdims=True)
    return (top + np.log(np.sum(np.exp(w - top), axis=1, keepdims=True)))[:, 0]


def _moments(features):
    features = np.asarray(features, float)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance_elementwise_sqrt(features_a, features_b):  # np.sqrt of the product, not its matrix root
    (mu_a, cov_a), (mu_b, cov_b) = _moments(features_a), _moments(features_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.sqrt(np.abs(cov_a @ cov_b))))


def frechet_distance_means_only(features_a, features_b):
    (mu_a, _), (mu_b, _) = _moments(features_a), _moments(features_b)
    return float(np.sum((mu_a - mu_b) ** 2))


def frechet_distance_by_eigenvalues(features_a, features_b):  # valid: tr sqrt(A B) from the eigenvalues of A B
    (mu_a, cov_a), (mu_b, cov_b) = _moments(features_a), _moments(features_b)
    root_trace = np.sum(np.sqrt(np.clip(np.linalg.eigvals(cov_a @ cov_b).real, 0, None)))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * root_trace)


def active_units_variance_per_example(means, threshold=0.01):  # the variance over dimensions, not over images
    return int(np.sum(np.var(np.asarray(means, float), axis=1) > threshold))


def active_units_mean_not_variance(means, threshold=0.01):  # a unit far from 0 is not an active one
    return int(np.sum(np.abs(np.mean(np.asarray(means, float), axis=0)) > threshold))


def condition_label_as_number(images, labels):  # the digit as one number, not one-hot
    x = np.asarray(images, "float32").reshape(len(images), -1)
    return np.concatenate([x, np.asarray(labels, "float32")[:, None]], axis=1)


def condition_one_hot_first(images, labels):
    x = np.asarray(images, "float32").reshape(len(images), -1)
    return np.concatenate([np.eye(10, dtype="float32")[np.asarray(labels)], x], axis=1)


def _encoder(hidden_layers, latent_dim, mean_activation=None, log_var_activation=None, names=("z_mean", "z_log_var")):
    import keras

    inputs = keras.Input((784,))
    h = inputs
    for layer in hidden_layers:
        h = layer(h)
    return keras.Model(inputs, [keras.layers.Dense(latent_dim, activation=mean_activation, name=names[0])(h),
                                keras.layers.Dense(latent_dim, activation=log_var_activation, name=names[1])(h)])


def encoder_zero_initialised(latent_dim):  # meets the specification, learns nothing
    from keras import layers

    return _encoder([layers.Dense(512, activation="relu", kernel_initializer="zeros")], latent_dim)


def encoder_softplus_log_var(latent_dim):  # "a variance is positive": but this is its logarithm
    from keras import layers

    return _encoder([layers.Dense(512, activation="relu")], latent_dim, log_var_activation="softplus")


def encoder_outputs_swapped(latent_dim):
    from keras import layers

    return _encoder([layers.Dense(512, activation="relu")], latent_dim, names=("z_log_var", "z_mean"))


def encoder_small(latent_dim):  # valid: 784-64-(latent, latent)
    from keras import layers

    return _encoder([layers.Dense(64, activation="relu")], latent_dim)


def encoder_two_hidden_layers(latent_dim):  # valid: 784-256-128-(latent, latent)
    from keras import layers

    return _encoder([layers.Dense(256, activation="relu"), layers.Dense(128, activation="relu")], latent_dim)


WRONG_ANSWERS = {
    "kl_divergence": [(kl_divergence_sign_flipped, "wrong values"), (kl_divergence_log_var_read_as_variance, "wrong values"),
                      (kl_divergence_mean_over_dimensions, "wrong values")],
    "reparameterise": [(reparameterise_with_variance, "wrong values"), (reparameterise_log_var_as_std, "wrong values")],
    "bernoulli_nll": [(bernoulli_nll_mean_over_pixels, "wrong values"),
                      (bernoulli_nll_unclipped, "NaN or infinite values")],
    "log_mean_exp": [(log_mean_exp_naive, "NaN or infinite values"), (log_mean_exp_is_the_elbo, "wrong values"),
                     (log_mean_exp_log_sum_exp, "wrong values")],
    "frechet_distance": [(frechet_distance_elementwise_sqrt, r"returned \S+, expected \S+\."),
                         (frechet_distance_means_only, r"returned \S+, expected \S+\.")],
    "active_units": [(active_units_variance_per_example, r"returned \S+, expected \S+\."),
                     (active_units_mean_not_variance, r"returned \S+, expected \S+\.")],
    "condition": [(condition_label_as_number, "expected shape"), (condition_one_hot_first, "wrong values")],
    "build_encoder": [(encoder_zero_initialised, "builds an encoder that does not learn"),
                      (encoder_softplus_log_var, "has activation 'softplus'"),
                      (encoder_outputs_swapped, "expected \\('z_mean', 'z_log_var'\\)")],
}
VALID_ANSWERS = {"build_encoder": [encoder_small, encoder_two_hidden_layers],
                 "frechet_distance": [frechet_distance_by_eigenvalues]}
