"""edgecnn: LeNet-class CNNs from float training to bit-exact TFLite int8.

Importing the package is cheap on purpose: on a device, `edgecnn predict`
must not pay for the trainer, Numba or onnx. Import the stage you need.
"""

__version__ = "0.1.0"
