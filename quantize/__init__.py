"""int8 quantization: qparams, fixed-point multipliers, calibration, PTQ and the int8 graph."""
