"""Running and shipping int8 models: the Numba runtime, .tflite, ONNX, C and the device runner."""
