"""What the model-building exercises ask for, in one place.

The exercise text, the visible test cell (:func:`convae.checks.expect_model`) and the hidden check
(``grading/checks/<chapter>.py``, on the judge's rebuilt copy) all read these, so they cannot drift
apart. A budget is an upper bound: a smaller model that meets the rest passes.
"""
from convae.checks import ModelSpec

DENSE_LAYERS = ("Dense", "Dropout", "BatchNormalization", "Activation", "ReLU", "Softmax")
POOLING = ("MaxPooling2D", "AveragePooling2D")

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
