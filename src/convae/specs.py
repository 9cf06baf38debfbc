"""What the model-building exercises ask for, in one place.

The exercise text, the visible test cell (:func:`convae.checks.expect_model`) and the hidden check
(``grading/checks/<chapter>.py``, on the judge's rebuilt copy) all read these, so they cannot drift
apart. A budget is an upper bound: a smaller model that meets the rest passes.
"""
from convae.checks import AutoencoderSpec, ModelSpec

DENSE_LAYERS = ("Dense", "Dropout", "BatchNormalization", "Activation", "ReLU", "Softmax")
POOLING = ("MaxPooling2D", "AveragePooling2D")

# Chapter 04's classifiers end in a softmax and are compiled with a loss on probabilities;
# from_logits=True is refused (on a softmax output it would take the softmax twice). The chapter
# teaches a linear output with from_logits=True (log-sum-exp) as the stable alternative that its
# exercises do not use, and says the check refuses it: text and check agree.

#: chapter 04: 784 -> 512 -> 512 -> 10, ReLU, dropout (669,706 parameters as specified)
MLP_SPEC = ModelSpec(
    call="build_mlp()",
    input_shape=(784,),
    n_classes=10,
    max_params=700_000,
    allowed=DENSE_LAYERS,
    at_least=((("Dense",), 2, "Dense layers (at least one hidden layer and the output layer)"),
              (("Dropout",), 1, "Dropout layers")),
)

#: chapter 04: LeNet-style conv -> pool -> conv -> pool -> dense
CNN_SPEC = ModelSpec(
    call="build_cnn()",
    input_shape=(28, 28, 1),
    n_classes=10,
    max_params=250_000,
    allowed=("Conv2D", *POOLING, "Flatten", "GlobalAveragePooling2D", *DENSE_LAYERS),
    at_least=((("Conv2D",), 2, "Conv2D layers"),
              (POOLING, 2, "pooling layers (MaxPooling2D or AveragePooling2D)"),
              (("Dense",), 1, "Dense layers")),
)

# ---------------------------------------------------------------- chapter 05: autoencoders
#
# Shapes, decided once for the chapter: the dense autoencoder works on flattened images, (784,) in
# and (784,) out, the same rows that PCA (written with an SVD on an (n, 784) matrix) reconstructs,
# so the two compare on one array; the convolutional autoencoder works on images, (28, 28, 1) in
# and out. Pixels are floats in [0, 1] (uint8 / 255), hence the sigmoid output.
#
# Add and Concatenate are allowed so that a connection around the code gets its own sentence (the
# check follows every path from the input to the output); a residual block inside the encoder or
# inside the decoder is fine.

AE_DENSE_LAYERS = ("Dense", "Dropout", "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "Flatten",
                   "Reshape", "GaussianNoise", "ActivityRegularization", "Add", "Concatenate")
AE_CONV_LAYERS = (*AE_DENSE_LAYERS, "Conv2D", "Conv2DTranspose", *POOLING, "UpSampling2D", "ZeroPadding2D",
                  "Cropping2D")

#: the conv autoencoder's code: as many numbers as the dense autoencoder's code at the point where the
#: chapter compares them (and PCA with 32 components)
CONV_CODE_SIZE = 32


def dense_autoencoder_spec(code_size: int) -> AutoencoderSpec:
    """``build_autoencoder(code_size)``: a dense autoencoder on flattened MNIST images.

    Input (784,) and output (784,) (flattened 28x28 images, pixels in [0, 1]); a layer named
    ``code`` with exactly ``code_size`` outputs, on every path from input to output; a non-linear
    encoder; a sigmoid output; compiled with binary cross-entropy or mean squared error.

    Budget: 600,000 + 1,000 x code_size parameters. The chapter's model, 784-256-code-256-784,
    has 402,704 + 513 x code_size (419,120 at code 32), so it fits with about 1.5x to spare, and
    so does a deeper 784-256-128-code-128-256-784 (476,720 at 32); the budget bounds what the
    judge's short training costs, and a smaller valid model always passes.
    """
    if not (isinstance(code_size, int) and 0 < code_size < 784):
        raise ValueError(f"a code must be smaller than the 784 pixels it encodes, got {code_size!r}")
    return AutoencoderSpec(
        call=f"build_autoencoder({code_size})",
        args=(code_size,),
        input_shape=(784,),
        code_size=code_size,
        max_params=600_000 + 1_000 * code_size,
        allowed=AE_DENSE_LAYERS,
        at_least=((("Dense",), 2, "Dense layers (at least one in the encoder and one in the decoder)"),),
    )


#: ``build_conv_autoencoder()``: input and output (28, 28, 1); a layer named ``code`` whose output,
#: flattened, holds exactly 32 numbers (a Dense(32) after a Flatten is the simple way; a Conv2D
#: output of 2x4x4 would do too); at least one Conv2D in the encoder and one Conv2D or
#: Conv2DTranspose in the decoder; a non-linear encoder, a sigmoid output, BCE or MSE.
#: Budget 300,000: a 16-32 filter strided-conv encoder, Dense(32) code, Dense(7*7*32) and two
#: Conv2DTranspose back has 120,769 parameters, the same with 32-64 filters 278,369 (most of it in
#: the two Dense layers around the code); the dense autoencoder at code 32 has 419,120.
CONV_AE_SPEC = AutoencoderSpec(
    call="build_conv_autoencoder()",
    input_shape=(28, 28, 1),
    code_size=CONV_CODE_SIZE,
    max_params=300_000,
    allowed=AE_CONV_LAYERS,
    at_least=((("Conv2D",), 1, "Conv2D layers", "encoder"),
              (("Conv2D", "Conv2DTranspose"), 1, "Conv2D or Conv2DTranspose layers", "decoder")),
)


# ---------------------------------------------------------------- chapter 06: denoising autoencoders
#
# A denoiser needs no narrow bottleneck (the corruption, not the code size, stops it from copying):
# its code is a 7 x 7 x 32 feature map, 1,568 numbers, wider than the 784 pixels. The structure
# check still asks for a layer named ``code`` that every path passes through, so the model stays an
# autoencoder (a skip connection around the code would make it a U-Net, another chapter's topic).

#: ``build_denoiser()``: input and output (28, 28, 1); encoder Conv2D(16, 3, strides=2) and
#: Conv2D(32, 3, strides=2, name="code") with ReLU (7 x 7 x 32 = 1,568 numbers); decoder
#: Conv2DTranspose(32, 3, strides=2) and Conv2DTranspose(16, 3, strides=2) with ReLU, Conv2D(1, 3)
#: with a sigmoid; BCE or MSE. The specified model has 18,817 parameters (32 filters throughout:
#: 28,353, no better after the judge's training); the budget, 100,000, bounds the judge's time.
DENOISER_SPEC = AutoencoderSpec(
    call="build_denoiser()",
    input_shape=(28, 28, 1),
    code_size=7 * 7 * 32,
    max_params=100_000,
    allowed=AE_CONV_LAYERS,
    at_least=((("Conv2D",), 1, "Conv2D layers", "encoder"),
              (("Conv2D", "Conv2DTranspose"), 1, "Conv2D or Conv2DTranspose layers", "decoder")),
)


# ---------------------------------------------------------------- chapter 07: variational autoencoders
#
# The encoder of a VAE gives two outputs per image, the mean and the log-variance of a diagonal
# Gaussian over the latent space; the chapter adds its own Sampling layer and decoder around it. The
# check is its own (convae.vae.encoder_problems): two outputs named z_mean and z_log_var, in that
# order, each (None, latent_dim), both linear (a log-variance is any real number), a non-linear
# hidden layer, built-in layers only, a budget. Inputs are flattened images (784,), as in chapter
# 05's dense autoencoder: on two CPU cores a dense VAE trains many times faster than a conv one.

from dataclasses import dataclass as _dataclass  # noqa: E402


@_dataclass(frozen=True)
class VAEEncoderSpec:
    """What ``build_encoder(latent_dim)`` must return (see :func:`convae.vae.encoder_problems`)."""

    call: str
    input_shape: tuple
    latent_dim: int
    max_params: int
    allowed: tuple
    args: tuple = ()


def vae_encoder_spec(latent_dim: int) -> VAEEncoderSpec:
    """``build_encoder(latent_dim)``: (784,) -> [z_mean, z_log_var], each (latent_dim,).

    Budget 600,000 + 2,000 x latent_dim: the chapter's 784-512-256-(latent, latent) encoder has
    533,248 + 514 x latent_dim (543,528 at latent 20), so it fits with room for a wider hidden
    layer; the budget says what the judge's short training may cost, and a smaller valid encoder
    always passes.
    """
    if not (isinstance(latent_dim, int) and 0 < latent_dim < 784):
        raise ValueError(f"a latent space must be smaller than the 784 pixels, got {latent_dim!r}")
    return VAEEncoderSpec(
        call=f"build_encoder({latent_dim})",
        args=(latent_dim,),
        input_shape=(784,),
        latent_dim=latent_dim,
        max_params=600_000 + 2_000 * latent_dim,
        allowed=AE_CONV_LAYERS,
    )


#: the course's own digit classifier (convae.vae.build_classifier): the judge of generated digits
#: (label accuracy, Fréchet distance on its 64 ``features``) and the "same CNN" of the
#: synthetic-data experiment; not chapter 04's build_cnn, which is a student's answer. 2 conv
#: layers (16, 32 filters), 2 max-poolings, Dense(64) features: 56,714 parameters.
CLASSIFIER_SPEC = ModelSpec(
    call="build_classifier()",
    input_shape=(784,),
    n_classes=10,
    max_params=60_000,
    allowed=("Reshape", "Conv2D", *POOLING, "Flatten", *DENSE_LAYERS),
    at_least=((("Conv2D",), 2, "Conv2D layers"),),
)
