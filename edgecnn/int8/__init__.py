"""The int8 layer under both `quantize` and `deploy`: the graph IR and TFLite's int8 arithmetic rules.

numpy only, so a device that merely reads a `.tflite` needs nothing more.
`graph` holds the IR (tensors, ops, graphs with branches); `rules` holds each
float-side TFLite rule exactly once (rounding, multipliers, activation
ranges, input quantization); `padding` holds SAME/VALID windows.
"""
